"""The timelines of `del data synth`'s videos: durations, splits and events.

Sampled for a seed (class counts balanced, events from about 1 s to the whole
video, some overlapping), or taken from a real annotation file (`--like`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from delcli.data.formats import read_annotations
from delcli.errors import DataError

if TYPE_CHECKING:
    from delcli.synth.config import SynthConfig

SPLIT_SHARES = {"train": 0.7, "validation": 0.15, "test": 0.15}
GEOMETRIC_P = 0.3
OVERLAP_CHANCE = 0.45  # share of events placed without avoiding the others


@dataclass
class VideoLayout:
    video_id: str
    subset: str
    duration: float
    events: list[tuple[float, float, int]]  # (start s, end s, class index)


def sample_layouts(config: SynthConfig) -> list[VideoLayout]:
    """Durations, splits and events of the generated videos."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.videos
    subsets = []
    for split, share in SPLIT_SHARES.items():
        subsets += [split] * round(share * n)
    subsets = (subsets + ["train"] * n)[:n]
    subsets = [subsets[i] for i in rng.permutation(n)]
    deck: list[int] = []
    layouts = []
    for index in range(n):
        duration = round(float(rng.uniform(config.min_duration, config.max_duration)), 2)
        events: list[tuple[float, float, int]] = []
        count = min(int(rng.geometric(GEOMETRIC_P)), 8)
        for _ in range(count):
            if not deck:  # classes drawn from shuffled decks: balanced counts
                deck = list(rng.permutation(config.classes))
            label = int(deck.pop())
            may_overlap = rng.random() < OVERLAP_CHANCE
            for _attempt in range(20):
                start, end = sample_segment(rng, duration, count)
                clashes = [c for s, e, c in events if s < end and start < e]
                if label not in clashes and (may_overlap or not clashes):
                    events.append((start, end, label))
                    break
        layouts.append(VideoLayout(f"synth_{index:05d}", subsets[index], duration, sorted(events)))
    return layouts


def sample_segment(rng: np.random.Generator, duration: float, count: int) -> tuple[float, float]:
    """An event from about 1 s to the whole video, roughly as in UnAV-100: a lone event
    often spans the video; with `count` events per video, long ones get rarer."""
    draw = rng.random()
    if draw < (0.5 if count == 1 else 0.1):
        return 0.0, duration
    if draw < (0.8 if count == 1 else 0.3):
        length = duration * rng.uniform(0.4, 0.95)
    else:
        length = math.exp(rng.uniform(0.0, math.log(max(1.0, 0.4 * duration))))
    start = rng.uniform(0.0, max(0.0, duration - length))
    return round(start, 2), round(min(duration, start + length), 2)


MAX_LIKE_SECONDS = 6 * 3600.0  # beyond the longest benchmark video (EPIC-Kitchens, ~1.5 h)


def layouts_like(path: str, max_videos: int | None) -> tuple[list[VideoLayout], list[str]]:
    """Videos, events and classes of a real annotation file (the first `max_videos`)."""
    annotations = read_annotations(path)
    count = (
        annotations.num_videos if max_videos is None else min(max_videos, annotations.num_videos)
    )
    if count == 0:
        raise DataError(f"{path}: no videos to imitate")
    layouts = []
    for index in range(count):
        events = annotations.event_video == index
        segments, labels = annotations.segments[events], annotations.labels[events]
        duration = float(annotations.durations[index])
        if not math.isfinite(duration):  # no duration in the file: up to the last event
            duration = float(segments[:, 1].max()) + 1.0 if len(labels) else 10.0
        if duration > MAX_LIKE_SECONDS:
            raise DataError(
                f"{path}: video '{annotations.video_ids[index]}' lasts {duration:g} s; "
                f"--like imitates videos up to {MAX_LIKE_SECONDS:g} s"
            )
        layouts.append(
            VideoLayout(
                annotations.video_ids[index],
                annotations.subsets[index],
                duration,
                [(float(s), float(e), int(c)) for (s, e), c in zip(segments, labels, strict=True)],
            )
        )
    return layouts, list(annotations.classes)
