"""The manifest both generators leave in their folder.

`del data synth` writes `synth.json`, `del data synth-video` writes
`synth_video.json`: the generator's name, its settings and whether the folder is
complete. A rerun reads it to resume, to return at once, or to refuse a folder
made with other settings; these are the one reader and the one message for both.
"""

from __future__ import annotations

from pathlib import Path

from delcli.data.formats import read_json
from delcli.errors import DataError


def read_manifest(path: Path, generator: str, command: str) -> dict | None:
    """The manifest at `path`, None when there is none; `DataError` when it is not one
    that `command` wrote (its `generator` field does not start with `generator`)."""
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not str(data.get("generator", "")).startswith(generator):
        raise DataError(f"{path}: not written by '{command}'; choose another folder")
    return data


def settings_difference(old: dict, new: dict, generator: str) -> str:
    """The settings that changed, for the message that refuses the folder."""
    changed = [f"{k} {old.get(k)!r} → {v!r}" for k, v in new.items() if old.get(k) != v]
    return ", ".join(changed) or f"an older generator; this is {generator}"
