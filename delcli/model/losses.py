"""Detection losses on the pyramid's points: L_cls and L_reg of Eq. (14).

Small pure functions of tensors (computed in float32 so bf16 autocast cannot
underflow them), the EMA positive-count normaliser, and `detection_losses`,
which combines them the way ActionFormer does: classification over every valid
point × class, regression over the positive points, both divided by the
normaliser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from delcli.model.config import LossConfig

Reduction = Literal["none", "mean", "sum"]

# Keeps the IoU and centre-distance ratios finite when both segments are empty.
DIOU_EPS = 1e-8


def _reduce(loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    raise ValueError(f"reduction={reduction!r}; allowed: none, mean, sum")


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al., 2017; fvcore's form), elementwise on any shape.

    With p = σ(x), target y ∈ [0, 1]:
        p_t = p·y + (1 − p)·(1 − y),  α_t = α·y + (1 − α)·(1 − y)
        FL = α_t · (1 − p_t)^γ · BCE(x, y)
    α < 0 disables the α_t weighting.
    """
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return _reduce(loss, reduction)


def ctr_diou_loss_1d(
    pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "sum"
) -> torch.Tensor:
    """1-D centre-DIoU between segments sharing an anchor point, from distances.

    `pred (N, 2)` and `target (N, 2)` hold non-negative `(left, right)` distances:
        inter = min(l_p, l_g) + min(r_p, r_g),  union = l_p + r_p + l_g + r_g − inter
        len_c = max(l_p, l_g) + max(r_p, r_g)          (enclosing segment)
        ρ = ½·((r_p − l_p) − (r_g − l_g))              (distance between centres)
        loss = 1 − inter/union + (ρ / len_c)²
    Identical segments give 0; ratios are guarded so the loss never NaNs.
    """
    pred, target = pred.float(), target.float()
    lp, rp = pred.unbind(-1)
    lg, rg = target.unbind(-1)
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = lp + rp + lg + rg - inter
    iou = inter / union.clamp(min=DIOU_EPS)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    rho = 0.5 * ((rp - lp) - (rg - lg))
    loss = 1.0 - iou + (rho / enclosing.clamp(min=DIOU_EPS)) ** 2
    return _reduce(loss, reduction)


def smooth_l1_offset_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    beta: float = 1.0,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Smooth-L1 on `(left, right)` distances, the paper's stated L_reg (§3.4).

    Per distance, with d = |pred − target|: ½·d²/β if d < β, else d − ½·β (β = 0 is L1).
    The two distances of a point are summed, so `reduction="none"` gives `(N,)`.
    """
    loss = F.smooth_l1_loss(pred.float(), target.float(), beta=beta, reduction="none")
    return _reduce(loss.sum(dim=-1), reduction)


def softmax_cross_entropy_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float = 0.0,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Cross-entropy over the C classes plus an implicit background (the paper's L_cls).

    The heads emit C logits and no background channel, so background gets a fixed
    logit of 0: softmax over `[x_1 … x_C, 0]`. Then σ(x_c), which decoding uses as the
    score, equals P(c) / (P(c) + P(background)), so a CE-trained head ranks its
    candidates as sensibly as a sigmoid-trained one, and the prior bias starts it
    near background. The target distribution over C + 1 entries is
        q_c = y_c / max(Σ y, 1),  q_bg = 1 − Σ_c q_c
    (multi-hot targets share the mass; an all-zero target is background), smoothed
    as q ← (1 − ε)·q + ε/(C + 1). Loss per point: −Σ q · log softmax.

    Args:
        logits: `(N, C)`.
        targets: `(N, C)` in [0, 1].

    Returns:
        per point `(N,)` for `reduction="none"`, else a scalar.
    """
    logits, targets = logits.float(), targets.float()
    foreground = targets / targets.sum(dim=-1, keepdim=True).clamp(min=1.0)
    background = (1.0 - foreground.sum(dim=-1, keepdim=True)).clamp(min=0.0)
    q = torch.cat([foreground, background], dim=-1)
    if label_smoothing > 0:
        q = q * (1.0 - label_smoothing) + label_smoothing / q.shape[-1]
    full = torch.cat([logits, logits.new_zeros(*logits.shape[:-1], 1)], dim=-1)
    loss = -(q * F.log_softmax(full, dim=-1)).sum(dim=-1)
    return _reduce(loss, reduction)


