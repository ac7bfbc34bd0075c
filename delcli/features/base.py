"""What every feature extractor shares: the time grid, its outputs, its interface.

A recipe's streams (visual and audio, one or several extractors) all live on one
`FeatureGrid`: step i covers frames [i·stride, i·stride + window) at `fps`, i.e.
seconds [i·stride/fps, (i·stride + window)/fps), and sits at the centre of that
window (UnAV-100: fps 25, stride 8, window 24 → step i at 0.32·i + 0.48 s).
Audio extractors cut their windows on the same grid in seconds, so every stream
of a video has exactly `grid.num_steps(duration)` rows and nothing needs
truncating or interpolating afterwards.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from delcli.errors import ConfigError

if TYPE_CHECKING:
    from delcli.data.batch import TimeGrid
    from delcli.io import MediaInfo

# duration·fps is computed in floating point (9.96 s · 25 = 248.99999999999997):
# a window that ends within this many frames of the end still counts as full.
_FRAME_TOLERANCE = 1e-6
MIN_STEP_SECONDS = 1e-3  # a mistyped grid (fps 1e9) would otherwise ask for 1e11 steps


@dataclass(frozen=True)
class FeatureGrid:
    """Step i covers frames [i·stride, i·stride + window) of the video resampled to `fps`."""

    fps: float
    stride: float
    window: float

    def __post_init__(self) -> None:
        for key in ("fps", "stride", "window"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"feature grid: {key} must be a positive number, got {value!r}")
        if self.stride / self.fps < MIN_STEP_SECONDS:
            raise ConfigError(
                f"feature grid: a step every {self.stride / self.fps:.3g} s "
                f"(fps {self.fps:g}, stride {self.stride:g}); at most "
                f"{1 / MIN_STEP_SECONDS:g} steps per second"
            )

    @property
    def step_seconds(self) -> float:
        return self.stride / self.fps

    @property
    def window_seconds(self) -> float:
        return self.window / self.fps

    def num_steps(self, duration: float) -> int:
        """Full windows that fit in `duration` seconds, at least 1.

        max(1, floor((duration·fps − window) / stride) + 1); UnAV-100's 10 s clip → 29.
        """
        room = (duration * self.fps - self.window) / self.stride
        return max(1, math.floor(room + _FRAME_TOLERANCE) + 1)

    def window_starts(self, num_steps: int) -> np.ndarray:
        """(T,) float64 start of each step's window, in seconds."""
        return np.arange(num_steps, dtype=np.float64) * self.step_seconds

    def step_centres(self, num_steps: int) -> np.ndarray:
        """(T,) float64 centre of each step's window, in seconds (where the step 'is')."""
        return self.window_starts(num_steps) + self.window_seconds / 2

    def frame_windows(self, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(T,) int64 first frame and (T,) int64 end frame (exclusive) of each step's window."""
        first = np.rint(np.arange(num_steps) * self.stride).astype(np.int64)
        return first, first + max(1, round(self.window))

    def time_grid(self) -> TimeGrid:
        """The model-side mapping step ↔ seconds (step i at its window's centre)."""
        from delcli.data.batch import TimeGrid

        return TimeGrid.from_frames(self.fps, self.stride, self.window)


@dataclass(frozen=True)
class StreamOutput:
    """One feature stream an extractor writes: `{video}_{name}.npy`, (T, dim) float32."""

    name: str
    modality: Literal["visual", "audio"]
    dim: int

    def __post_init__(self) -> None:
        if self.modality not in ("visual", "audio"):
            raise ValueError(f"stream '{self.name}': modality must be visual or audio")
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"stream name {self.name!r} must be letters, digits and '_'")


class Extractor(ABC):
    """Decodes one video and returns its feature streams on `grid`.

    Subclasses set `name` (the registry key) and `version` (bumped whenever the
    numbers an extractor produces change, so stale feature folders are noticed),
    and may declare `option_defaults`: then any other option is a `ConfigError`.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any] | None] = None

    def __init__(
        self, grid: FeatureGrid, weights: str | None = None, device: str = "cpu", **options: Any
    ) -> None:
        self.grid = grid
        self.weights = weights
        self.device = device
        if self.option_defaults is not None:
            unknown = sorted(set(options) - set(self.option_defaults))
            if unknown:
                allowed = ", ".join(sorted(self.option_defaults)) or "none"
                raise ConfigError(
                    f"extractor '{self.name}': unknown option(s) {', '.join(unknown)} "
                    f"(allowed: {allowed})"
                )
            options = {**self.option_defaults, **options}
        self.options = options

    @property
    def outputs(self) -> list[StreamOutput]:
        """The streams `extract` returns, in order."""
        raise NotImplementedError

    @abstractmethod
    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        """One float32 (grid.num_steps(info.duration), dim) array per output.

        A missing modality (no audio or no video track) gives zeros of the right
        shape, never an exception; the caller notes it.
        """

    def zeros(self, num_steps: int, output: StreamOutput) -> np.ndarray:
        """The (T, dim) float32 stand-in for a stream whose track is missing."""
        return np.zeros((num_steps, output.dim), dtype=np.float32)
