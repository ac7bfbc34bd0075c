"""Greedy NMS, Soft-NMS and segment voting for 1-D segments, in pure PyTorch.

Semantics follow ActionFormer / OpenTAD's `batched_nms` (Bodla et al., 2017,
for Soft-NMS) with two choices made explicit:

* Ties in score go to the lower original index, so results are deterministic.
* `min_score` applies before the first pick too (ActionFormer relies on its
  detector's identical pre-NMS threshold), and a decay weight of exactly 0
  removes a candidate, so `method="hard"` Soft-NMS equals greedy NMS.

All classes run at once: candidates are packed into a `(classes, width)` matrix
and each round of the selection loop picks one segment in every class that
still has candidates, so the loop runs as often as the busiest class keeps a
segment, not once per candidate. `delcli.inference.nms_oracle` holds the
one-candidate-at-a-time loops that the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from delcli.errors import ConfigError
from delcli.inference.segments import segment_iou
from delcli.recipe import DECAY_METHODS, DecayMethod, NMSConfig  # noqa: F401 - NMSConfig: here too

DecayWeight = Callable[[torch.Tensor], torch.Tensor]


class Detections(NamedTuple):
    """Segments that survive post-processing, highest score first.

    `segments (K, 2)`, `scores (K,)`, `class_ids (K,) long`, and `indices (K,) long`:
    the position of each detection in the input (its boundaries may differ after voting).
    """

    segments: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor
    indices: torch.Tensor


def decay_weight(method: DecayMethod, iou_threshold: float, sigma: float) -> DecayWeight:
    """The Soft-NMS rescoring function `w(tIoU)` applied to the unselected candidates.

    gaussian: `exp(-tIoU^2 / sigma)`, ignores `iou_threshold` (ActionFormer's form, sigma
    not 2 sigma^2); linear: `1 - tIoU` where `tIoU >= iou_threshold`, else 1;
    hard: 0 where `tIoU >= iou_threshold`, else 1.
    """
    if method == "gaussian":
        return lambda iou: torch.exp(-iou.square() / sigma)
    if method == "linear":
        return lambda iou: torch.where(iou >= iou_threshold, 1.0 - iou, torch.ones_like(iou))
    if method == "hard":
        return lambda iou: (iou < iou_threshold).to(iou.dtype)
    raise ConfigError(f"nms method={method!r}; allowed: {DECAY_METHODS}")


def _grouped_soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    weight: DecayWeight,
    min_score: float,
    max_per_group: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selection-sort Soft-NMS run independently inside every group, all groups at once.

    Each round, every group picks its highest current score (ties: lower index), then
    rescales its unpicked candidates by `weight(tIoU with the pick)`; candidates whose
    weight is 0 or whose score falls below `min_score` are dropped.

    Args:
        segments: `(N, 2)`.
        scores: `(N,)`.
        groups: `(N,) long`, dense group ids in `[0, G)`.
        weight: decay function, see `decay_weight`.
        min_score: candidates below it are never picked (before or after decay).
        max_per_group: at most this many picks per group; None for no cap.

    Returns:
        `index (S,) long` into the input and the decayed `score (S,)` of each pick,
        ordered by group, then by selection order within the group.
    """
    device = scores.device
    if scores.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=device), scores[:0]

    # Pack into rows of one group each; within a row, ascending input index, so that
    # `max` (which returns the first maximum) breaks ties towards the lower index.
    counts = torch.bincount(groups)
    width = int(counts.max())
    order = torch.argsort(groups, stable=True)
    row_start = torch.cumsum(counts, 0) - counts
    column = torch.arange(order.numel(), device=device) - row_start[groups[order]]
    slot = torch.full((counts.numel(), width), -1, dtype=torch.long, device=device)
    slot[groups[order], column] = order

    member = slot.clamp(min=0)
    start, end = segments[:, 0][member], segments[:, 1][member]
    length = end - start
    # A score of -inf marks an empty slot or a dropped candidate.
    score = scores[member].masked_fill((slot < 0) | (scores[member] < min_score), -torch.inf)
    row = torch.arange(counts.numel(), device=device)
    tiny = torch.finfo(length.dtype).tiny

    picked_row, picked_col, picked_score = [], [], []
    rounds = width if max_per_group is None else min(width, max_per_group)
    for _ in range(rounds):
        best, col = score.max(dim=1, keepdim=True)
        # Groups with nothing left leave the matrix, so late rounds touch only busy groups.
        active = best.squeeze(1) > -torch.inf
        if not bool(active.all()):
            busy = active.nonzero().squeeze(1)
            if busy.numel() == 0:
                break
            state = (row, start, end, length, score, best, col)
            row, start, end, length, score, best, col = (t[busy] for t in state)
        picked_row.append(row)
        picked_col.append(col)
        picked_score.append(best)

        # `tiou` against the pick, inlined on (A, W) planes: this loop is the hot path.
        inter = torch.minimum(end, end.gather(1, col)) - torch.maximum(start, start.gather(1, col))
        inter = inter.clamp(min=0)
        iou = inter / (length + length.gather(1, col) - inter).clamp(min=tiny)
        w = weight(iou)
        # Dropped slots become -inf * w (or NaN where w == 0); the mask resets them to -inf.
        decayed = score * w
        score = decayed.masked_fill((w == 0) | (decayed < min_score), -torch.inf)
        score.scatter_(1, col, -torch.inf)

    if not picked_row:
        return torch.empty(0, dtype=torch.long, device=device), scores[:0]
    rows, cols = torch.cat(picked_row), torch.cat(picked_col).squeeze(1)
    by_group = torch.argsort(rows, stable=True)
    return slot[rows, cols][by_group], torch.cat(picked_score).squeeze(1)[by_group]


def nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    min_score: float = 0.0,
    max_seg_num: int | None = None,
) -> torch.Tensor:
    """Greedy hard NMS.

    Candidates scoring below `min_score` are dropped; the rest are visited by descending
    score (ties: lower index first) and one is suppressed when its tIoU with an already
    kept segment is `>= iou_threshold`.

    Args:
        segments: `(N, 2)` `[start, end]`.
        scores: `(N,)`.

    Returns:
        `(K,) long` indices of kept segments, by descending score, `K <= max_seg_num`.
    """
    groups = torch.zeros_like(scores, dtype=torch.long)
    hard = decay_weight("hard", iou_threshold, sigma=1.0)
    keep, _ = _grouped_soft_nms(segments, scores, groups, hard, min_score, max_seg_num)
    return keep


def soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.1,
    sigma: float = 0.5,
    min_score: float = 0.001,
    max_seg_num: int | None = None,
    method: DecayMethod = "gaussian",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft-NMS: repeatedly keep the highest current score and decay the rest.

    See `decay_weight` for the three decays; candidates whose decayed score falls below
    `min_score` (or whose weight is 0) are dropped.

    Args:
        segments: `(N, 2)` `[start, end]`.
        scores: `(N,)`.

    Returns:
        `segments (K, 2)`, decayed `scores (K,)` and input `indices (K,) long`, in
        selection order (descending decayed score), `K <= max_seg_num`.
    """
    groups = torch.zeros_like(scores, dtype=torch.long)
    decay = decay_weight(method, iou_threshold, sigma)
    keep, kept_scores = _grouped_soft_nms(segments, scores, groups, decay, min_score, max_seg_num)
    return segments[keep], kept_scores, keep


def segment_voting(
    kept: torch.Tensor,
    segments: torch.Tensor,
    scores: torch.Tensor,
    voting_threshold: float,
    kept_class_ids: torch.Tensor | None = None,
    class_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Refine each kept segment to the score-weighted mean of the candidates it overlaps.

    Voters are the candidates with tIoU `>= voting_threshold` against the kept segment
    (and, when class ids are given, of the same class). Weights are the candidates'
    scores (TriDet's form; ActionFormer multiplies them by the tIoU). A segment with no
    voter of positive weight stays as it is.

    Args:
        kept: `(K, 2)` segments to refine.
        segments: `(N, 2)` all candidates before NMS.
        scores: `(N,)` their scores.
        kept_class_ids: `(K,)` optional.
        class_ids: `(N,)` optional, required with `kept_class_ids`.

    Returns:
        `(K, 2)` refined segments.
    """
    votes = (scores[None, :] * (segment_iou(kept, segments) >= voting_threshold)).to(kept.dtype)
    if kept_class_ids is not None and class_ids is not None:
        votes = votes * (kept_class_ids[:, None] == class_ids[None, :])
    total = votes.sum(dim=1, keepdim=True)
    voted = (votes @ segments) / total.clamp(min=torch.finfo(total.dtype).tiny)
    return torch.where(total > 0, voted, kept)


def batched_nms(
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
    """(Soft-)NMS over one video's candidates, per class or class-agnostic.

    multiclass: each class is processed on its own and capped at `max_seg_num`; the
    union is then sorted by score and capped again. Otherwise one pass ignores classes.
    `use_soft_nms=False` is greedy NMS (the `method` and `sigma` are unused).
    With `voting_threshold`, kept boundaries are refined by `segment_voting` over all
    input candidates (of the same class when multiclass).

    Args:
        segments: `(N, 2)` `[start, end]`.
        scores: `(N,)`.
        class_ids: `(N,) long`.

    Returns:
        `Detections` by descending score; ties keep selection order (multiclass: lower class
        id first).
    """
    if multiclass:
        _, groups = torch.unique(class_ids, return_inverse=True)
    else:
        groups = torch.zeros_like(class_ids, dtype=torch.long)
    decay = decay_weight(method if use_soft_nms else "hard", iou_threshold, sigma)
    keep, kept_scores = _grouped_soft_nms(segments, scores, groups, decay, min_score, max_seg_num)

    order = torch.sort(kept_scores, descending=True, stable=True).indices[:max_seg_num]
    keep, kept_scores = keep[order], kept_scores[order]
    kept, kept_classes = segments[keep], class_ids[keep]
    if voting_threshold is not None:
        same_class = (kept_classes, class_ids) if multiclass else (None, None)
        kept = segment_voting(kept, segments, scores, voting_threshold, *same_class)
    return Detections(kept, kept_scores, kept_classes, keep)