class PositiveCountNormalizer(nn.Module):
    """EMA of the number of positive points: `N ← m·N + (1 − m)·max(n_pos, 1)`.

    Dividing the losses by it (rather than by this batch's count) keeps their scale
    steady when a batch has few events. The value is a buffer so it travels with
    checkpoints; it only moves in training mode. Under torch.distributed the count
    is averaged over replicas first, so every replica divides by the same number.
    """

    def __init__(self, loss_config: LossConfig) -> None:
        super().__init__()
        self.momentum = loss_config.normalizer_momentum
        self.register_buffer("value", torch.tensor(float(loss_config.normalizer_init)))

    def forward(self, num_positives: torch.Tensor | int) -> torch.Tensor:
        """Update with this batch's positive count (training mode only); returns the
        normaliser as a detached scalar."""
        if self.training:
            count = torch.as_tensor(num_positives, dtype=torch.float32, device=self.value.device)
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(count, op=dist.ReduceOp.SUM)
                count = count / dist.get_world_size()
            with torch.no_grad():
                new = self.momentum * self.value + (1 - self.momentum) * count.clamp(min=1.0)
                self.value.copy_(new)
        return self.value.detach().clone()


def detection_losses(
    cls_logits: torch.Tensor,
    offsets: torch.Tensor,
    cls_targets: torch.Tensor,
    reg_targets: torch.Tensor,
    valid: torch.Tensor,
    loss_config: LossConfig,
    normalizer: PositiveCountNormalizer | Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """L_cls and L_reg of Eq. (14) over all points of a batch.

    Args:
        cls_logits: `(B, P, C)`; offsets: `(B, P, 2)` predicted distances (stride units).
        cls_targets: `(B, P, C)`; reg_targets: `(B, P, 2)` from `assign_batch`.
        valid: `(B, P)` bool, the concatenated level masks.

    Returns:
        `{"cls": …, "reg": …}`, each summed then divided by the positive-count EMA.
        Classification covers every valid point × class (focal, targets smoothed as
        `y·(1 − ε) + ε/(C + 1)`; or the `ce` option), regression the positive points
        (valid, with any class target); no positive points → `reg` is exactly 0.
    """
    positive = valid & (cls_targets > 0).any(dim=-1)
    norm = normalizer(positive.sum())
    epsilon = loss_config.label_smoothing

    # Masking (not indexing) keeps the shapes static: no host sync, compile-friendly.
    if loss_config.cls_loss == "focal":
        targets = cls_targets
        if epsilon > 0:
            targets = targets * (1.0 - epsilon) + epsilon / (cls_targets.shape[-1] + 1)
        per_point = sigmoid_focal_loss(
            cls_logits, targets, loss_config.focal_alpha, loss_config.focal_gamma, "none"
        ).sum(dim=-1)
    else:
        per_point = softmax_cross_entropy_loss(cls_logits, cls_targets, epsilon, "none")
    cls = torch.where(valid, per_point, 0.0).sum()

    # Non-positive points get a harmless unit pair so nothing non-finite reaches autograd.
    ones = torch.ones_like(reg_targets, dtype=torch.float32)
    mask = positive.unsqueeze(-1)
    pred = torch.where(mask, offsets.float(), ones)
    target = torch.where(mask, reg_targets.float(), ones)
    if loss_config.reg_loss == "diou":
        per_point = ctr_diou_loss_1d(pred, target, "none")
    else:
        per_point = smooth_l1_offset_loss(pred, target, reduction="none")
    reg = torch.where(positive, per_point, 0.0).sum()
    return {"cls": cls / norm, "reg": reg / norm}
