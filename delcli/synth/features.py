"""Synthetic audio-visual features in UnAV-100's layout (`del data synth`).

The embedded benchmark for tests, benchmarks and demos: deterministic for a
seed, written as `annotations.json` + `features/<vid>_{rgb,flow,vggish}.npy`
on UnAV-100's grid (step i centred at 0.32·i + 0.48 s).

The videos' timelines come from `synth_layout`, their features from the signal
model in `synth_signal`, the statistics written beside them from `synth_stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from delcli.data.annotations import Annotations, build_annotations
from delcli.data.formats import read_json
from delcli.data.synth_geometry import (
    BENCHMARK_DIMS,
    GEOMETRIES,
    make_geometry,
    to_benchmark_geometry,
)
from delcli.data.synth_layout import VideoLayout, layouts_like, sample_layouts
from delcli.data.synth_signal import ClassDesign, Design, make_design, synthesize_video
from delcli.data.synth_stats import FPS, STRIDE, WINDOW, SynthStatistics, dataset_statistics
from delcli.errors import ConfigError, DataError
from delcli.files import write_atomic, write_json_atomic
from delcli.settings import from_dict

GENERATOR = "del-synth-1"


@dataclass(frozen=True)
class SizePreset:
    videos: int
    classes: int
    min_duration: float
    max_duration: float


SIZES = {
    "tiny": SizePreset(videos=32, classes=8, min_duration=6.0, max_duration=20.0),
    "default": SizePreset(videos=400, classes=16, min_duration=10.0, max_duration=60.0),
    "large": SizePreset(videos=3000, classes=32, min_duration=10.0, max_duration=60.0),
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated files (recorded in `synth.json`)."""

    size: str = "default"
    seed: int = 0
    videos: int = 400
    classes: int = 16
    min_duration: float = 10.0
    max_duration: float = 60.0
    rgb_dim: int = 64
    flow_dim: int = 64
    audio_dim: int = 64
    like: str | None = None  # take videos, events and classes from this annotation file
    max_videos: int | None = None
    geometry: str = "toy"  # or "unav100": the dims above are then the latent streams'

    @property
    def output_dims(self) -> dict[str, int]:
        if self.geometry == "unav100":
            return dict(BENCHMARK_DIMS)
        return {"rgb": self.rgb_dim, "flow": self.flow_dim, "vggish": self.audio_dim}

    def settings(self) -> dict:
        """What synth.json records; `geometry` only when not the original toy one, so
        folders written before the option existed still match."""
        settings = asdict(self)
        if settings["geometry"] == "toy":
            del settings["geometry"]
        return settings


