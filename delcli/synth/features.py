"""Synthetic audio-visual features in UnAV-100's layout (`del data synth`).

The embedded benchmark for tests, benchmarks and demos: deterministic for a
seed, written as `annotations.json` + `features/<vid>_{rgb,flow,vggish}.npy`
on UnAV-100's grid (step i centred at 0.32·i + 0.48 s).

The settings are a `config.SynthConfig`; the videos' timelines come from
`layout`, their features from the signal model in `signal` (mapped onto the
benchmark's statistics by `geometry`), the statistics written beside them from
`stats`. This module writes the folder — annotations.json, features/, synth.json —
each file atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from delcli.data.annotations import Annotations, build_annotations
from delcli.data.formats import database_json
from delcli.errors import ConfigError, DataError
from delcli.files import write_atomic, write_json_atomic
from delcli.settings import from_dict
from delcli.synth.config import SynthConfig
from delcli.synth.geometry import make_geometry, to_benchmark_geometry
from delcli.synth.layout import VideoLayout, layouts_like, sample_layouts
from delcli.synth.manifest import read_manifest, settings_difference
from delcli.synth.signal import ClassDesign, Design, make_design, synthesize_video
from delcli.synth.stats import FPS, STRIDE, WINDOW, SynthStatistics, dataset_statistics

GENERATOR = "del-synth-1"


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
    previous = read_manifest(manifest_path, "del-synth", "del data synth")
    same = previous is not None and (previous.get("generator"), previous.get("settings")) == (
        GENERATOR,
        settings,
    )
    if previous is not None and not same:
        if not force:
            raise ConfigError(
                f"{out} holds a synthetic dataset made with other settings "
                f"({settings_difference(previous.get('settings') or {}, settings, GENERATOR)}); "
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
    classes = [c.name for c in design.classes]
    entries = [(v.video_id, v.subset, v.duration, v.events) for v in layouts]
    write_json_atomic(out / "annotations.json", database_json(GENERATOR, classes, entries, FPS))
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
