"""Temporal IoU (tIoU) of 1-D segments.

A segment is a `[start, end]` pair with `end >= start`, in any unit (seconds or
grid steps). Zero-length segments overlap nothing: their tIoU is 0, never NaN.
"""

from __future__ import annotations

import torch


def tiou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """tIoU of segments paired by broadcasting.

    Args:
        a: `(..., 2)` segments.
        b: `(..., 2)` segments, broadcastable against `a`.

    Returns:
        `(...)` intersection over union, in `[0, 1]`.
    """
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    # Only a union of 0 (two zero-length segments) is clamped; then inter is 0 too.
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def segment_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise tIoU between two sets of segments.

    Args:
        a: `(N, 2)` segments.
        b: `(M, 2)` segments.

    Returns:
        `(N, M)` tIoU, entry `[i, j]` for `a[i]` against `b[j]`.
    """
    return tiou(a[:, None, :], b[None, :, :])
