"""Detection mAP exactly as the official ActivityNet scorer defines it, vectorised.

Per class and tIoU threshold (ActivityNet `compute_average_precision_detection`):
predictions are visited by descending score; each takes the unmatched ground
truth of its class and video with the highest tIoU, provided that tIoU reaches
the threshold (falling back to the next-best one when the best is taken);
otherwise it is a false positive. AP is the VOC all-point interpolated area
under the precision envelope; mAP averages AP over the classes that have
ground truth in the split.

Two rules the official code leaves to numpy's unstable quicksort are fixed here:
- predictions with equal scores are visited in file order;
- ground truth with equal tIoU to a prediction is tried in file order.

Matching is sequential only within one (video, class) group, so all groups are
advanced together: step r handles the r-th prediction of every group at once,
for every threshold at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delcli.data.annotations import Annotations
from delcli.errors import DataError
from delcli.evaluation.predictions import Predictions


@dataclass(frozen=True)
class AlignedPredictions:
    """Predictions expressed in the ground truth's indices.

    Attributes:
        video: (M,) int64 ground-truth video index, -1 for videos outside the split.
        label: (M,) int64 class index into `Annotations.classes`.
        segments: (M, 2) float64.
        scores: (M,) float64.
        counts: bookkeeping for the report (rows dropped and why).
    """

    video: np.ndarray
    label: np.ndarray
    segments: np.ndarray
    scores: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def align_predictions(
    ground_truth: Annotations, predictions: Predictions, ignore_unknown_labels: bool = False
) -> AlignedPredictions:
    """Map prediction video ids and labels onto the ground truth.

    A label is a class name, or an integer class id (also as a string such as
    "5") when no class has that name. A label outside the class list is an
    error naming it, unless `ignore_unknown_labels` drops those rows.
    """
    class_index = ground_truth.class_index()
    label_map = np.empty(len(predictions.label_names), dtype=np.int64)
    unknown: list[str | int] = []
    for i, name in enumerate(predictions.label_names):
        index = class_index.get(str(name), -1)
        if index < 0 and str(name).isdigit() and int(name) < len(ground_truth.classes):
            index = int(name)
        if index < 0:
            unknown.append(name)
        label_map[i] = index
    if unknown and not ignore_unknown_labels:
        raise DataError(_unknown_label_message(predictions.source, unknown, ground_truth))
    label = label_map[predictions.label]
    known = label >= 0
    video_map = np.array([ground_truth.find_video(v) for v in predictions.videos], dtype=np.int64)
    video = video_map[predictions.video]
    counts = {
        "predictions": len(predictions),
        "unknown_label": int((~known).sum()),
        "outside_split": int((video[known] < 0).sum()),
    }
    return AlignedPredictions(
        video=video[known],
        label=label[known],
        segments=predictions.segments[known],
        scores=predictions.scores[known],
        counts=counts,
    )


def _unknown_label_message(source: str, unknown: list, ground_truth: Annotations) -> str:
    import difflib

    first = str(unknown[0])
    close = difflib.get_close_matches(first, ground_truth.classes, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    more = f" (and {len(unknown) - 1} other labels)" if len(unknown) > 1 else ""
    return (
        f"{source}: label '{first}'{hint}{more} is not one of the ground truth's "
        f"{len(ground_truth.classes)} classes; check --dataset, or pass "
        "--ignore-unknown-labels to drop such predictions"
    )


def pairwise_tiou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tIoU of matching rows of `a` (P, 2) and `b` (P, 2); 0 where the union is empty."""
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    union = (a[:, 1] - a[:, 0]) + (b[:, 1] - b[:, 0]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass(frozen=True)
class DetectionMAP:
    """Scores of one evaluation.

    Attributes:
        tious: (T,) thresholds.
        classes: (K,) evaluated classes (those with ground truth).
        ap: (K, T) average precision.
        mean_ap: (T,) mAP per threshold.
        num_ground_truth: (K,) ground-truth events per class.
    """

    tious: np.ndarray
    classes: list[str]
    ap: np.ndarray
    mean_ap: np.ndarray
    num_ground_truth: np.ndarray

    def average(self, tious: tuple[float, ...] | np.ndarray) -> float:
        """Mean of the mAP over `tious` (each must be one of `self.tious`)."""
        columns = [int(np.argmin(np.abs(self.tious - t))) for t in tious]
        if not np.allclose(self.tious[columns], tious):
            raise ValueError(f"thresholds {tious} were not all evaluated")
        return float(self.mean_ap[columns].mean())


def detection_map(
    ground_truth: Annotations, predictions: AlignedPredictions, tious: np.ndarray
) -> DetectionMAP:
    """mAP of `predictions` against `ground_truth` (one split) at each tIoU threshold."""
    tious = np.asarray(tious, dtype=np.float64)
    num_classes = len(ground_truth.classes)
    gt_count = np.bincount(ground_truth.labels, minlength=num_classes)
    evaluated = np.flatnonzero(gt_count)
    if len(evaluated) == 0:
        raise DataError(f"{ground_truth.source}: the split has no ground-truth events to score")

    # Visit order: class, then score descending; lexsort is stable, so equal
    # scores keep file order (the tie rule).
    scored = np.flatnonzero(gt_count[predictions.label] > 0)
    order = scored[np.lexsort((-predictions.scores[scored], predictions.label[scored]))]
    label = predictions.label[order]
    video = predictions.video[order]
    true_positive = _greedy_matches(ground_truth, video, label, predictions.segments[order], tious)
    ap = _interpolated_ap(true_positive, label, gt_count)
    ap = ap[evaluated]
    return DetectionMAP(
        tious=tious,
        classes=[ground_truth.classes[c] for c in evaluated],
        ap=ap,
        mean_ap=ap.mean(axis=0),
        num_ground_truth=gt_count[evaluated],
    )


def _greedy_matches(
    ground_truth: Annotations,
    video: np.ndarray,
    label: np.ndarray,
    segments: np.ndarray,
    tious: np.ndarray,
) -> np.ndarray:
    """(M, T) bool: is the m-th prediction (in visit order) a true positive at threshold t."""
    num_classes = len(ground_truth.classes)
    num_predictions, num_tious = len(video), len(tious)
    true_positive = np.zeros((num_predictions, num_tious), dtype=bool)

    pair_pred, pair_gt, pair_tiou = _candidate_pairs(
        ground_truth, video, label, segments, tious.min()
    )
    if len(pair_pred) == 0:
        return true_positive

    # Rank of each candidate-holding prediction inside its (video, class) group,
    # in visit order; pairs come ordered by prediction, so holders are sorted.
    holders = pair_pred[np.r_[True, np.diff(pair_pred) != 0]]
    holder_key = video[holders] * num_classes + label[holders]
    group_order = np.argsort(holder_key, kind="stable")
    sorted_key = holder_key[group_order]
    group_start = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[group_start, len(holders)])
    rank_of_pred = np.zeros(num_predictions, dtype=np.int64)
    rank_of_pred[holders[group_order]] = np.arange(len(holders)) - np.repeat(group_start, sizes)

    # Pairs ordered by (rank, prediction, tIoU descending, ground truth file order).
    within = np.lexsort((-pair_tiou, pair_pred))  # stable: file order for equal tIoU
    pair_order = within[np.argsort(rank_of_pred[pair_pred[within]], kind="stable")]
    pair_pred, pair_gt, pair_tiou = (
        pair_pred[pair_order],
        pair_gt[pair_order],
        pair_tiou[pair_order],
    )
    pair_rank = rank_of_pred[pair_pred]
    step_bounds = np.searchsorted(pair_rank, np.arange(pair_rank[-1] + 2))

    locked = np.zeros((ground_truth.num_events, num_tious), dtype=bool)
    for step in range(len(step_bounds) - 1):
        lo, hi = step_bounds[step], step_bounds[step + 1]
        preds, gts = pair_pred[lo:hi], pair_gt[lo:hi]
        eligible = (pair_tiou[lo:hi, None] >= tious[None, :]) & ~locked[gts]
        starts = np.r_[0, np.flatnonzero(np.diff(preds)) + 1]
        position = np.where(eligible, np.arange(hi - lo)[:, None], hi - lo)
        first = np.minimum.reduceat(position, starts, axis=0)  # (n_preds, T)
        found = first < hi - lo
        rows, cols = np.nonzero(found)
        chosen = first[rows, cols]
        locked[gts[chosen], cols] = True
        true_positive[preds[starts[rows]], cols] = True
    return true_positive


