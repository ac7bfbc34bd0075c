"""Exponential moving average of a model's weights, the weights that are evaluated.

As ActionFormer's ModelEma: after every optimizer step, every floating entry
of the state dict (parameters and buffers) becomes
`ema = decay · ema + (1 − decay) · model`; other entries are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """A frozen copy of `model` (in eval mode) tracking its weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        for name, average in self.module.state_dict().items():
            value = current[name].detach()
            if self.decay == 0.0 or not average.is_floating_point():
                average.copy_(value)
            else:
                average.mul_(self.decay).add_(value.to(average.dtype), alpha=1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
