"""`basic`: a fast, weight-free extractor of colour, edge, motion and sound statistics.

It needs no download and runs far faster than real time on one CPU core, so it
is the default for the offline demo and for machines with no extractor weights.

Visual stream, from frames decoded once at the grid's fps with a small short
side (64 px): per frame, the mean and std of R, G, B; the mean colour of each
quarter of the picture (2×2 layout); a hue histogram (8 bins, each pixel
weighted by its chroma, so grey carries no hue); mean saturation and value;
horizontal and vertical edge energy (mean absolute gradient of the luma).
Per window these are pooled to mean and std over the window's frames. Motion
(mean absolute luma difference to the previous frame, overall and per quarter)
is pooled to mean, std and max.

Audio stream, from 16 kHz audio: 32 log-mel bands (the VGGish front end with
fewer bands) pooled over the window's 10 ms frames to mean, std and max per
band, plus mean and max spectral flux (onset strength).

Per-frame statistics are computed in vectorised numpy on whole batches and
pooled with cumulative sums, so the cost is one pass over the frames.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from delcli.features.base import Extractor, StreamOutput
from delcli.features.logmel import LogMelSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from delcli.io import MediaInfo

AUDIO_SPEC = LogMelSpec(bands=32)
HUE_BINS = 8
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _frame_stat_names() -> list[str]:
    names = [f"{s}_{c}" for s in ("mean", "std") for c in "rgb"]
    names += [f"quad{q}_{c}" for q in range(4) for c in "rgb"]
    names += [f"hue{b}" for b in range(HUE_BINS)] + ["saturation", "value", "edge_x", "edge_y"]
    return names


FRAME_STATS = _frame_stat_names()  # per-frame appearance statistics
MOTION_STATS = ["motion", *(f"motion_quad{q}" for q in range(4))]
VISUAL_NAMES = (
    [f"{name}.mean" for name in FRAME_STATS]
    + [f"{name}.std" for name in FRAME_STATS]
    + [f"{name}.{pool}" for pool in ("mean", "std", "max") for name in MOTION_STATS]
)
AUDIO_NAMES = [
    f"mel{b}.{pool}" for pool in ("mean", "std", "max") for b in range(AUDIO_SPEC.bands)
] + ["flux.mean", "flux.max"]


# Every reduction is numpy's own over contiguous memory, never a matrix product: BLAS
# splits even these small products across its threads, which fight the decoder's and
# the audio thread's for the cores (2-10× slower on 2 busy cores; `_means` of a batch
# through OpenBLAS's gemv cost more than all of `frame_statistics` does now).


def _means(a: np.ndarray, axes: int) -> np.ndarray:
    """Mean over the last `axes` axes (pairwise summation; `a` C-contiguous, so no copy)."""
    flat = a.reshape(*a.shape[: a.ndim - axes], -1)
    return np.add.reduce(flat, axis=-1) * np.float32(1 / flat.shape[-1])


def _quarter_means(a: np.ndarray) -> np.ndarray:
    """(…, H, W) → (…, 2, 2) mean of each quarter (an odd last row/column is left out):
    column sums of the top and bottom halves, then their left and right halves."""
    h, w = a.shape[-2:]
    hh, hw = h // 2, w // 2
    halves = np.stack([a[..., :hh, :].sum(-2), a[..., hh : 2 * hh, :].sum(-2)], axis=-2)
    quarters = np.stack([halves[..., :hw].sum(-1), halves[..., hw : 2 * hw].sum(-1)], axis=-1)
    return quarters * np.float32(1 / (hh * hw))


def frame_statistics(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 RGB → (N, len(FRAME_STATS)) appearance, (N, H, W) luma."""
    n = frames.shape[0]
    # Planar (N, 3, H, W) floats, laid out so (order="C"): every reduction below then
    # runs over contiguous memory.
    x = np.multiply(frames.transpose(0, 3, 1, 2), np.float32(1 / 255), dtype=np.float32, order="C")
    mean = _means(x, 2)
    # The variance about the mean (two passes): E[x²] − mean² in float32 loses ~1e-3 of
    # the std of a flat frame to cancellation.
    centred = x.reshape(n, 3, -1) - mean[..., None]
    std = np.sqrt(np.einsum("ncp,ncp->nc", centred, centred) * np.float32(1 / centred.shape[-1]))
    quads = _quarter_means(x).transpose(0, 2, 3, 1).reshape(n, 12)  # quarter-major, then rgb

    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    value = _means(np.maximum(np.maximum(r, g), b), 2)
    # Hue and saturation from every other pixel: a quarter of the work, the same statistics.
    hue_bins, saturation = _colourfulness(np.ascontiguousarray(x[:, :, ::2, ::2]))

    luma = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    edge_x = _means(np.abs(np.diff(luma, axis=2)), 2)
    edge_y = _means(np.abs(np.diff(luma, axis=1)), 2)
    columns = [saturation, value, edge_x, edge_y]
    stats = np.concatenate([mean, std, quads, hue_bins, np.stack(columns, axis=1)], axis=1)
    return stats, luma


