"""The dataset folder: `videos/`, `annotations.json` and the manifest `synth_video.json`.

A rerun with the same settings skips the videos already there (each was written
atomically) or, when the folder is complete, returns at once; other settings, or a
folder not written here, are refused unless forced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from delcli.data.formats import database_json
from delcli.errors import ConfigError, DataError
from delcli.files import write_json_atomic
from delcli.synth.manifest import read_manifest, settings_difference
from delcli.synth.video.edge_cases import EDGE_CASES, write_edge_cases
from delcli.synth.video.mp4 import write_video
from delcli.synth.video.timeline import (
    CLASSES,
    GENERATOR,
    SynthVideoConfig,
    VideoPlan,
    plan_videos,
)

MANIFEST = "synth_video.json"


@dataclass
class SynthVideoResult:
    folder: Path
    plans: list[VideoPlan]
    written: int  # videos this run encoded
    skipped: bool  # complete with these settings: nothing written
    seconds: float  # wall time spent writing the videos (edge cases not counted)
    video_seconds: float  # duration of the videos this run wrote
    edge_cases: list[str] = field(default_factory=list)


def write_synth_videos(
    out: str | Path,
    config: SynthVideoConfig,
    force: bool = False,
    edge_cases: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthVideoResult:
    """Write `config.videos` videos to `out/videos/`, their ground truth to
    `out/annotations.json` and, with `edge_cases`, the test variants to
    `out/edge_cases/`. Same settings: resumes (existing videos are complete,
    being written atomically) or returns at once. Other settings, or a non-empty
    folder not written here, are refused unless `force`."""
    out = Path(out)
    config.check()
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; give a folder for the synthetic videos")
    manifest_path, videos = out / MANIFEST, out / "videos"
    settings = asdict(config)
    previous = read_manifest(manifest_path, "del-synth-video", "del data synth-video")
    same = previous is not None and previous.get("settings") == settings
    same = same and previous.get("generator") == GENERATOR
    if previous is not None and not same:
        if not force:
            raise ConfigError(
                f"{out} holds synthetic videos made with other settings "
                f"({settings_difference(previous.get('settings') or {}, settings, GENERATOR)}); "
                "use --force to replace them, or choose another folder"
            )
        for old in videos.glob("synv_*.mp4"):
            old.unlink()
    elif previous is None and out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} is not empty and was not written by 'del data synth-video' (no {MANIFEST}); "
            "choose a new folder or use --force"
        )
    plans = plan_videos(config)
    exists = [(videos / f"{p.video_id}.mp4").exists() for p in plans]
    edges_done = not edge_cases or all((out / "edge_cases" / name).exists() for name in EDGE_CASES)
    if same and previous.get("complete") and all(exists) and edges_done and not force:
        return SynthVideoResult(
            out, plans, 0, True, 0.0, 0.0, list(EDGE_CASES) if edge_cases else []
        )
    videos.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": GENERATOR, "settings": settings, "complete": False}
    write_json_atomic(manifest_path, manifest)
    clock, written, seconds = time.perf_counter(), 0, 0.0
    for index, plan in enumerate(plans):
        if force or not exists[index]:
            write_video(videos / f"{plan.video_id}.mp4", plan, config)
            written, seconds = written + 1, seconds + plan.duration
        if progress is not None:
            progress(index + 1, len(plans))
    seconds_taken = time.perf_counter() - clock
    classes = [c.name for c in CLASSES]
    entries = [
        (p.video_id, p.subset, p.duration, [(e.start, e.end, e.label) for e in p.events])
        for p in plans
    ]
    write_json_atomic(
        out / "annotations.json", database_json(GENERATOR, classes, entries, config.fps)
    )
    written_edges = write_edge_cases(out / "edge_cases", config, force) if edge_cases else []
    manifest.update(
        complete=True,
        classes=[dict(asdict(c), evidence=c.evidence, label_id=i) for i, c in enumerate(CLASSES)],
    )
    write_json_atomic(manifest_path, manifest)
    return SynthVideoResult(out, plans, written, False, seconds_taken, seconds, written_edges)
