"""Events of one video file: decode → extract → network → windows merged → NMS.

`predict_video` runs the model's own feature recipe on a video (through
`delcli.features.pipeline`) and post-processes as `predict_dataset` does
(`video_detections`: grid steps → seconds, clamp to `[0, duration]`, Soft-NMS
per `recipe.inference.nms`, cap), then applies the caller's score `threshold`
and `top_k`.

**Long videos** (docs/model.md §9). A video of at most `model.max_seq_len` steps runs
in one padded forward pass. A longer one runs in windows of `max_seq_len` steps
that overlap by `WINDOW_OVERLAP` (half a window), several windows per forward
pass. Each grid point belongs to exactly one window — the one in whose central
part it lies (the overlaps are split at their midpoints) — and only that window's
head outputs at the point become candidates. So every point is scored once, with
at least a quarter window of context on either side, and the merged candidates go
through one NMS as a single pass's would. Window starts are multiples of the
coarsest stride, so every pyramid level's points line up with the single pass's.

Why ownership rather than keeping every window's candidates and letting NMS sort
them out: Soft-NMS only decays overlapping duplicates, so the overlap's events
would come out twice (the second at a lower score). With ownership, a model whose
receptive field is shorter than a quarter window (local attention, no AAC / PAN
pooling) gives exactly the single pass's detections; `tests/test_predict.py`
checks that. DEL's own AAC attention and adaptive pooling are global over the
sequence, so for the full model windows are an approximation of a pass over the
whole video, which the model, trained on at most `max_seq_len` steps, never saw.
Why half a window: a point's events are seen whole when they are at most half a
window long; the network is cheap next to decoding and feature extraction, so
the 2× cost of the overlap barely shows.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from delcli.model.decode import Candidates
from delcli.recipe import Recipe, class_names

if TYPE_CHECKING:
    from delcli.data.batch import TimeGrid
    from delcli.features.base import Extractor
    from delcli.io import MediaInfo
    from delcli.model.del_model import DELModel

WINDOW_OVERLAP = 0.5
"""Share of a window that overlaps the next one (rounded to the coarsest stride)."""


@dataclass(frozen=True)
class Event:
    """One detected (or annotated) event, in seconds."""

    start: float
    end: float
    label: str
    score: float = 1.0


@dataclass
class VideoEvents:
    """A video's events, sorted by start then descending score, and what they cost."""

    video_id: str
    path: str
    duration: float  # seconds
    events: list[Event] = field(default_factory=list)
    extract_seconds: float = 0.0  # probe + decode + feature extraction
    model_seconds: float = 0.0  # network, decoding of the heads, NMS
    windows: int = 1  # forward-pass windows the video took
    missing_streams: tuple[str, ...] = ()  # modalities the file lacks (zero features)


@dataclass(frozen=True)
class Window:
    """Grid steps `[start, stop)` go through the network (steps past the video are
    padding); candidates come from the points in `[own_start, own_stop)` only."""

    start: int
    stop: int
    own_start: int
    own_stop: int


