"""Finished videos, and files that are never half-written.

Nothing half-written survives: every array goes to a hidden temporary file in its
folder (`delcli.files.atomic_path`) and is renamed into place. A video is *finished* when its
marker `OUT/.del-extract/videos/{video}.json` lists every file of this run and those
files exist; the marker is written (atomically) after the arrays, so a rerun skips
finished videos and redoes the rest. Markers left without a features.json are
dropped (nothing says which settings made them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from delcli.extract.layout import STATE, OutputFile
from delcli.files import write_atomic, write_json_atomic


def save_array(path: Path, array: np.ndarray) -> None:
    """`.npy`, or `.npz` with the array under `feats` (what ActionFormer's loaders read)."""
    if path.suffix == ".npz":
        write_atomic(path, lambda handle: np.savez(handle, feats=array))
    else:
        write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


def marker_path(out: Path, video: str) -> Path:
    return out / STATE / "videos" / f"{video}.json"


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    keys = ("files", "outputs", "length", "duration")
    if not isinstance(record, dict) or not all(k in record for k in keys):
        return None
    return record if isinstance(record["files"], dict) else None


def is_finished(out: Path, video: str, files: Sequence[OutputFile]) -> bool:
    record = read_marker(marker_path(out, video))
    if record is None or not {f.pattern for f in files} <= set(record["files"]):
        return False
    return all(f.path(out, video).exists() for f in files)


def write_marker(
    out: Path,
    video: str,
    files: Sequence[OutputFile],
    length: int,
    duration: float,
    missing: Sequence[str] = (),
) -> None:
    """The video's marker: this run's files plus earlier runs' that are still there, and
    the modalities the file lacks (`missing_streams`: their features are zeros)."""
    marker = marker_path(out, video)
    before = read_marker(marker)
    kept = {
        pattern: outputs
        for pattern, outputs in (before["files"].items() if before else ())
        if (out / pattern.replace("{video}", video)).exists()
    }
    kept.update({f.pattern: list(f.outputs) for f in files})
    names = list(dict.fromkeys(name for outputs in kept.values() for name in outputs))
    record = {"files": kept, "outputs": names, "length": length, "duration": duration}
    record["missing_streams"] = list(missing)
    write_json_atomic(marker, record)
