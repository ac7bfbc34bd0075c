"""Classification and regression heads on the fused pyramid (docs/model.md §5).

ActionFormer's heads: one set of weights shared by every pyramid level, a small
masked conv trunk, then a masked conv to C class logits (sigmoid, no background
class) or to 2 boundary distances. A point at step i of level l sits at
t = i·stride_l on the input grid and predicts the event `[t − δ_s, t + δ_e]`
(Eq. 3–4); the regression head outputs `(δ_s, δ_e)` in units of the stride.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from delcli.model.blocks import ConvNormAct, MaskedConv1d
from delcli.model.config import ModelConfig


def _trunk(config: ModelConfig) -> nn.ModuleList:
    """(head_layers − 1) × [masked conv → LN → ReLU], embed_dim → head_dim → … → head_dim."""
    widths = [config.embed_dim] + [config.head_dim] * (config.head_layers - 1)
    return nn.ModuleList(
        ConvNormAct(c_in, c_out, config.head_kernel) for c_in, c_out in pairwise(widths)
    )


def _trunk_width(config: ModelConfig) -> int:
    return config.head_dim if config.head_layers > 1 else config.embed_dim


class ClassificationHead(nn.Module):
    """Per-point class logits, shared across levels.

    The final bias starts at `−log((1 − π)/π)`, π = `prior_prob`, so every class
    begins with probability π and the focal loss is not swamped by the many
    background points in the first iterations (RetinaNet's prior initialisation).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.trunk = _trunk(config)
        self.logits = MaskedConv1d(_trunk_width(config), config.num_classes, config.head_kernel)
        prior = config.prior_prob
        nn.init.constant_(self.logits.conv.bias, -math.log((1.0 - prior) / prior))

    def forward(self, levels: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """`levels[l] (B, T_l, d)`, `masks[l] (B, T_l) bool` → per level `(B, T_l, C)` logits,
        zero at padded steps."""
        outputs = []
        for x, mask in zip(levels, masks, strict=True):
            for layer in self.trunk:
                x = layer(x, mask)
            logits, _ = self.logits(x, mask)
            outputs.append(logits)
        return outputs


class Scale(nn.Module):
    """A learnable scalar multiplier (init 1): lets each level rescale the shared
    regression output to its own range of distances."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype)


class RegressionHead(nn.Module):
    """Per-point distances to the event start and end, shared across levels except
    for one `Scale` per level; ReLU keeps them non-negative."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.trunk = _trunk(config)
        self.offsets = MaskedConv1d(_trunk_width(config), 2, config.head_kernel)
        self.scales = nn.ModuleList(Scale() for _ in range(config.n_levels))

    def forward(self, levels: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """`levels[l] (B, T_l, d)`, `masks[l] (B, T_l) bool` → per level `(B, T_l, 2)`
        distances `(δ_s, δ_e) ≥ 0` in units of the level's stride, zero at padded steps."""
        if len(levels) != len(self.scales):
            raise ValueError(
                f"regression head built for {len(self.scales)} levels, got {len(levels)}"
            )
        outputs = []
        for x, mask, scale in zip(levels, masks, self.scales, strict=True):
            for layer in self.trunk:
                x = layer(x, mask)
            offsets, _ = self.offsets(x, mask)
            outputs.append(F.relu(scale(offsets)))
        return outputs
