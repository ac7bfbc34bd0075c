"""Readers for the annotation formats the field uses, into `Annotations`, and the
one writer of the form del writes (`database_json`).

Formats (detected from the file, see `read_annotations`):
- ActivityNet / ActionFormer / UnAV JSON: `{"database": {vid: {"subset",
  "duration", "annotations": [{"segment": [s, e], "label", "label_id"?}]}}}`, with
  the class list as `classes` (del's files) or ActivityNet's `taxonomy` when present;
- BSN's ActivityNet JSON (`anet_anno_action.json`: `{vid: {"duration_second",
  "annotations"}}`) with `video_info_new.csv` (subsets) and `action_name.csv`
  (class order) beside it;
- EPIC-Kitchens-100 narration CSV (`EPIC_100_validation.csv`) with the verb or
  noun class CSV and `EPIC_100_video_info.csv` beside it.
Any of these may be gzip-compressed (`.gz`); the sibling files are looked up
with and without `.gz`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from delcli.data.annotations import Annotations, build_annotations
from delcli.errors import DataError

EPIC_TASKS = ("verb", "noun")


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping `*.gz`."""
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error becomes one `DataError` line with its position."""
    with open_text(path) as handle:
        try:
            text = handle.read()
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as error:
            raise DataError(f"{path}: unreadable ({error})") from None
    return parse_json(text, path)


def parse_json(text: str, source: Path | str) -> Any:
    """Parse JSON text read from `source`; a syntax error becomes one `DataError` line
    with its position."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{source}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except RecursionError:  # hostile input: arrays or objects nested thousands deep
        raise DataError(f"{source}: not readable JSON (nested too deeply)") from None


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """All rows of a CSV file with a header that holds at least `required`."""
    with open_text(path) as handle:
        try:
            return csv_dict_rows(handle, path, required)
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as error:
            raise DataError(f"{path}: unreadable ({error})") from None


def csv_dict_rows(
    handle: Iterable[str], source: Path | str, required: tuple[str, ...]
) -> list[dict[str, str]]:
    """All rows of CSV text (read from `source`) whose header holds at least `required`;
    a missing column or a malformed row is a `DataError`. An error reading the header
    itself (decoding, `csv.Error`) is left to the caller."""
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"{source}: CSV header lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'no header'})"
        )
    try:
        return list(reader)
    except csv.Error as error:
        raise DataError(f"{source}: unreadable ({error})") from None


def read_annotations(path: Path | str, epic_task: str | None = None) -> Annotations:
    """Read any supported ground-truth file (format detected from its content).

    Args:
        path: the annotation file.
        epic_task: `verb` or `noun`; required for EPIC-Kitchens CSV files.
    """
    path = Path(path)
    plain_name = path.name.removesuffix(".gz")
    if plain_name.endswith(".csv"):
        with open_text(path) as handle:
            header = handle.readline()
        if "narration_id" in header:
            return read_epic_csv(path, epic_task)
        raise DataError(
            f"{path}: unrecognised annotation CSV (expected EPIC-Kitchens narrations; "
            "for ActivityNet pass anet_anno_action.json)"
        )
    data = read_json(path)
    if isinstance(data, dict) and "database" in data:
        return read_database_json(data, source=str(path))
    if isinstance(data, dict) and data and _looks_like_bsn(next(iter(data.values()))):
        return read_bsn_activitynet(data, path)
    raise DataError(
        f"{path}: unrecognised annotation format (expected a 'database' key as in "
        "ActivityNet/ActionFormer/UnAV files, or BSN's anet_anno_action.json)"
    )


def _looks_like_bsn(entry: Any) -> bool:
    return isinstance(entry, dict) and "duration_second" in entry


_PLAIN_NUMBERS = frozenset((int, float))  # bool is an int subclass, and refused


def _segment(raw: Any, where: str) -> tuple[float, float]:
    """A `[start, end]` pair of finite numbers in seconds."""
    if type(raw) is list and len(raw) == 2:  # the common case, checked cheaply
        start, end = raw
        if type(start) in _PLAIN_NUMBERS and type(end) in _PLAIN_NUMBERS and start <= end:
            try:
                start, end = float(start), float(end)
            except OverflowError:  # an integer beyond float range: the message below
                pass
            else:
                if math.isfinite(start) and math.isfinite(end):
                    return start, end
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
    ):
        raise DataError(f"{where}: 'segment' must be [start, end] in seconds, got {raw!r}")
    try:
        start, end = float(raw[0]), float(raw[1])
    except OverflowError:
        start = end = math.inf
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{where}: segment {raw!r} is not finite")
    if end < start:
        raise DataError(f"{where}: segment {raw!r} ends before it starts")
    return start, end


