"""Per-frame features → one row per grid step: the mean over each step's window.

Frame-level networks (DINOv2 on images, MERT on audio frames) give features at
their own rate; `WindowMean` averages them onto the recipe's `FeatureGrid`
while they stream in, so memory stays constant in the video length. A frame
at time t belongs to every step whose window [i·step, i·step + window) holds t
(UnAV-100's 0.96 s windows every 0.32 s: about three steps per frame). A step
that no frame falls in (a sampling rate below one frame per window) takes the
row of the nearest step that has frames.
"""

from __future__ import annotations

import math

import numpy as np

from delcli.features.base import FeatureGrid

# Times within this many seconds of a window's edge count as on it (float error of k/fps).
_EDGE = 1e-9


class WindowMean:
    """Accumulates (N, D) frame features at times (N,) seconds into `num_steps` means."""

    def __init__(self, grid: FeatureGrid, num_steps: int, dim: int) -> None:
        self.step, self.window = grid.step_seconds, grid.window_seconds
        self.sums = np.zeros((num_steps, dim), dtype=np.float64)
        self.counts = np.zeros(num_steps, dtype=np.int64)

    @property
    def end_seconds(self) -> float:
        """Where the last step's window ends: later frames are not needed."""
        return (len(self.counts) - 1) * self.step + self.window

    def add(self, times: np.ndarray, features: np.ndarray) -> None:
        num_steps = len(self.counts)
        for time, row in zip(times, features, strict=True):
            first = max(0, math.ceil((time - self.window) / self.step + _EDGE))
            last = min(num_steps - 1, math.floor((time + _EDGE) / self.step))
            if first <= last:
                self.sums[first : last + 1] += row
                self.counts[first : last + 1] += 1

    def means(self) -> np.ndarray:
        """(T, D) float32: each step's mean; empty steps copy the nearest filled step."""
        filled = np.flatnonzero(self.counts)
        if len(filled) == 0:
            return np.zeros(self.sums.shape, dtype=np.float32)
        means = self.sums[filled] / self.counts[filled, None]
        steps = np.arange(len(self.counts))
        nearest = np.abs(steps[:, None] - filled[None, :]).argmin(axis=1)
        return means[nearest].astype(np.float32)
