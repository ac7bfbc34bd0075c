"""The test oracle of `detection_map`: a slow, literal transcription of the official
ActivityNet detection scorer.

One class, one prediction, one threshold at a time, exactly as
`compute_average_precision_detection` in activitynet/ActivityNet reads, with
our documented tie rules (equal scores: file order; equal tIoU: ground-truth
file order). It exists to cross-check `detection_map` in tests and in
`scripts/bench_eval.py`; do not use it for real work.
"""

from __future__ import annotations

import numpy as np

from delcli.data.annotations import Annotations
from delcli.evaluation.detection_map import AlignedPredictions


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2011 all-point interpolated AP (ActivityNet's `interpolated_prec_rec`)."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    changes = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[changes] - mrec[changes - 1]) * mprec[changes]))


def _tiou(segment: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    inter = np.clip(
        np.minimum(segment[1], candidates[:, 1]) - np.maximum(segment[0], candidates[:, 0]),
        0.0,
        None,
    )
    union = (segment[1] - segment[0]) + (candidates[:, 1] - candidates[:, 0]) - inter
    return np.array([i / u if u > 0 else 0.0 for i, u in zip(inter, union, strict=True)])


def reference_average_precision(
    ground_truth: Annotations, predictions: AlignedPredictions, tious: np.ndarray
) -> dict[int, np.ndarray]:
    """{class index: (T,) AP} for every class with ground truth in `ground_truth`."""
    result = {}
    for cls in sorted(set(ground_truth.labels.tolist())):
        gt_rows = np.flatnonzero(ground_truth.labels == cls)
        npos = len(gt_rows)
        pred_rows = np.flatnonzero(predictions.label == cls)
        # descending score; equal scores keep file order (Python's sort is stable)
        pred_rows = sorted(pred_rows.tolist(), key=lambda r: -predictions.scores[r])
        tp = np.zeros((len(tious), len(pred_rows)))
        fp = np.zeros((len(tious), len(pred_rows)))
        locked = -np.ones((len(tious), npos), dtype=int)
        by_video: dict[int, list[int]] = {}
        for j, g in enumerate(gt_rows):
            by_video.setdefault(int(ground_truth.event_video[g]), []).append(j)
        for i, row in enumerate(pred_rows):
            in_video = by_video.get(int(predictions.video[row]), [])
            if not in_video:
                fp[:, i] = 1
                continue
            overlaps = _tiou(predictions.segments[row], ground_truth.segments[gt_rows[in_video]])
            walk = sorted(range(len(in_video)), key=lambda k: -overlaps[k])
            for t, threshold in enumerate(tious):
                for k in walk:
                    if overlaps[k] < threshold:
                        fp[t, i] = 1
                        break
                    if locked[t, in_video[k]] >= 0:
                        continue
                    tp[t, i] = 1
                    locked[t, in_video[k]] = i
                    break
                if tp[t, i] == 0 and fp[t, i] == 0:
                    fp[t, i] = 1
        ap = np.zeros(len(tious))
        for t in range(len(tious)):
            tp_cum, fp_cum = np.cumsum(tp[t]), np.cumsum(fp[t])
            recall = tp_cum / npos
            precision = tp_cum / (tp_cum + fp_cum)
            ap[t] = interpolated_average_precision(precision, recall)
        result[cls] = ap
    return result