def _duration(raw: Any, where: str) -> float:
    """Seconds; NaN (no duration: training derives it from the features) for a missing
    or zero one; a negative or non-numeric one is a `DataError`."""
    if raw is None:
        return math.nan
    try:
        duration = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'duration' must be a number, got {raw!r}") from None
    if duration < 0:
        raise DataError(f"{where}: 'duration' is negative ({raw!r})")
    return duration if duration > 0 else math.nan


def _classes_from_ids(ids: dict[str, set[int]]) -> list[str] | None:
    """The class list in `label_id` order, when ids are consistent and contiguous 0…K-1."""
    if not ids or any(len(values) != 1 for values in ids.values()):
        return None
    by_id = {next(iter(values)): label for label, values in ids.items()}
    if sorted(by_id) != list(range(len(by_id))):
        return None
    return [by_id[i] for i in range(len(by_id))]


def declared_classes(data: object) -> list[str] | None:
    """The class list an annotation JSON carries: `classes` (a list of names) or
    ActivityNet's `taxonomy` (its leaf nodes); None when it carries neither."""
    if not isinstance(data, dict):
        return None
    classes = data.get("classes")
    if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
        return list(classes)
    taxonomy = data.get("taxonomy")
    if isinstance(taxonomy, list) and taxonomy:
        nodes = [n for n in taxonomy if isinstance(n, dict) and "nodeName" in n]
        parents = {n.get("parentName") for n in nodes}
        leaves = [str(n["nodeName"]) for n in nodes if n["nodeName"] not in parents]
        return leaves or None
    return None


def read_database_json(data: dict, source: str) -> Annotations:
    """ActivityNet / ActionFormer / UnAV form (`database` → video → annotations).

    The class list is the file's own (`classes`, or `taxonomy` leaves) when it carries
    one, else the `label_id` order when consistent, else the sorted label names.
    """
    database = data["database"]
    if not isinstance(database, dict):
        raise DataError(f"{source}: 'database' must map video ids to entries")
    videos: list[tuple[str, float, str]] = []
    events: list[tuple[int, float, float, str]] = []
    label_ids: dict[str, set[int]] = {}
    for video_id, entry in database.items():
        where = f"{source}: video '{video_id}'"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: entry must be an object")
        if "subset" not in entry:
            raise DataError(f"{where}: missing 'subset'")
        video_index = len(videos)
        videos.append((video_id, _duration(entry.get("duration"), where), str(entry["subset"])))
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            raise DataError(f"{where}: 'annotations' must be a list")
        for number, annotation in enumerate(annotations):
            at = f"{where} annotation {number}"
            if not isinstance(annotation, dict) or "segment" not in annotation:
                raise DataError(f"{at}: missing 'segment'")
            if "label" not in annotation:
                raise DataError(f"{at}: missing 'label'")
            start, end = _segment(annotation["segment"], at)
            label = str(annotation["label"])
            events.append((video_index, start, end, label))
            if "label_id" in annotation:
                label_ids.setdefault(label, set()).add(annotation["label_id"])
    if len(label_ids) < len({label for *_, label in events}):
        label_ids = {}  # ids only on some annotations: do not trust them
    classes = declared_classes(data)
    if classes is not None and "classes" not in data:  # a taxonomy may be partial: trust it
        named = set(classes)  # only when it names every label
        classes = classes if all(label in named for *_, label in events) else None
    return build_annotations(videos, events, classes or _classes_from_ids(label_ids), source)


def database_json(
    version: str,
    classes: Sequence[str],
    videos: Iterable[tuple[str, str, float, Iterable[tuple[float, float, int]]]],
    fps: float | None = None,
) -> dict:
    """`{"version", "classes", "database": {vid: {...}}}` of `(video_id, subset, duration,
    events)`, each event `(start s, end s, class index)`: the ActivityNet / UnAV form
    `read_database_json` reads, with every class listed (events or not) and each
    video's `fps` when given. What `del data synth`, `synth-video` and `train --videos`
    write."""
    database = {}
    for video_id, subset, duration, events in videos:
        entry: dict[str, Any] = {"subset": subset, "duration": duration}
        if fps is not None:
            entry["fps"] = fps
        entry["annotations"] = [
            {"segment": [start, end], "label": classes[label], "label_id": label}
            for start, end, label in events
        ]
        database[video_id] = entry
    return {"version": version, "classes": list(classes), "database": database}