def plan_windows(
    num_steps: int, length: int, divisor: int, overlap: float = WINDOW_OVERLAP
) -> list[Window]:
    """Windows of `length` steps covering `num_steps`; owned ranges partition `[0, num_steps)`.

    Args:
        num_steps: the video's grid steps, T ≥ 1.
        length: the longest input the model takes (rounded down to a multiple of `divisor`).
        divisor: window starts and padded lengths are multiples of it (the coarsest stride).
        overlap: share of a window shared with the next, in [0, 1).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    length = max(divisor, length // divisor * divisor)
    if num_steps <= length:
        return [Window(0, -(-num_steps // divisor) * divisor, 0, num_steps)]
    shared = min(length - divisor, round(length * overlap / divisor) * divisor)
    hop = length - shared
    # n windows spread evenly (in units of `divisor`) from 0 to the first aligned start
    # that reaches the end: consecutive starts lie 1 to hop/divisor units apart
    units = -(-(num_steps - length) // divisor)
    gaps = -(-(num_steps - length) // hop)
    starts = [divisor * (k * units // gaps) for k in range(gaps + 1)]
    # each overlap is split at its midpoint: a point goes to the window it is most central in
    bounds = [0] + [(a + length + b) // 2 for a, b in itertools.pairwise(starts)] + [num_steps]
    return [
        Window(s, s + length, own_start, own_stop)
        for s, own_start, own_stop in zip(starts, bounds, bounds[1:], strict=False)
    ]


@torch.no_grad()
def window_candidates(
    model: DELModel,
    visual: torch.Tensor | None,
    audio: torch.Tensor | None,
    windows: list[Window],
    batch_size: int = 8,
    bf16: bool = False,
) -> Candidates:
    """Candidates of every window's own points, in grid steps of the whole video.

    Args:
        visual, audio: `(T, C)` features on the model's device, or None for an unused modality.
        windows: from `plan_windows`, all of one length.
        batch_size: windows per forward pass.
        bf16: run the network under bfloat16 autocast (CUDA).
    """
    stream = visual if visual is not None else audio
    num_steps, strides = stream.shape[0], model.config.strides
    found = []
    for first in range(0, len(windows), batch_size):
        group = windows[first : first + batch_size]
        length = group[0].stop - group[0].start
        inputs = [
            None if x is None else x.new_zeros(len(group), length, x.shape[1])
            for x in (visual, audio)
        ]
        mask = torch.zeros(len(group), length, dtype=torch.bool, device=stream.device)
        owned = torch.zeros_like(mask)
        for row, window in enumerate(group):
            valid = min(window.stop, num_steps) - window.start
            for x, batch in zip((visual, audio), inputs, strict=True):
                if x is not None:
                    batch[row, :valid] = x[window.start : window.start + valid]
            mask[row, :valid] = True
            owned[row, window.own_start - window.start : window.own_stop - window.start] = True
        autocast = torch.autocast(stream.device.type, torch.bfloat16) if bf16 else None
        with autocast or contextlib.nullcontext():
            output = model(inputs[0], inputs[1], mask)
        # a level-l point p of a window sits on its grid step p·2^l
        masks = [m & owned[:, ::s] for m, s in zip(output.masks, strides, strict=True)]
        for window, part in zip(group, model.candidates(replace(output, masks=masks)), strict=True):
            found.append(part._replace(segments=part.segments.float() + window.start))
    return Candidates(*(torch.cat(parts) for parts in zip(*found, strict=True)))


def detect_events(
    model: DELModel,
    recipe: Recipe,
    visual: np.ndarray | None,
    audio: np.ndarray | None,
    duration: float,
    grid: TimeGrid,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    device: str | torch.device = "cpu",
    window_length: int | None = None,
) -> tuple[list[Event], int]:
    """Events of one video's features `(T, C)`, and the number of windows it took.

    `grid` maps the features' steps to seconds; `window_length` (default
    `model.config.max_seq_len`) is the longest input of one forward pass. A recipe
    with `data.resize_length` (ActivityNet) stretches the features to that many
    steps (linear interpolation, as `FeatureDataset`) and maps them onto the
    video's duration instead.
    """
    from delcli.inference.predictor import video_detections

    device = torch.device(device)
    tensors = [
        None if x is None else torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)
        for x in (visual, audio)
    ]
    if recipe.data.resize_length is not None:  # ActivityNet: every video is L steps
        from delcli.data.batch import TimeGrid
        from delcli.data.features import interpolate_at, stretch_positions

        length = recipe.data.resize_length
        tensors = [
            None
            if x is None
            else interpolate_at(x, stretch_positions(x.shape[0], length).to(device))
            for x in tensors
        ]
        grid = TimeGrid.from_resize(duration, length)
        window_length = max(length, window_length or 0)  # one pass over the L steps
    config = model.config
    steps = next(x for x in tensors if x is not None).shape[0]
    windows = plan_windows(steps, window_length or config.max_seq_len, config.length_divisor)
    bf16 = device.type == "cuda" and recipe.train.precision in ("auto", "bf16")

    was_training = model.training
    model.eval()
    try:
        candidates = window_candidates(model, *tensors, windows, recipe.inference.batch_size, bf16)
    finally:
        model.train(was_training)
    kept = video_detections(
        candidates.segments.cpu(),
        candidates.scores.float().cpu(),
        candidates.labels.cpu(),
        grid,
        duration,
        recipe.inference.nms,
        top_k if top_k is not None else recipe.inference.max_detections,
    )
    names = class_names(recipe)
    events = [
        Event(start, end, names[label], score)
        for (start, end), score, label in zip(
            kept.segments.tolist(), kept.scores.tolist(), kept.class_ids.tolist(), strict=True
        )
        if threshold is None or score >= threshold
    ]
    events.sort(key=lambda e: (e.start, -e.score))
    return events, len(windows)


def predict_video(
    path: str | Path,
    model: DELModel,
    recipe: Recipe,
    extractors: list[Extractor],
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    device: str | torch.device = "cpu",
    info: MediaInfo | None = None,
    window_length: int | None = None,
) -> VideoEvents:
    """Events of the video at `path` (its id: the file name without extension).

    Args:
        model: the network, on `device`.
        recipe: the model's recipe (streams, grid, NMS, batch size, caps).
        extractors: the recipe's extractors (`recipe_extractors`), whose grid the
            features and thus the events live on.
        threshold: keep events scoring at least this (after NMS).
        top_k: keep at most this many best events (default: `inference.max_detections`).
        info: the probe of `path`, if already made.
        window_length: longest forward pass in steps (default: `model.config.max_seq_len`).

    Raises:
        MediaError: the file does not decode.
    """
    from delcli.features.pipeline import extract_video, missing_streams, model_inputs
    from delcli.io import probe

    started = time.perf_counter()
    info = info if info is not None else probe(path)
    outputs = extract_video(path, extractors, info)
    visual, audio = model_inputs(outputs, recipe)
    extracted = time.perf_counter()
    events, windows = detect_events(
        model,
        recipe,
        visual,
        audio,
        info.duration,
        extractors[0].grid.time_grid(),
        threshold=threshold,
        top_k=top_k,
        device=device,
        window_length=window_length,
    )
    return VideoEvents(
        video_id=Path(path).stem,
        path=str(path),
        duration=info.duration,
        events=events,
        extract_seconds=extracted - started,
        model_seconds=time.perf_counter() - extracted,
        windows=windows,
        missing_streams=missing_streams(info, extractors),
    )
