"""Input normalisation (docs/model.md §0): each feature channel standardised by the
training split's statistics before the embedding.

Why it is part of the model: real benchmark features (I3D, TSP, VGGish) carry a
common per-channel offset several times their spread (released VGGish lies in
0–255). The embedding's first convolution has no bias and is followed by
LayerNorm, so the network is invariant to the features' scale but not to that
offset, which swamps the temporal contrast the detector needs; on a UnAV-shaped
benchmark the audio-visual model then ignores the 2048-d visual stream
(docs/benchmarks.md). The statistics are buffers of the network, so they travel
with the weights (safetensors), and `train`, `eval`, `predict`, `export` and the
ONNX graph all apply the very same arithmetic.

Statistics are exact: `ChannelStatistics` merges per-video means and squared
deviations in float64 (Chan et al.'s parallel update), over valid steps only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from delcli.model.blocks import zero_padding

MIN_STD = 1e-6  # a constant channel is centred, not blown up


class FeatureNormalization(nn.Module):
    """`(x − mean) / std` per channel; identity until statistics are set.

    Buffers (saved with the weights): `mean (D,)`, `std (D,)` float32 and `count ()`
    int64, the number of steps the statistics were computed from (0 = none yet).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @property
    def fitted(self) -> bool:
        return int(self.count) > 0

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor, count: int) -> None:
        """Install statistics (any float dtype; stored as float32, std floored at MIN_STD)."""
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(
                f"statistics of shape {tuple(mean.shape)} for {self.mean.shape[0]} channels"
            )
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.clamp_min(MIN_STD).to(self.std))
        self.count.fill_(int(count))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`x (B, T, D)`, `mask (B, T)` bool → standardised `x`, padded steps zero."""
        y = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return zero_padding(y, mask)


class ChannelStatistics:
    """Running per-channel mean and standard deviation of `(T, D)` arrays, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None  # sum of squared deviations from the mean

    def add(self, x: torch.Tensor) -> None:
        """Fold in the rows of `x (T, D)` (every row is a valid step)."""
        x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
        n = x.shape[0]
        if n == 0:
            return
        mean = x.mean(dim=0)
        m2 = ((x - mean) ** 2).sum(dim=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) float64; std is the population standard deviation."""
        if self.mean is None:
            raise ValueError("no steps were added")
        return self.mean, (self.m2 / self.count).sqrt()


def channel_statistics(arrays: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean, std, steps) over every row of every `(T, D)` array."""
    running = ChannelStatistics()
    for x in arrays:
        running.add(x)
    mean, std = running.result()
    return mean, std, running.count
