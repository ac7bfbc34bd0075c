"""Training-time cropping: ActionFormer's random truncation (`truncate_feats`).

A video longer than `max_seq_len` is cut to a window of `max_seq_len` steps;
a shorter one, with `crop_ratio = (r0, r1)`, to a random length in
[r0·T, r1·T]. Up to 200 window positions are tried, keeping the first that
holds at least `trunc_thresh` of some event's length; events are clipped to
the window, those with less than `trunc_thresh` inside are dropped, and the
rest are shifted so the window starts at step 0. The window is not widened by
half a clip as in later ActionFormer versions: UnAV and TriDet, which DEL
follows, do not widen it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from delcli.data.batch import VideoItem

MAX_TRIES = 200


def crop_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch, index)."""
    words = [value & 0xFFFFFFFF for value in (seed, seed >> 32, epoch, index)]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def _randint(low: int, high: int, generator: torch.Generator, count: int = 1) -> torch.Tensor:
    """`count` integers uniform in [low, high] (inclusive)."""
    return torch.randint(low, high + 1, (count,), generator=generator)


def crop_length(
    length: int,
    max_seq_len: int,
    crop_ratio: tuple[float, float] | None,
    generator: torch.Generator,
) -> int:
    """The window length to crop a `length`-step video to (== length: no crop)."""
    if length > max_seq_len:
        return max_seq_len
    if crop_ratio is None:
        return length
    low = max(round(crop_ratio[0] * length), 1)
    high = max(min(round(crop_ratio[1] * length), length), low)
    return int(_randint(low, high, generator))


def inside_fraction(segments: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """(W, N) share of each event's length inside each window [start, start + length]."""
    starts = starts.to(segments.dtype)[:, None]
    inter = torch.minimum(segments[None, :, 1], starts + length) - torch.maximum(
        segments[None, :, 0], starts
    )
    return inter.clamp(min=0) / (segments[:, 1] - segments[:, 0]).clamp(min=1e-6)


def random_truncate(
    item: VideoItem,
    max_seq_len: int,
    crop_ratio: tuple[float, float] | None,
    trunc_thresh: float,
    generator: torch.Generator,
) -> VideoItem:
    """A random crop of `item` that keeps events whole where it can (see module doc)."""
    total = item.length
    length = crop_length(total, max_seq_len, crop_ratio, generator)
    if length >= total:
        return item
    starts = _randint(0, total - length, generator, MAX_TRIES)
    if len(item.segments):
        fraction = inside_fraction(item.segments, starts, length)
        hits = (fraction >= trunc_thresh).any(dim=1)
        # no window keeps an event: fall back to the one holding the largest share of one
        choice = int(hits.to(torch.int8).argmax()) if hits.any() else int(fraction.amax(1).argmax())
        keep = fraction[choice] >= trunc_thresh
    else:
        choice, keep = 0, torch.zeros(0, dtype=torch.bool)
    start = int(starts[choice])
    segments = (item.segments[keep].clamp(start, start + length) - start).to(torch.float32)

    def window(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[start : start + length]

    return replace(
        item,
        visual=window(item.visual),
        audio=window(item.audio),
        segments=segments,
        labels=item.labels[keep],
        grid=item.grid.shifted(start),
    )
