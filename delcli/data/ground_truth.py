"""A split's ground truth as `FeatureDataset` uses it.

Where the annotations come from (`--annotations`, the recipe, or the file
bundled for its benchmark), each video's fps, the videos kept (those with usable
features) with their labels re-indexed into the recipe's classes, and the
training targets: events in grid steps. The feature files are `dataset`'s side.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from delcli.data.annotations import Annotations
from delcli.data.batch import TimeGrid
from delcli.data.benchmarks import get_benchmark
from delcli.data.formats import read_json
from delcli.errors import ConfigError, DataError
from delcli.recipe import DataConfig
from delcli.resources import resource_path


def annotation_path(data: DataConfig) -> Path:
    """The annotation file: `data.annotations` (where `--annotations` lands, see
    `delcli.recipe.with_data_paths`), else the file bundled for `data.benchmark`."""
    if data.annotations is not None:
        return Path(data.annotations).expanduser()
    if data.benchmark is None:
        raise ConfigError("data.annotations is not set and data.benchmark names no bundled file")
    return resource_path(get_benchmark(data.benchmark).annotation_file)


def epic_task(data: DataConfig) -> str | None:
    """`verb` or `noun` for an EPIC-Kitchens benchmark (its CSV holds both), else None."""
    return get_benchmark(data.benchmark).epic_task if data.benchmark else None


def video_fps(data: DataConfig, source: Path, gt: Annotations) -> dict[str, float]:
    """Per-video fps: `data.fps` for all, else each video's `fps` in the annotation JSON."""
    if data.fps is not None:
        return dict.fromkeys(gt.video_ids, float(data.fps))
    needed = data.resize_length is None
    if source.name.removesuffix(".gz").endswith(".csv"):
        database = {}
    else:
        database = read_json(source)
        database = database.get("database", {}) if isinstance(database, dict) else {}
    fps = {}
    for video in gt.video_ids:
        value = (
            database.get(video, {}).get("fps") if isinstance(database.get(video), dict) else None
        )
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            fps[video] = float(value)
    lacking = [v for v in gt.video_ids if v not in fps]
    if needed and lacking:
        raise DataError(
            f"{source}: {len(lacking)} video(s) have no 'fps' (e.g. '{lacking[0]}') and data.fps "
            "is not set; set data.fps"
        )
    return fps


def keep_videos(gt: Annotations, keep: list[int], classes: list[str]) -> Annotations:
    """The videos `keep` of `gt`, their labels re-indexed into `classes`."""
    mask = np.zeros(gt.num_videos, dtype=bool)
    mask[keep] = True
    index = {name: i for i, name in enumerate(classes)}
    remap = np.array([index.get(name, -1) for name in gt.classes], dtype=np.int64)
    events = mask[gt.event_video]
    labels = remap[gt.labels[events]]
    if (labels < 0).any():
        event = int(np.flatnonzero(events)[int(np.argmax(labels < 0))])
        name = gt.classes[gt.labels[event]]
        raise DataError(
            f"{gt.source}: video '{gt.video_ids[gt.event_video[event]]}' has label '{name}', "
            f"which is not in data.classes ({len(classes)} classes)"
        )
    new_index = np.cumsum(mask) - 1
    return Annotations(
        video_ids=[gt.video_ids[v] for v in keep],
        durations=gt.durations[mask],
        subsets=[gt.subsets[v] for v in keep],
        classes=list(classes),
        event_video=new_index[gt.event_video[events]],
        segments=gt.segments[events],
        labels=labels,
        source=gt.source,
    )


def distinct_events(seconds: np.ndarray, labels: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """Mask of events with positive length, first of each (label, boundaries ± tolerance)."""
    keep = seconds[:, 1] - seconds[:, 0] > 0
    seen = set()
    for row in np.flatnonzero(keep):
        key = (int(labels[row]), *np.round(seconds[row] / tolerance).astype(np.int64).tolist())
        if key in seen:
            keep[row] = False
        seen.add(key)
    return keep


def event_targets(
    gt: Annotations, grids: list[TimeGrid], class_agnostic: bool
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """Per video of `gt`: event boundaries in steps of its grid (clipped to the
    duration, zero-length and duplicate events dropped) and their labels (all 0 when
    `class_agnostic`); and the warnings to show about what was clipped or dropped."""
    order = np.argsort(gt.event_video, kind="stable")
    starts = np.searchsorted(gt.event_video[order], np.arange(gt.num_videos + 1))
    dropped, warnings = 0, []
    targets = []
    for v, video in enumerate(gt.video_ids):
        events = order[starts[v] : starts[v + 1]]
        seconds, labels = gt.segments[events].copy(), gt.labels[events]
        duration = gt.durations[v]
        if math.isfinite(duration):
            outside = (seconds[:, 1] > duration) | (seconds[:, 0] < 0)
            if outside.any():
                warnings.append(
                    f"video '{video}': {int(outside.sum())} event(s) extend beyond its "
                    f"duration ({duration:g} s); clipped to it"
                )
            seconds = seconds.clip(0, duration)
        keep = distinct_events(seconds, labels)
        dropped += len(keep) - int(keep.sum())
        steps = grids[v].to_steps(torch.from_numpy(seconds[keep]))
        labels = torch.from_numpy(labels[keep]).long()
        if class_agnostic:
            labels = torch.zeros_like(labels)
        targets.append((steps.to(torch.float32).reshape(-1, 2), labels))
    if dropped:
        warnings.append(
            f"{dropped} zero-length or duplicate event(s) left out of the training targets"
        )
    return targets, warnings