def synth_config(
    size: str = "default",
    seed: int = 0,
    classes: int | None = None,
    like: str | Path | None = None,
    max_videos: int | None = None,
    dims: tuple[int, int, int] = (64, 64, 64),
    geometry: str = "toy",
) -> SynthConfig:
    """A validated `SynthConfig` from a size preset and the user's options."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"unknown geometry '{geometry}'; allowed: {', '.join(GEOMETRIES)}")
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}'; allowed: {', '.join(SIZES)}")
    if like is not None and classes is not None:
        raise ConfigError("--classes cannot be combined with --like (the file's classes are used)")
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes {classes}; must be >= 1")
    if max_videos is not None and max_videos < 1:
        raise ConfigError(f"--max-videos {max_videos}; must be >= 1")
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"dims {dims}; three positive sizes (rgb, flow, vggish)")
    preset = SIZES[size]
    videos = preset.videos if max_videos is None else min(preset.videos, max_videos)
    return SynthConfig(
        size=size,
        seed=seed,
        videos=videos if like is None else 0,
        classes=(classes or preset.classes) if like is None else 0,
        min_duration=preset.min_duration,
        max_duration=preset.max_duration,
        rgb_dim=dims[0],
        flow_dim=dims[1],
        audio_dim=dims[2],
        like=None if like is None else str(Path(like).resolve()),
        max_videos=max_videos,
        geometry=geometry,
    )


# ---------------------------------------------------------------------------------------------
# The folder: annotations.json, features/, synth.json — each written atomically.


@dataclass
class SynthResult:
    folder: Path
    statistics: SynthStatistics
    classes: list[ClassDesign]
    written: int  # videos whose features this run wrote
    skipped: bool  # the folder was complete with these settings: nothing written


def write_synth_dataset(
    out: str | Path,
    config: SynthConfig,
    force: bool = False,
    probe: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthResult:
    """Generate the dataset of `config` into folder `out` and measure it.

    A rerun with the same settings resumes an interrupted run (videos whose
    three files exist are kept) or, when complete, returns at once. Other
    settings, or a non-empty folder not written by this generator, are refused
    unless `force`. `probe=False` skips the linear probes (statistics without
    accuracies). `progress(stage, done, total)` reports each video written
    (stage `videos`) and each probe fitted (stage `probe`).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; give a folder for the synthetic dataset")
    manifest_path = out / "synth.json"
    settings = config.settings()
    previous = read_manifest(manifest_path)
    same = previous is not None and (previous.get("generator"), previous.get("settings")) == (
        GENERATOR,
        settings,
    )
    if previous is not None and not same:
        if not force:
            raise ConfigError(
                f"{out} holds a synthetic dataset made with other settings "
                f"({settings_difference(previous.get('settings') or {}, settings)}); "
                "use --force to replace it, or choose another folder"
            )
        remove_features(out / "features")
    elif previous is None and out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} is not empty and was not written by 'del data synth' (no synth.json); "
            "choose a new folder or use --force"
        )
    if config.like is not None:
        layouts, class_names = layouts_like(config.like, config.max_videos)
    else:
        layouts, class_names = sample_layouts(config), None
    design = make_design(config, class_names)
    geometry = None
    if config.geometry != "toy":
        latent = {"rgb": config.rgb_dim, "flow": config.flow_dim, "vggish": config.audio_dim}
        geometry = make_geometry(config.seed, latent)
    features = out / "features"
    complete = same and previous.get("complete") and (out / "annotations.json").exists()
    if complete and not force and all_features_exist(features, layouts):
        statistics = from_dict(SynthStatistics, previous["statistics"])
        return SynthResult(out, statistics, design.classes, written=0, skipped=True)
    features.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": GENERATOR, "settings": settings, "complete": False}
    write_json_atomic(manifest_path, manifest)
    written = 0
    for index, layout in enumerate(layouts):
        if force or not all_features_exist(features, [layout]):
            streams = synthesize_video(design, config, layout, index)
            if geometry is not None:
                streams = to_benchmark_geometry(geometry, streams, config.seed, index)
            for stream, array in streams.items():
                save_npy_atomic(features / f"{layout.video_id}_{stream}.npy", array)
            written += 1
        if progress is not None:
            progress("videos", index + 1, len(layouts))
    write_json_atomic(out / "annotations.json", annotation_json(layouts, design))
    statistics = dataset_statistics(
        layout_annotations(layouts, design, source=str(out / "annotations.json")),
        features,
        evidence=[c.evidence for c in design.classes],
        probe=probe,
        progress=None if progress is None else lambda done, total: progress("probe", done, total),
    )
    manifest.update(
        complete=True,
        grid={"fps": FPS, "stride": STRIDE, "window": WINDOW},
        dims=config.output_dims,
        classes=[asdict(c) for c in design.classes],
        statistics=asdict(statistics),
    )
    write_json_atomic(manifest_path, manifest)
    return SynthResult(out, statistics, design.classes, written=written, skipped=False)


def annotation_json(layouts: list[VideoLayout], design: Design) -> dict:
    """UnAV-100 / ActivityNet form: `{"version", "classes", "database": {vid: {...}}}`."""
    database = {}
    for layout in layouts:
        database[layout.video_id] = {
            "subset": layout.subset,
            "duration": layout.duration,
            "fps": FPS,
            "annotations": [
                {
                    "segment": [start, end],
                    "label": design.classes[label].name,
                    "label_id": label,
                }
                for start, end, label in layout.events
            ],
        }
    classes = [c.name for c in design.classes]  # every class, events or not
    return {"version": GENERATOR, "classes": classes, "database": database}


def layout_annotations(layouts: list[VideoLayout], design: Design, source: str) -> Annotations:
    """The written ground truth with the full class list (reading the file back would
    drop classes that have no event)."""
    return build_annotations(
        [(layout.video_id, layout.duration, layout.subset) for layout in layouts],
        [
            (index, start, end, design.classes[label].name)
            for index, layout in enumerate(layouts)
            for start, end, label in layout.events
        ],
        [c.name for c in design.classes],
        source,
    )


def read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not str(data.get("generator", "")).startswith("del-synth"):
        raise DataError(f"{path}: not written by 'del data synth'; choose another folder")
    return data


def settings_difference(old: dict, new: dict) -> str:
    changed = [f"{key} {old.get(key)!r} → {new[key]!r}" for key in new if old.get(key) != new[key]]
    return ", ".join(changed) or f"an older generator; this is {GENERATOR}"


def all_features_exist(folder: Path, layouts: list[VideoLayout]) -> bool:
    return all(
        (folder / f"{layout.video_id}_{stream}.npy").exists()
        for layout in layouts
        for stream in ("rgb", "flow", "vggish")
    )


def remove_features(folder: Path) -> None:
    """Delete the generator's feature files from an earlier run (nothing else)."""
    if folder.is_dir():
        for path in folder.glob("*.npy"):
            if path.name.endswith(("_rgb.npy", "_flow.npy", "_vggish.npy")):
                path.unlink()


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda handle: np.save(handle, array))
