"""Labelled videos in, a run directory ready for `fit` out: `del train --videos DIR --labels FILE`.

    prepared = prepare_own_videos(OwnVideos(labels=…, videos=find_videos(DIR), run_dir=RUN))
    fit(prepared.recipe, RUN)

writes, before training:

    RUN/annotations.json   the checked labels as ActivityNet JSON: every video's split
                           (so a rerun is identical), duration and events, the class list
    RUN/features/          the extractors' features (`del extract`'s layout and resume:
                           finished videos are skipped; another run can point at it)

and returns the recipe generated from the data — feature dims and grid, the class list,
`max_seq_len` from the longest video, a model and schedule sized to the data — with a
base `--recipe`'s model/train/inference blocks and `--set` overrides applied on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delcli.data.label_checks import (
    CheckedLabels,
    VideoFiles,
    assign_splits,
    check_labels,
    drop_untrained_classes,
    split_counts,
)
from delcli.data.labels import read_labels
from delcli.errors import ConfigError, DataError
from delcli.files import write_json_atomic
from delcli.recipe import Recipe, load_recipe, recipe_data

ANNOTATIONS = "annotations.json"
FEATURES = "features"
TARGET_STEPS = 600  # optimizer steps a generated schedule aims at (the demo's order)
SMALL_DATA = 500  # videos: below this, the demo-sized model
_DATA_KEYS = ("visual_dim", "audio_dim", "num_classes", "modalities")


@dataclass
class OwnVideos:
    """What `del train --videos/--list --labels` was given."""

    labels: Path
    videos: VideoFiles
    run_dir: Path
    features: Path | None = None  # default: RUN/features
    extractors: Sequence[str] = ("basic",)
    extractor_weights: dict[str, Any] = field(default_factory=dict)
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    base_recipe: str | None = None
    overrides: Sequence[str] = ()
    device: str = "cpu"
    workers: int = 1
    name: str | None = None


@dataclass
class PreparedRun:
    recipe: Recipe
    labels: CheckedLabels
    problems: list[str]  # one line per dropped or repaired row, failed video, …
    failed_videos: int
    extracted: int
    reused: int


def prepare_own_videos(
    own: OwnVideos,
    on_extract_event: Callable | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> PreparedRun:
    """Check the labels, split, extract the features and generate the recipe (see module).

    `on_stage` hears what is being done; `on_problem` each label problem as it is found
    (before the long extraction, where the labels allow); `PreparedRun.problems` has them all.
    """
    from delcli.extract import extract_folder
    from delcli.features.pipeline import build_extractors, output_streams
    from delcli.recipe import ExtractorSpec

    stage = on_stage or (lambda message: None)
    specs = [ExtractorSpec(name=name) for name in own.extractors]
    extractors = build_extractors(
        specs, extraction_grid(own.extractors), own.device, own.extractor_weights
    )
    labels = read_labels(own.labels)
    stage(f"read {len(labels.rows)} label rows ({labels.kind}) from {own.labels}")
    checked = check_labels(labels, own.videos, video_duration)
    if not checked.events:
        raise DataError(
            f"{own.labels}: no usable labelled event "
            + (
                f"({checked.problems[0]}{' …' if len(checked.problems) > 1 else ''})"
                if checked.problems
                else ""
            )
        )
    assign_splits(checked, own.ratios, own.seed)
    problems = list(checked.problems)
    tell = on_problem or (lambda line: None)
    for line in problems:
        tell(line)

    features = own.features or own.run_dir / FEATURES
    stage(
        f"extracting {', '.join(own.extractors)} features of {len(checked.durations)} "
        f"videos into {features}"
    )
    paths = [checked.paths[v] for v in checked.videos()]
    report = extract_folder(
        paths, features, extractors, naming="unav", workers=own.workers, on_event=on_extract_event
    )
    failed = {result.video: result.reason for result in report.failed}
    for video, reason in sorted(failed.items()):
        problems.append(f"video '{video}': features not extracted ({reason}); its rows dropped")
        tell(problems[-1])
    if failed:
        checked.events = [e for e in checked.events if e.video not in failed]
        checked.durations = {v: d for v, d in checked.durations.items() if v not in failed}
    before = len(checked.problems)
    drop_untrained_classes(checked)
    for line in checked.problems[before:]:
        problems.append(line)
        tell(line)
    if not checked.events or not checked.videos("train"):
        raise DataError("no training video is left after dropping the rows listed above")

    own.run_dir.mkdir(parents=True, exist_ok=True)
    annotations = own.run_dir / ANNOTATIONS
    grid = extractors[0].grid
    write_json_atomic(
        annotations, checked.annotation_json(fps=grid.fps, version="del train --videos")
    )
    recipe = generate_recipe(own, checked, output_streams(extractors), grid, annotations, features)
    return PreparedRun(
        recipe, checked, problems, len(failed), len(report.done), len(report.skipped)
    )


def extraction_grid(names: Sequence[str]):
    """The basic extractor's grid when it runs alone, else UnAV-100's (vggish, i3d)."""
    from delcli.features import GRID_PRESETS

    return GRID_PRESETS["basic" if list(names) == ["basic"] else "unav100"]


def video_duration(path: Path) -> float:
    """Seconds, from the container header (`DataError` for what PyAV cannot open)."""
    from delcli.io import probe

    try:
        return float(probe(path).duration)
    except DataError:
        raise
    except Exception as error:  # a decoder's own exception types
        raise DataError(f"unreadable ({type(error).__name__}: {error})") from None


# -- the recipe -------------------------------------------------------------------------------


def generate_recipe(
    own: OwnVideos, checked: CheckedLabels, streams, grid, annotations: Path, features: Path
) -> Recipe:
    """The recipe for this data (see the module), validated."""
    counts = split_counts(checked)
    classes = checked.classes
    data = recipe_from_data(
        name=own.name or own.run_dir.name,
        streams=streams,
        grid=grid,
        classes=classes,
        longest=max(checked.durations.values()),
        train_videos=counts["train"],
        has_validation=counts["validation"] > 0,
        has_test=counts["test"] > 0,
        extractors=[{"name": name} for name in own.extractors],
    )
    data["data"]["annotations"] = str(annotations.resolve())
    data["data"]["features"] = str(features.resolve())
    if own.extractor_weights:
        for spec in data["features"]["extractors"]:
            spec["weights"] = own.extractor_weights.get(spec["name"])
    if own.base_recipe is not None:
        base = recipe_data(own.base_recipe)
        for block in ("model", "train", "inference"):
            given = dict(base.get(block) or {})
            if block == "model":
                given = {k: v for k, v in given.items() if k not in _DATA_KEYS}
            data[block] = {**data[block], **given}
    return load_recipe(data, list(own.overrides))


def recipe_from_data(
    name: str,
    streams,
    grid,
    classes: list[str],
    longest: float,
    train_videos: int,
    has_validation: bool,
    has_test: bool,
    extractors: list[dict],
) -> dict:
    """Plain recipe data for a dataset of this shape (paths filled in by the caller)."""
    visual = [s for s in streams if s.modality == "visual"]
    audio = [s for s in streams if s.modality == "audio"]
    if not visual and not audio:
        raise ConfigError("the extractors make no features")
    small = train_videos < SMALL_DATA
    size = (
        {"embed_dim": 64, "n_levels": 5, "head_dim": 64, "projection_dim": 32}
        if small
        else {"embed_dim": 128, "n_levels": 6, "head_dim": 128, "projection_dim": 64}
    )
    divisor = 2 ** (size["n_levels"] - 1)
    steps = math.ceil(longest * grid.fps / grid.stride)
    max_seq_len = max(divisor * 2, math.ceil(steps / divisor) * divisor)
    batch = max(2, min(8, train_videos // 4))
    steps_per_epoch = max(1, math.ceil(train_videos / batch))
    epochs = min(100, max(20, math.ceil(TARGET_STEPS / steps_per_epoch)))
    modalities = "av" if visual and audio else "v" if visual else "a"

    def stream(outputs) -> dict | None:
        if not outputs:
            return None
        files = [f"{{video}}_{s.name}.npy" for s in outputs]
        return {"files": files, "dim": sum(s.dim for s in outputs)}

    return {
        "name": name,
        "title": f"DEL · {name} ({len(classes)} classes, "
        f"{'+'.join(e['name'] for e in extractors)} features)",
        "data": {
            "benchmark": None,
            "visual": stream(visual),
            "audio": stream(audio),
            "fps": grid.fps,
            "stride": grid.stride,
            "window": grid.window,
            "train_split": "train",
            "val_split": "validation" if has_validation else None,
            "test_split": "test" if has_test else "validation" if has_validation else "train",
            "classes": classes,
        },
        "model": {
            "visual_dim": sum(s.dim for s in visual) or 1,
            "audio_dim": sum(s.dim for s in audio) or 1,
            "num_classes": len(classes),
            "modalities": modalities,
            "max_seq_len": max_seq_len,
            "n_heads": 4,
            "adapter_heads": 4,
            "window_size": 9,
            "drop_path": 0.1,
            **size,
        },
        "train": {
            "epochs": epochs,
            "warmup_epochs": max(1, epochs // 10),
            "lr": 5.0e-4,
            "batch_size": batch,
            "ema_decay": 0.99,
            "eval_every": max(1, epochs // 10),
        },
        "inference": {
            "batch_size": 16,
            "max_detections": 100,
            "nms": {
                "use_soft_nms": True,
                "method": "gaussian",
                "sigma": 0.4,
                "multiclass": True,
                "min_score": 0.001,
                "max_seg_num": 100,
            },
        },
        "features": {"extractors": extractors},
        "paper": None,
    }
