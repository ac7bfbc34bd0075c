"""The folder's metadata, kept right by every process that writes it.

`OUT/features.json` describes the folder: extractors (names, versions, options, weights
specs), the grid (fps, stride, window and, in seconds, step i of a video at
`offset_seconds + i·step_seconds`), outputs (dims, modality), the files and naming, and
every finished video's length, duration and `missing_streams` (the modalities its file
lacks, e.g. ["audio"] for a silent video: those features are zeros). It is written only
under an exclusive lock (`OUT/.del-extract/lock`, flock): each process records its
settings when it starts (refusing settings that contradict the folder's) and, when it
ends or is interrupted, rebuilds the video list from all markers. Markers are the
per-video truth, so the process that finishes last (shard, torchrun rank) writes the whole
list, and a rerun repairs a list cut short by a kill. Without flock (Windows) the list
may miss the videos of a process that finished at the same instant until the next run.

A folder keeps one grid and naming; another extractor with new outputs may be added
to it later, but the same output from other settings (version, options, weights) is
refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from delcli.errors import ConfigError, DataError
from delcli.extract.layout import LAYOUTS, METADATA, STATE, OutputFile
from delcli.extract.markers import read_marker
from delcli.features import FeatureGrid
from delcli.features.base import Extractor
from delcli.files import write_json_atomic

FORMAT = "del-features/1"
_SECRET_WORDS = ("token", "secret", "password", "credential")


def grid_record(grid: FeatureGrid) -> dict[str, float]:
    time_grid = grid.time_grid()
    return {
        "fps": grid.fps,
        "stride": grid.stride,
        "window": grid.window,
        "step_seconds": time_grid.step_seconds,
        "offset_seconds": time_grid.offset_seconds,
        "window_seconds": grid.window_seconds,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): _jsonable(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return getattr(value, "name", None) or type(value).__name__


def extractor_record(extractor: Extractor) -> dict[str, Any]:
    return {
        "name": extractor.name,
        "version": extractor.version,
        "options": _jsonable(dict(extractor.options)),
        "weights": _jsonable(extractor.weights),
        "outputs": [output.name for output in extractor.outputs],
    }


def folder_settings(
    extractors: Sequence[Extractor],
    grid: FeatureGrid,
    naming: str,
    files: Sequence[OutputFile],
    recipe: str | None,
) -> dict[str, Any]:
    """What `features.json` says about the folder, apart from its videos."""
    return {
        "format": FORMAT,
        "grid": grid_record(grid),
        "naming": naming,
        "layout": LAYOUTS[naming],
        "recipe": recipe,
        "extractors": [extractor_record(e) for e in extractors],
        "outputs": {
            o.name: {"modality": o.modality, "dim": o.dim, "extractor": e.name}
            for e in extractors
            for o in e.outputs
        },
        "files": [
            {"pattern": f.pattern, "outputs": list(f.outputs), "modality": f.modality, "dim": f.dim}
            for f in files
        ],
    }


def combine_settings(old: dict[str, Any], new: dict[str, Any], out: Path) -> dict[str, Any]:
    """The folder's settings with this run's added; `ConfigError` where they contradict."""
    where = out / METADATA
    if old.get("format") != FORMAT:
        raise ConfigError(f"{where}: not written by 'del extract' ({FORMAT}); choose another --out")
    grid_keys = ("fps", "stride", "window")
    old_grid = tuple(old.get("grid", {}).get(k) for k in grid_keys)
    new_grid = tuple(new["grid"][k] for k in grid_keys)
    if old_grid != new_grid:
        raise ConfigError(
            f"{out} holds features on grid {':'.join(f'{v:g}' for v in old_grid)} "
            f"(fps:stride:window); this run's is {':'.join(f'{v:g}' for v in new_grid)}; "
            "one folder holds one grid: choose another --out"
        )
    if old.get("naming") != new["naming"]:
        raise ConfigError(
            f"{out} uses --naming {old.get('naming')}; this run asks for {new['naming']}"
        )
    combined = dict(old)
    extractors = {e["name"]: e for e in old.get("extractors", [])}
    for record in new["extractors"]:
        before = extractors.get(record["name"])
        if before is not None and before != record:
            changed = [
                k
                for k in ("version", "options", "weights", "outputs")
                if before.get(k) != record[k]
            ]
            raise ConfigError(
                f"{out} holds '{record['name']}' features made with other settings "
                f"({', '.join(f'{k} {before.get(k)!r} → {record[k]!r}' for k in changed)}); "
                "choose another --out, or delete the folder to remake them"
            )
        extractors[record["name"]] = record
    outputs = dict(old.get("outputs", {}))
    for name, record in new["outputs"].items():
        if name in outputs and outputs[name]["extractor"] != record["extractor"]:
            raise ConfigError(
                f"{out}: output '{name}' was made by '{outputs[name]['extractor']}', "
                f"this run makes it with '{record['extractor']}'"
            )
        outputs[name] = record
    files = {f["pattern"]: f for f in old.get("files", [])}
    for record in new["files"]:
        if record["pattern"] in files and files[record["pattern"]] != record:
            raise ConfigError(
                f"{out}: {record['pattern']} holds {files[record['pattern']]['outputs']}, "
                f"this run would write {record['outputs']} there"
            )
        files[record["pattern"]] = record
    combined.update(
        extractors=list(extractors.values()),
        outputs=outputs,
        files=list(files.values()),
        recipe=new["recipe"] or old.get("recipe"),
    )
    return combined


def read_metadata(out: Path) -> dict[str, Any] | None:
    """`OUT/features.json`, or None when there is none."""
    path = out / METADATA
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a features.json written by 'del extract'")
    return data


@contextmanager
def folder_lock(out: Path):
    """An exclusive lock on the folder's metadata across processes (no-op without flock)."""
    state = out / STATE
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: see the module docstring
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Record this run's settings in features.json (checked against what is there)."""
    with folder_lock(out):
        old = read_metadata(out)
        if old is None:
            # Markers without a features.json cannot be trusted to match these settings.
            shutil.rmtree(out / STATE / "videos", ignore_errors=True)
            combined = {**settings, "videos": {}}
        else:
            combined = combine_settings(old, settings, out)
        write_json_atomic(out / METADATA, combined)


def merge_videos(out: Path) -> dict[str, Any]:
    """Rebuild features.json's `videos` from every marker; returns the metadata written."""
    with folder_lock(out):
        metadata = read_metadata(out) or {}
        videos = {}
        for marker in sorted((out / STATE / "videos").glob("*.json")):
            record = read_marker(marker)
            if record is not None:
                videos[marker.name.removesuffix(".json")] = {
                    "length": record["length"],
                    "duration": record["duration"],
                    "outputs": record["outputs"],
                    "missing_streams": record.get("missing_streams", []),
                }
        metadata["videos"] = videos
        write_json_atomic(out / METADATA, metadata)
        return metadata
