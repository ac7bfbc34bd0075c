"""Head outputs → candidate segments on the grid, before NMS (docs/model.md §9).

Per level, as ActionFormer: scores σ(logit) at valid points, keep those above
`pre_nms_thresh`, the `pre_nms_topk` best (points × classes), turn each into
`[t − δ_s·s_l, t + δ_e·s_l]`, drop those no longer than `min_duration` grid
steps, and concatenate the levels. Conversion to seconds and NMS belong to the
inference code (`delcli.inference.batched_nms`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from delcli.model.config import ModelConfig


class Candidates(NamedTuple):
    """One video's candidates: `segments (K, 2)` float in grid steps, `scores (K,)`,
    `labels (K,)` long class indices; level by level, by descending score within a level."""

    segments: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def _level_candidates(
    logits: torch.Tensor,
    offsets: torch.Tensor,
    mask: torch.Tensor,
    stride: int,
    config: ModelConfig,
) -> Candidates:
    """One video, one level: `logits (T_l, C)`, `offsets (T_l, 2)`, `mask (T_l,)`."""
    num_classes = logits.shape[-1]
    scores = (torch.sigmoid(logits.float()) * mask[:, None]).flatten()
    index = torch.nonzero((scores > config.pre_nms_thresh) & mask.repeat_interleave(num_classes))
    index = index.squeeze(1)
    # A stable sort on ascending indices breaks score ties towards the lower (point, class).
    order = torch.sort(scores[index], descending=True, stable=True).indices
    index = index[order[: config.pre_nms_topk]]
    point, label = index // num_classes, index % num_classes

    t = point.to(torch.float32) * stride
    distance = offsets[point].float() * stride
    segments = torch.stack([t - distance[:, 0], t + distance[:, 1]], dim=-1)
    long_enough = segments[:, 1] - segments[:, 0] > config.min_duration
    return Candidates(segments[long_enough], scores[index][long_enough], label[long_enough])


def decode_candidates(
    cls_logits: list[torch.Tensor],
    offsets: list[torch.Tensor],
    masks: list[torch.Tensor],
    config: ModelConfig,
) -> list[Candidates]:
    """Candidate segments of every video in the batch.

    Args:
        cls_logits: per level `(B, T_l, C)`.
        offsets: per level `(B, T_l, 2)`, distances in units of the level stride.
        masks: per level `(B, T_l)` bool.

    Returns:
        One `Candidates` per video; each video is decoded on its own, so the result
        does not depend on the batch it came in.
    """
    batch = masks[0].shape[0]
    videos = []
    for b in range(batch):
        levels = [
            _level_candidates(logits[b], distance[b], mask[b], stride, config)
            for logits, distance, mask, stride in zip(
                cls_logits, offsets, masks, config.strides, strict=True
            )
        ]
        videos.append(Candidates(*(torch.cat(parts) for parts in zip(*levels, strict=True))))
    return videos