def _sibling(path: Path, name: str) -> Path | None:
    for candidate in (path.parent / name, path.parent / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def read_bsn_activitynet(data: dict, path: Path) -> Annotations:
    """BSN's ActivityNet-1.3 files: annotations JSON + `video_info_new.csv` subsets."""
    info_path = _sibling(path, "video_info_new.csv")
    if info_path is None:
        raise DataError(
            f"{path}: BSN ActivityNet annotations need video_info_new.csv beside them "
            "(it holds each video's subset)"
        )
    subsets = {
        row["video"]: row["subset"]
        for row in read_csv_rows(info_path, required=("video", "subset"))
    }
    names_path = _sibling(path, "action_name.csv")
    classes = None
    if names_path is not None:
        classes = [row["action"] for row in read_csv_rows(names_path, required=("action",))]
    videos: list[tuple[str, float, str]] = []
    events: list[tuple[int, float, float, str]] = []
    for video_id, entry in data.items():
        where = f"{path}: video '{video_id}'"
        if video_id not in subsets:
            raise DataError(f"{where}: not listed in {info_path.name}")
        video_index = len(videos)
        videos.append((video_id, _duration(entry.get("duration_second"), where), subsets[video_id]))
        for number, annotation in enumerate(entry.get("annotations", [])):
            at = f"{where} annotation {number}"
            if "label" not in annotation:
                raise DataError(f"{at}: missing 'label'")
            start, end = _segment(annotation.get("segment"), at)
            events.append((video_index, start, end, str(annotation["label"])))
    return build_annotations(videos, events, classes, str(path))


def _timestamp_seconds(text: str, where: str) -> float:
    """`HH:MM:SS.ff` → seconds."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        raise DataError(f"{where}: timestamp {text!r} is not HH:MM:SS.ff") from None


def _epic_subset(path: Path) -> str:
    name = path.name.lower()
    for subset in ("train", "validation", "test"):
        if subset in name:
            return subset
    return "validation"


def read_epic_csv(path: Path, task: str | None) -> Annotations:
    """EPIC-Kitchens-100 narrations as a verb or noun localisation task."""
    if task not in EPIC_TASKS:
        raise DataError(
            f"{path}: EPIC-Kitchens annotations need a task: --dataset epic100-verb or epic100-noun"
        )
    class_column = f"{task}_class"
    rows = read_csv_rows(
        path, required=("video_id", "start_timestamp", "stop_timestamp", class_column)
    )
    classes_path = _sibling(path, f"EPIC_100_{task}_classes.csv")
    if classes_path is not None:
        class_rows = read_csv_rows(classes_path, required=("id", "key"))
        by_id = {int(row["id"]): row["key"] for row in class_rows}
        classes = [by_id[i] for i in range(len(by_id))]
    else:  # class ids stand in for names
        by_id = None
        classes = None
    info_path = _sibling(path, "EPIC_100_video_info.csv")
    durations: dict[str, float] = {}
    if info_path is not None:
        for number, row in enumerate(read_csv_rows(info_path, required=("video_id", "duration"))):
            durations[row["video_id"]] = _duration(
                row["duration"], f"{info_path}: row {number + 2}"
            )
    subset = _epic_subset(path)
    video_index: dict[str, int] = {}
    videos: list[tuple[str, float, str]] = []
    events: list[tuple[int, float, float, str]] = []
    for number, row in enumerate(rows):
        where = f"{path}: row {number + 2}"
        video_id = row["video_id"]
        if video_id not in video_index:
            video_index[video_id] = len(videos)
            videos.append((video_id, durations.get(video_id, math.nan), subset))
        start = _timestamp_seconds(row["start_timestamp"], where)
        end = _timestamp_seconds(row["stop_timestamp"], where)
        if end < start:
            raise DataError(f"{where}: stop_timestamp is before start_timestamp")
        try:
            class_id = int(row[class_column])
        except ValueError:
            raise DataError(f"{where}: {class_column} {row[class_column]!r} is not an id") from None
        if by_id is not None and class_id not in by_id:
            raise DataError(f"{where}: {class_column} {class_id} is not in {classes_path.name}")
        label = by_id[class_id] if by_id is not None else str(class_id)
        events.append((video_index[video_id], start, end, label))
    if classes is None:
        classes = [str(i) for i in sorted({int(label) for *_, label in events})]
    return build_annotations(videos, events, classes, str(path))
