"""One video's features and targets, and a padded batch of them.

Everything a model sees lives on a grid of steps; `TimeGrid` maps a step
(fractional steps included) to seconds of the original video and back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class TimeGrid:
    """seconds = offset_seconds + step * step_seconds (step may be fractional).

    A frame grid (features of `window`-frame clips every `stride` frames at
    `fps`) has step_seconds = stride/fps and offset_seconds = (window/2)/fps:
    step i sits at the centre of its clip (UnAV-100: 0.32 s, 0.48 s). A video
    resized to L steps has step_seconds = duration/L, offset_seconds =
    step_seconds/2: step i covers [i, i+1)·duration/L.
    """

    step_seconds: float
    offset_seconds: float

    @classmethod
    def from_frames(cls, fps: float, stride: float, window: float) -> TimeGrid:
        return cls(step_seconds=stride / fps, offset_seconds=window / 2 / fps)

    @classmethod
    def from_resize(cls, duration: float, length: int) -> TimeGrid:
        step = duration / length
        return cls(step_seconds=step, offset_seconds=step / 2)

    def to_seconds(self, steps: Tensor | float) -> Tensor | float:
        return self.offset_seconds + steps * self.step_seconds

    def to_steps(self, seconds: Tensor | float) -> Tensor | float:
        return (seconds - self.offset_seconds) / self.step_seconds

    def shifted(self, steps: float) -> TimeGrid:
        """The grid whose step 0 is this grid's step `steps` (after cropping `steps` steps)."""
        return replace(self, offset_seconds=self.offset_seconds + steps * self.step_seconds)


@dataclass
class VideoItem:
    """One video (or a crop of it) on the dataset grid."""

    video_id: str
    visual: Tensor | None  # (T, Dv) float32
    audio: Tensor | None  # (T, Da) float32, same T
    segments: Tensor  # (N, 2) float32 event boundaries in grid steps (after any crop)
    labels: Tensor  # (N,) int64 indices of the recipe's class list
    duration: float  # seconds (whole video)
    grid: TimeGrid  # this item's step 0.. → seconds of the original video

    @property
    def length(self) -> int:
        stream = self.visual if self.visual is not None else self.audio
        if stream is None:
            raise ValueError(f"video '{self.video_id}' has neither visual nor audio features")
        return stream.shape[0]


@dataclass
class Batch:
    """Padded features of several videos; padded steps are zero and masked out."""

    video_ids: list[str]
    visual: Tensor | None  # (B, T, Dv)
    audio: Tensor | None  # (B, T, Da)
    mask: Tensor  # (B, T) bool, True on valid steps
    segments: list[Tensor]  # per video (N_b, 2) grid steps
    labels: list[Tensor]  # per video (N_b,) int64
    durations: list[float]
    grids: list[TimeGrid]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(device, non_blocking=non_blocking)

        return replace(
            self,
            visual=move(self.visual),
            audio=move(self.audio),
            mask=move(self.mask),
            segments=[move(s) for s in self.segments],
            labels=[move(s) for s in self.labels],
        )

    def __len__(self) -> int:
        return len(self.video_ids)


def _pad_stack(streams: list[Tensor], length: int) -> Tensor:
    """(T_b, C) tensors → (B, length, C), zeros after each T_b."""
    out = streams[0].new_zeros(len(streams), length, streams[0].shape[1])
    for row, x in enumerate(streams):
        out[row, : x.shape[0]] = x
    return out


def collate(items: list[VideoItem], divisor: int, length: int | None = None) -> Batch:
    """Pad `items` to one length: `length` if given (fixed shapes in training),
    else the longest item; either is rounded up to a multiple of `divisor`.

    Raises ValueError when an item is longer than `length`, when the list is
    empty, or when the items disagree on which streams they carry.
    """
    if not items:
        raise ValueError("collate needs at least one item")
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    lengths = [item.length for item in items]
    longest = max(lengths)
    if length is not None and longest > length:
        video = items[lengths.index(longest)].video_id
        raise ValueError(
            f"video '{video}' has {longest} steps, more than the batch length {length}"
        )
    target = -(-(longest if length is None else length) // divisor) * divisor

    streams = {}
    for name in ("visual", "audio"):
        present = [getattr(item, name) is not None for item in items]
        if any(present) and not all(present):
            raise ValueError(f"some items have {name} features and some do not")
        streams[name] = (
            _pad_stack([getattr(i, name) for i in items], target) if all(present) else None
        )

    mask = torch.arange(target)[None, :] < torch.tensor(lengths)[:, None]
    return Batch(
        video_ids=[item.video_id for item in items],
        visual=streams["visual"],
        audio=streams["audio"],
        mask=mask,
        segments=[item.segments for item in items],
        labels=[item.labels for item in items],
        durations=[item.duration for item in items],
        grids=[item.grid for item in items],
    )
