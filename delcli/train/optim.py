"""AdamW with weight decay on conv/linear weights only, and the per-step schedule.

Decay groups follow ActionFormer: the `weight` of every `nn.Linear` and
`nn.Conv1d` (MaskedConv1d's inner conv included) is decayed; biases, norm
weights, `Scale`/LayerScale scales, CLS tokens, the SCL log-temperature and
every other parameter are not.

The schedule is per optimizer step: linear warmup from 0 to `lr` over
`warmup_epochs × steps_per_epoch` steps, then cosine annealing to `min_lr`
over the remaining `epochs × steps_per_epoch` steps (ActionFormer counts the
total as epochs + warmup epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from delcli.recipe import TrainConfig

DECAYED_MODULES = (nn.Linear, nn.Conv1d)


def decay_groups(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the parameters with and without weight decay; together, all of them once."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if name == "weight" and isinstance(module, DECAYED_MODULES):
                decay.append(full)
            else:
                no_decay.append(full)
    names = {name for name, _ in model.named_parameters()}
    grouped = decay + no_decay
    if len(grouped) != len(set(grouped)) or set(grouped) != names:
        missing = sorted(names - set(grouped))
        raise AssertionError(f"decay groups do not partition the parameters (missing: {missing})")
    return decay, no_decay


FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused AdamW kernel runs


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.999, eps 1e-8) with the two decay groups of `decay_groups`.

    The update is torch's fused kernel where the weights live on the CPU or a CUDA device
    (the same AdamW arithmetic in one pass over all tensors; on the CPU 4× faster than
    the default per-tensor loop for the d = 128 UnAV-100 model, ~40 ms per step).
    """
    parameters = dict(model.named_parameters())
    decay, no_decay = decay_groups(model)
    groups = [
        {"params": [parameters[n] for n in decay], "weight_decay": config.weight_decay},
        {"params": [parameters[n] for n in no_decay], "weight_decay": 0.0},
    ]
    fused = all(
        p.device.type in FUSED_DEVICES and p.dtype.is_floating_point for p in parameters.values()
    )
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused or None)


@dataclass
class WarmupCosine:
    """Learning-rate factor (of the base lr) at optimizer step `step` (0-based).

    factor(0) = 0, factor(warmup_steps) = 1, factor(total_steps) = min_lr / lr.
    """

    warmup_steps: int
    total_steps: int
    min_factor: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        cosine_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / cosine_steps)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step warmup + cosine over (warmup_epochs + epochs) × steps_per_epoch steps."""
    factor = WarmupCosine(
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        total_steps=(config.warmup_epochs + config.epochs) * steps_per_epoch,
        min_factor=config.min_lr / config.lr if config.lr > 0 else 0.0,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