# Above this many (video, class) keys, group lookups use binary search instead of a table.
DENSE_LOOKUP_LIMIT = 1 << 24


def _candidate_pairs(
    ground_truth: Annotations,
    video: np.ndarray,
    label: np.ndarray,
    segments: np.ndarray,
    min_tiou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (prediction, ground truth) of the same video and class with tIoU >= `min_tiou`.

    Returns (P,) prediction rows (ascending), ground-truth rows (file order
    within a prediction) and their tIoU.
    """
    num_classes = len(ground_truth.classes)
    gt_key = ground_truth.event_video * num_classes + ground_truth.labels
    gt_order = np.argsort(gt_key, kind="stable")  # file order inside a group
    inside = video >= 0
    pred_key = np.where(inside, video * num_classes + label, 0)
    num_keys = ground_truth.num_videos * num_classes
    if num_keys <= DENSE_LOOKUP_LIMIT:
        count = np.bincount(gt_key, minlength=num_keys)
        low = (np.cumsum(count) - count)[pred_key]
        width = count[pred_key]
    else:
        sorted_keys = gt_key[gt_order]
        low = np.searchsorted(sorted_keys, pred_key, side="left")
        width = np.searchsorted(sorted_keys, pred_key, side="right") - low
    width = np.where(inside, width, 0)
    pair_pred = np.repeat(np.arange(len(video)), width)
    offsets = np.arange(len(pair_pred)) - np.repeat(np.cumsum(width) - width, width)
    pair_gt = gt_order[np.repeat(low, width) + offsets]
    pair_tiou = pairwise_tiou(segments[pair_pred], ground_truth.segments[pair_gt])
    keep = pair_tiou >= min_tiou
    return pair_pred[keep], pair_gt[keep], pair_tiou[keep]


def _interpolated_ap(
    true_positive: np.ndarray, label: np.ndarray, gt_count: np.ndarray
) -> np.ndarray:
    """(K, T) VOC all-point interpolated AP from match flags in visit order.

    Recall grows by 1/npos at each true positive and precision only rises at
    true positives, so the area under the precision envelope is the sum, over
    true positives, of the highest precision at that or any later true
    positive of the class, divided by npos. Only true positives are touched.
    """
    num_classes, num_tious = len(gt_count), true_positive.shape[1]
    # (threshold, row) of every true positive, grouped by threshold, rows ascending
    tiou_index, row = np.nonzero(true_positive.T)
    if len(row) == 0:
        return np.zeros((num_classes, num_tious))
    class_start = np.searchsorted(label, label[row])  # first row of each one's class
    group = tiou_index * num_classes + label[row]  # contiguous (threshold, class) runs
    run_start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    run_of = np.repeat(np.arange(len(run_start)), np.diff(np.r_[run_start, len(row)]))
    true_so_far = np.arange(len(row)) - run_start[run_of] + 1
    precision = true_so_far / (row - class_start + 1.0)

    # Running maximum from the right inside each run, exact: replace values by
    # their ranks, lift each run above the ones after it, accumulate, map back.
    values, rank = np.unique(precision, return_inverse=True)
    lift = (len(run_start) - 1 - run_of) * len(values)
    lifted = np.maximum.accumulate((rank + lift)[::-1])[::-1]
    envelope = values[lifted - lift]

    # divide once per class so that perfect detections give exactly 1.0
    area = np.bincount(
        label[row] * num_tious + tiou_index, weights=envelope, minlength=num_classes * num_tious
    ).reshape(num_classes, num_tious)
    return area / np.maximum(gt_count, 1)[:, None]
