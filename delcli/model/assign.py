"""Points on the pyramid and ActionFormer's label assignment (docs/model.md §5).

Every step of every level is a point `(t, range_lo, range_hi, stride)` with
t = i·stride on the input grid (no half-stride offset). A point is positive for
a ground-truth event when it lies near the event's centre (centre sampling) and
the event's farther boundary falls in the level's regression range; among the
events a point matches, the shortest wins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from delcli.model.config import ModelConfig

# Events whose lengths differ from the shortest match by at most this much share
# the point: its class target becomes multi-hot (ActionFormer's tolerance).
LENGTH_TIE_TOLERANCE = 1e-3


def make_points(
    level_lengths: list[int], config: ModelConfig, device: torch.device | None = None
) -> torch.Tensor:
    """All points of the pyramid, level after level.

    Args:
        level_lengths: T_l of each level, one per `config.n_levels`.

    Returns:
        `(P, 4)` float32 rows `(t, range_lo, range_hi, stride)`, P = Σ T_l, in grid
        steps; the last level's `range_hi` may be inf.
    """
    if len(level_lengths) != config.n_levels:
        raise ValueError(f"{len(level_lengths)} level lengths for n_levels={config.n_levels}")
    rows = []
    for length, stride, (lo, hi) in zip(
        level_lengths, config.strides, config.regression_ranges, strict=True
    ):
        t = torch.arange(length, dtype=torch.float32, device=device) * stride
        level = torch.tensor([lo, hi, float(stride)], dtype=torch.float32, device=device)
        rows.append(torch.cat([t[:, None], level.expand(length, 3)], dim=1))
    return torch.cat(rows, dim=0)


def assign_labels(
    points: torch.Tensor,
    segments: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    center_sample_radius: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classification and regression targets of one video's points.

    With `left = t − start`, `right = end − t` for every (point, event) pair:
    the pair matches when t lies strictly inside the event clipped to
    `centre ± radius·stride` (radius ≤ 0: strictly inside the event) and
    `range_lo ≤ max(left, right) ≤ range_hi`. The shortest matching event wins;
    every matching event within `LENGTH_TIE_TOLERANCE` of that length adds its
    class to a multi-hot target, and the regression target is the winner's
    (lowest index among exact ties) `(left, right) / stride`.

    Args:
        points: `(P, 4)` from `make_points`.
        segments: `(N, 2)` event `[start, end]` in grid steps; N may be 0.
        labels: `(N,)` long class indices.

    Returns:
        `cls_targets (P, C)` float in {0, 1} (all zero for unmatched points) and
        `reg_targets (P, 2)` float (zero for unmatched points).
    """
    dtype, device = points.dtype, points.device
    num_points = points.shape[0]
    cls_targets = points.new_zeros(num_points, num_classes)
    reg_targets = points.new_zeros(num_points, 2)
    if segments.numel() == 0:
        return cls_targets, reg_targets

    segments = segments.to(device=device, dtype=dtype)
    labels = labels.to(device=device, dtype=torch.long)
    t, range_lo, range_hi, stride = (points[:, i : i + 1] for i in range(4))
    start, end = segments[None, :, 0], segments[None, :, 1]
    left, right = t - start, end - t  # (P, N)

    if center_sample_radius > 0:
        centre = 0.5 * (start + end)
        lo = torch.maximum(centre - center_sample_radius * stride, start)
        hi = torch.minimum(centre + center_sample_radius * stride, end)
        inside = (t - lo > 0) & (hi - t > 0)
    else:
        inside = torch.minimum(left, right) > 0
    farthest = torch.maximum(left, right)
    in_range = (farthest >= range_lo) & (farthest <= range_hi)

    inf = torch.tensor(float("inf"), dtype=dtype, device=device)
    length = (end - start).expand_as(left)
    match_length = torch.where(inside & in_range, length, inf)
    shortest = match_length.min(dim=1, keepdim=True).values  # (P, 1)
    positive = torch.isfinite(shortest).squeeze(1)

    event_index = torch.arange(segments.shape[0], device=device).expand_as(left)
    sentinel = torch.full_like(event_index, segments.shape[0])
    winner = torch.where(match_length == shortest, event_index, sentinel).min(dim=1).values
    winner = winner.clamp(max=segments.shape[0] - 1)

    tied = (match_length <= shortest + LENGTH_TIE_TOLERANCE) & torch.isfinite(match_length)
    one_hot = F.one_hot(labels, num_classes).to(dtype)
    cls_targets = (tied.to(dtype) @ one_hot).clamp(max=1.0)

    distances = torch.stack([left, right], dim=-1)  # (P, N, 2)
    chosen = distances[torch.arange(num_points, device=device), winner] / stride
    reg_targets = torch.where(positive[:, None], chosen, reg_targets)
    return cls_targets, reg_targets


def assign_batch(
    points: torch.Tensor,
    segments: list[torch.Tensor],
    labels: list[torch.Tensor],
    num_classes: int,
    center_sample_radius: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`assign_labels` for every video of a batch.

    Args:
        points: `(P, 4)` shared by the batch.
        segments: per video `(N_b, 2)` in grid steps.
        labels: per video `(N_b,)` long.

    Returns:
        `cls_targets (B, P, C)` and `reg_targets (B, P, 2)`.
    """
    targets = [
        assign_labels(points, s, y, num_classes, center_sample_radius)
        for s, y in zip(segments, labels, strict=True)
    ]
    if not targets:
        return points.new_zeros(0, points.shape[0], num_classes), points.new_zeros(
            0, points.shape[0], 2
        )
    cls_targets, reg_targets = zip(*targets, strict=True)
    return torch.stack(cls_targets), torch.stack(reg_targets)
