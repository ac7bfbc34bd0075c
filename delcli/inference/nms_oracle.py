"""The test oracle of `delcli.inference.nms`: slow, literal loops of NMS, Soft-NMS, voting.

Slow on purpose, and never on the inference path. Each function is a direct
transcription of the semantics in `delcli.inference.nms`, one candidate at a
time in plain Python floats, so that it can be checked by eye. They take and
return the same tensors as the vectorised functions, which the tests and
`scripts/bench_nms.py` compare against these.
"""

from __future__ import annotations

import math

import torch

from delcli.inference.nms import DecayMethod, Detections

Segment = tuple[float, float]


def reference_tiou(a: Segment, b: Segment) -> float:
    """tIoU of two `[start, end]` segments; 0 when both have zero length."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def reference_weight(iou: float, method: DecayMethod, iou_threshold: float, sigma: float) -> float:
    """Soft-NMS decay of one candidate whose tIoU with the selected segment is `iou`."""
    if method == "gaussian":
        return math.exp(-(iou * iou) / sigma)
    if method == "linear":
        return 1.0 - iou if iou >= iou_threshold else 1.0
    return 0.0 if iou >= iou_threshold else 1.0


def reference_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    min_score: float = 0.0,
    max_seg_num: int | None = None,
) -> torch.Tensor:
    """Greedy NMS: visit by descending score, keep what overlaps no kept segment."""
    segs = [tuple(s) for s in segments.tolist()]
    score = scores.tolist()
    candidates = [i for i in range(len(score)) if score[i] >= min_score]
    candidates.sort(key=lambda i: (-score[i], i))
    keep: list[int] = []
    for i in candidates:
        if max_seg_num is not None and len(keep) == max_seg_num:
            break
        if all(reference_tiou(segs[i], segs[k]) < iou_threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)


def reference_soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.1,
    sigma: float = 0.5,
    min_score: float = 0.001,
    max_seg_num: int | None = None,
    method: DecayMethod = "gaussian",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Selection-sort Soft-NMS: pick the best remaining, decay the others, drop the weak."""
    segs = [tuple(s) for s in segments.tolist()]
    current = scores.tolist()
    remaining = [i for i in range(len(current)) if current[i] >= min_score]
    keep: list[int] = []
    kept_scores: list[float] = []
    while remaining and (max_seg_num is None or len(keep) < max_seg_num):
        best = max(remaining, key=lambda i: (current[i], -i))
        keep.append(best)
        kept_scores.append(current[best])
        survivors = []
        for i in remaining:
            if i == best:
                continue
            w = reference_weight(reference_tiou(segs[best], segs[i]), method, iou_threshold, sigma)
            current[i] *= w
            if w > 0 and current[i] >= min_score:
                survivors.append(i)
        remaining = survivors
    index = torch.tensor(keep, dtype=torch.long)
    return segments[index], torch.tensor(kept_scores, dtype=scores.dtype), index


def reference_voting(
    kept: torch.Tensor,
    segments: torch.Tensor,
    scores: torch.Tensor,
    voting_threshold: float,
    kept_class_ids: torch.Tensor | None = None,
    class_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each kept segment becomes the score-weighted mean of the candidates it overlaps."""
    segs = [tuple(s) for s in segments.tolist()]
    score = scores.tolist()
    by_class = kept_class_ids is not None and class_ids is not None
    refined = []
    for k, target in enumerate(kept.tolist()):
        start = end = total = 0.0
        for j, seg in enumerate(segs):
            if by_class and int(class_ids[j]) != int(kept_class_ids[k]):
                continue
            if reference_tiou(tuple(target), seg) >= voting_threshold:
                start += score[j] * seg[0]
                end += score[j] * seg[1]
                total += score[j]
        refined.append([start / total, end / total] if total > 0 else target)
    return torch.tensor(refined, dtype=kept.dtype).reshape(-1, 2)


def reference_batched_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    class_ids: torch.Tensor,
    *,
    iou_threshold: float = 0.1,
    min_score: float = 0.001,
    max_seg_num: int | None = 200,
    use_soft_nms: bool = True,
    multiclass: bool = True,
    sigma: float = 0.5,
    method: DecayMethod = "gaussian",
    voting_threshold: float | None = None,
) -> Detections:
    """Per class (or over everything) (Soft-)NMS, merge, sort, cap, then optional voting."""
    if multiclass:
        groups = [(class_ids == c).nonzero().flatten() for c in sorted(set(class_ids.tolist()))]
    else:
        groups = [torch.arange(len(scores))]
    keep: list[int] = []
    kept_scores: list[float] = []
    for members in groups:
        if use_soft_nms:
            _, group_scores, local = reference_soft_nms(
                segments[members],
                scores[members],
                iou_threshold,
                sigma,
                min_score,
                max_seg_num,
                method,
            )
        else:
            local = reference_nms(
                segments[members], scores[members], iou_threshold, min_score, max_seg_num
            )
            group_scores = scores[members][local]
        keep += members[local].tolist()
        kept_scores += group_scores.tolist()

    ranked = sorted(range(len(keep)), key=lambda r: -kept_scores[r])  # stable: class order
    ranked = ranked[:max_seg_num]
    index = torch.tensor([keep[r] for r in ranked], dtype=torch.long)
    final_scores = torch.tensor([kept_scores[r] for r in ranked], dtype=scores.dtype)
    kept = segments[index]
    if voting_threshold is not None:
        same_class = (class_ids[index], class_ids) if multiclass else (None, None)
        kept = reference_voting(kept, segments, scores, voting_threshold, *same_class)
    return Detections(kept, final_scores, class_ids[index], index)