def _colourfulness(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, HUE_BINS) mean chroma in each hue sector (red at bin 0), (N,) mean saturation.

    Each pixel counts with its chroma (max − min of R, G, B), so grey has no hue.
    """
    n = x.shape[0]
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    high = np.maximum(np.maximum(r, g), b)
    chroma = high - np.minimum(np.minimum(r, g), b)
    saturation = _means(chroma / np.maximum(high, np.float32(1e-6)), 2)
    # Hue in [0, 6) (sextants of the colour wheel): (g − b)/chroma mod 6 where red is
    # the largest, (b − r)/chroma + 2 where green is, (r − g)/chroma + 4 where blue is.
    # One division serves all three, and the first quotient lies in [−1, 1], where
    # mod 6 adds 6 to a negative value: the same floats as computing each branch.
    red, green = high == r, high == g
    hue = np.where(red, g - b, np.where(green, b - r, r - g))
    hue /= np.maximum(chroma, np.float32(1e-6))
    six, zero, two, four = (np.float32(v) for v in (6, 0, 2, 4))
    hue += np.where(red, np.where(hue < 0, six, zero), np.where(green, two, four))
    hue *= HUE_BINS / 6
    bins = np.minimum(hue.astype(np.intp), HUE_BINS - 1)
    bins += np.arange(n)[:, None, None] * HUE_BINS
    totals = np.bincount(bins.ravel(), weights=chroma.ravel(), minlength=n * HUE_BINS)
    return (totals.reshape(n, HUE_BINS) / chroma[0].size).astype(np.float32), saturation


def motion_statistics(luma: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """(N, len(MOTION_STATS)) mean |Δluma| to the previous frame, overall and per quarter."""
    before = np.concatenate([luma[:1] if previous is None else previous[None], luma[:-1]])
    diff = np.abs(luma - before)
    quads = _quarter_means(diff).reshape(len(diff), 4)
    return np.concatenate([_means(diff, 2)[:, None], quads], axis=1)


def pool_windows(
    values: np.ndarray, first: np.ndarray, end: np.ndarray, pools: tuple[str, ...]
) -> np.ndarray:
    """(T, len(pools)·D): each pool ('mean', 'std', 'max') of values[first_i:end_i].

    Windows are clipped to the rows present; an empty window pools to 0.
    """
    count_rows, dim = values.shape
    first = np.clip(first, 0, count_rows)
    end = np.clip(end, first, count_rows)
    count = (end - first)[:, None].astype(np.float64)
    safe = np.maximum(count, 1)
    data = values.astype(np.float64)
    out = []
    if "mean" in pools or "std" in pools:
        sums = np.concatenate([np.zeros((1, dim)), np.cumsum(data, axis=0)])
        squares = np.concatenate([np.zeros((1, dim)), np.cumsum(data * data, axis=0)])
        mean = (sums[end] - sums[first]) / safe
        variance = np.maximum((squares[end] - squares[first]) / safe - mean * mean, 0)
    for pool in pools:
        if pool == "mean":
            out.append(mean)
        elif pool == "std":
            out.append(np.sqrt(variance))
        elif pool == "max":
            out.append(_window_max(data, first, end))
        else:
            raise ValueError(f"unknown pool {pool!r}")
    pooled = np.concatenate(out, axis=1)
    pooled[(count == 0)[:, 0]] = 0
    return pooled.astype(np.float32)


def _window_max(data: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    width = int((end - first).max()) if len(first) else 0
    out = np.zeros((len(first), data.shape[1]))
    if width == 0:
        return out
    padded = np.concatenate([data, np.full((width, data.shape[1]), -np.inf)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)  # (R, D, width)
    inside = np.arange(width)[None, :] < (end - first)[:, None]  # (T, width)
    for lo in range(0, len(first), 256):  # chunks bound the (chunk, D, width) copy
        picked = np.where(inside[lo : lo + 256, None, :], windows[first[lo : lo + 256]], -np.inf)
        out[lo : lo + 256] = picked.max(axis=2)
    return out  # empty windows hold -inf here; the caller zeroes them


class BasicExtractor(Extractor):
    """`basic`: `basic_visual` (colour, layout, hue, edges, motion) and `basic_audio` (log-mel).

    Options: `size` (short side of the decoded frames, pixels), `batch_size`
    (frames decoded per batch).
    """

    name = "basic"
    version = "1"
    option_defaults: ClassVar[dict[str, Any]] = {"size": 64, "batch_size": 64}

    @property
    def outputs(self) -> list[StreamOutput]:
        return [
            StreamOutput("basic_visual", "visual", len(VISUAL_NAMES)),
            StreamOutput("basic_audio", "audio", len(AUDIO_NAMES)),
        ]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        """Both streams; the audio is decoded and pooled in a second thread meanwhile."""
        from delcli.io.prefetch import in_background

        num_steps = self.grid.num_steps(info.duration)
        visual_out, audio_out = self.outputs
        pending = (
            None if info.audio is None else in_background(lambda: self.audio_of(path, num_steps))
        )
        try:
            visual = (
                self.zeros(num_steps, visual_out)
                if info.video is None
                else self.visual_features(path, num_steps)
            )
        except BaseException:
            if pending is not None:  # let the thread finish; the visual error is the one to tell
                pending.exception()
            raise
        audio = None if pending is None else pending.result()
        if audio is None:
            audio = self.zeros(num_steps, audio_out)
        return {visual_out.name: visual, audio_out.name: audio}

    def audio_of(self, path: str | Path, num_steps: int) -> np.ndarray | None:
        """`audio_features` of the file's audio track, decoded block by block (memory
        stays flat in the track's length), or None when it has none. Its log-mel runs
        on one torch thread (`_one_torch_thread`)."""
        from delcli.io import audio_blocks

        blocks = audio_blocks(path, AUDIO_SPEC.sample_rate)
        if blocks is None:
            return None
        with _one_torch_thread():
            return self.audio_features(blocks, num_steps)

    def visual_features(self, path: str | Path, num_steps: int) -> np.ndarray:
        """(T, len(VISUAL_NAMES)) float32 from frames decoded at the grid's fps; the next
        batch decodes in a second thread while this one is measured."""
        from delcli.io import frame_batches
        from delcli.io.prefetch import prefetched

        appearance, motion, previous = [], [], None
        size, batch = int(self.options["size"]), int(self.options["batch_size"])
        decoded = prefetched(lambda: frame_batches(path, self.grid.fps, size=size, batch=batch))
        for frames in decoded:
            stats, luma = frame_statistics(frames)
            appearance.append(stats)
            motion.append(motion_statistics(luma, previous))
            previous = luma[-1]
        return self.pool_visual(appearance, motion, num_steps)

    def pool_visual(self, appearance: list, motion: list, num_steps: int) -> np.ndarray:
        if not appearance:
            return self.zeros(num_steps, self.outputs[0])
        first, end = self.grid.frame_windows(num_steps)
        return np.concatenate(
            [
                pool_windows(np.concatenate(appearance), first, end, ("mean", "std")),
                pool_windows(np.concatenate(motion), first, end, ("mean", "std", "max")),
            ],
            axis=1,
        )

    def audio_features(
        self, audio: np.ndarray | Iterable[np.ndarray], num_steps: int
    ) -> np.ndarray:
        """(T, len(AUDIO_NAMES)) float32 from 16 kHz mono audio: a waveform, or its
        consecutive blocks. Log-mel frames are made and pooled as the samples arrive and
        dropped once no later window needs them."""
        spec = AUDIO_SPEC
        if num_steps == 0:
            return self.zeros(0, self.outputs[1])
        # Window i pools the 25 ms frames that fit in it from its start: the same count for all.
        per_window = max(1, spec.num_frames(round(self.grid.window_seconds * spec.sample_rate)))
        first = np.rint(self.grid.window_starts(num_steps) * spec.frame_rate).astype(np.int64)
        pooler = _WindowPooler(first, first + per_window)
        frames = _LogMelStream()
        blocks = audio
        if isinstance(audio, np.ndarray):
            blocks = (audio[i : i + _PUSH] for i in range(0, audio.size, _PUSH))
        fed = 0
        for block in blocks:
            pooler.add(frames.push(block))
            fed += len(block)
        needed = spec.samples_for(int(first[-1] + per_window))  # silence after the track
        for missing in range(needed - fed, 0, -_PUSH):
            pooler.add(frames.push(np.zeros(min(missing, _PUSH), dtype=np.float32)))
        return pooler.finish()


_PUSH = 1 << 18
"""Samples handed to the log-mel stream at once."""


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread in this block (this thread, and threads that first use torch
    meanwhile; the others keep theirs). `extract` already decodes, measures frames and
    makes the log-mel side by side; torch's intra-op threads on top of that only
    contend for the cores: the log-mel of 300 s of audio took 1.4-1.7 CPU s on two
    threads and 0.16-0.30 on one (2 cores busy with other work)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _LogMelStream:
    """`log_mel_frames` of a waveform that arrives in pieces: frame j still covers samples
    `[j·hop, j·hop + window)` of the whole; the samples of the unfinished frames wait."""

    def __init__(self) -> None:
        self.carry = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        import torch

        from delcli.features.logmel import log_mel_frames

        spec = AUDIO_SPEC
        buffer = np.concatenate([self.carry, np.asarray(samples, dtype=np.float32)])
        if buffer.size < spec.window:
            self.carry = buffer
            return np.zeros((0, spec.bands), dtype=np.float32)
        count = 1 + (buffer.size - spec.window) // spec.hop
        with torch.inference_mode():
            used = torch.from_numpy(buffer[: (count - 1) * spec.hop + spec.window])
            mel = log_mel_frames(used, spec).numpy()
        self.carry = buffer[count * spec.hop :].copy()
        return mel


class _WindowPooler:
    """Pools log-mel frames (mean, std, max) and their positive flux (mean, max) over the
    windows `[first_i, end_i)` of frame indices (both non-decreasing) as frames arrive."""

    def __init__(self, first: np.ndarray, end: np.ndarray) -> None:
        self.first, self.end = first, end
        self.base = 0  # frame index of held[0]
        self.held = np.zeros((0, AUDIO_SPEC.bands + 1), dtype=np.float32)  # mel | flux
        self.last: np.ndarray | None = None  # the previous frame, for the flux
        self.pooled = 0  # windows done
        self.rows: list[np.ndarray] = []

    def add(self, mel: np.ndarray) -> None:
        if len(mel) == 0:
            return
        before = mel[:1] if self.last is None else self.last[None]
        flux = np.maximum(np.diff(mel, axis=0, prepend=before), 0).mean(axis=1, keepdims=True)
        self.last = mel[-1]
        self.held = np.concatenate([self.held, np.concatenate([mel, flux], axis=1)])
        self._pool(int(np.searchsorted(self.end, self.base + len(self.held), side="right")))

    def finish(self) -> np.ndarray:
        self._pool(len(self.first))  # windows past the last frame are clipped to it
        return np.concatenate(self.rows)

    def _pool(self, stop: int) -> None:
        if stop <= self.pooled:
            return
        first = self.first[self.pooled : stop] - self.base
        end = self.end[self.pooled : stop] - self.base
        bands = AUDIO_SPEC.bands
        mel, flux = self.held[:, :bands], self.held[:, bands:]
        self.rows.append(
            np.concatenate(
                [
                    pool_windows(mel, first, end, ("mean", "std", "max")),
                    pool_windows(flux, first, end, ("mean", "max")),
                ],
                axis=1,
            )
        )
        self.pooled = stop
        if stop < len(self.first):  # frames before the next window are no longer needed
            drop = int(self.first[stop]) - self.base
            self.held, self.base = self.held[drop:].copy(), self.base + drop
