"""Detections to be scored: ActivityNet results JSON, ActionFormer results JSON or CSV,
into flat arrays."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from delcli.data.formats import csv_dict_rows, parse_json, read_csv_rows, read_json
from delcli.errors import DataError

CSV_COLUMNS = ("video", "start", "end", "label", "score")
ACTIONFORMER_KEYS = ("video-id", "t-start", "t-end", "label", "score")
RESULT_KEYS = ("segment", "score", "label")


@dataclass(frozen=True)
class Predictions:
    """Scored segments, one row per detection, in file order.

    Attributes:
        videos: distinct video ids, in order of first appearance.
        video: (M,) int64 index into `videos`.
        segments: (M, 2) float64 [start, end] seconds.
        scores: (M,) float64.
        label_names: distinct labels as written (str, or int for class ids).
        label: (M,) int64 index into `label_names`.
        source: file name for messages.
    """

    videos: list[str]
    video: np.ndarray
    segments: np.ndarray
    scores: np.ndarray
    label_names: list[str | int]
    label: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.scores)


def read_predictions(path: Path | str, text: str | None = None) -> Predictions:
    """Read detections: ActivityNet results `.json`, ActionFormer's dict-of-arrays results
    JSON (`video-id`, `t-start`, `t-end`, `label`, `score`) or `.csv`
    (`video,start,end,label,score`); `.gz` allowed.

    `text` is the content when it was read already (stdin, `path` `-`); its format is
    told from the content. A pickle (ActionFormer's `eval_results.pkl`) is refused:
    the error gives the one-line command that converts it to JSON.
    """
    path = Path(path)
    if text is None:
        refuse_pickle(path)
        if path.name.removesuffix(".gz").endswith(".csv"):
            return _read_csv(path, read_csv_rows(path, required=CSV_COLUMNS))
        return _read_results_json(path, read_json(path))
    if not text.strip():
        raise DataError(f"{path}: holds no predictions (empty input)")
    if text.lstrip().startswith(("{", "[")):
        return _read_results_json(path, parse_json(text, path))
    return _read_csv(path, csv_dict_rows(io.StringIO(text), path, CSV_COLUMNS))


def pickle_conversion(path: Path) -> str:
    """The one-line shell command that turns an ActionFormer results pickle into JSON."""
    target = path.with_suffix(".json").name
    return (
        "python -c \"import json, pickle, sys; r = pickle.load(open(sys.argv[1], 'rb')); "
        "json.dump({k: [x.item() if hasattr(x, 'item') else x for x in v] for k, v in "
        f"r.items()}}, open(sys.argv[2], 'w'))\" {path} {target}"
    )


def refuse_pickle(path: Path) -> None:
    """A `DataError` for a pickle file (by name or by its first byte)."""
    pickled = path.suffix.lower() in (".pkl", ".pickle")
    if not pickled and path.is_file():
        with open(path, "rb") as handle:
            pickled = handle.read(1) == b"\x80"  # the PROTO opcode of pickle protocols 2+
    if pickled:
        raise DataError(
            f"{path}: a pickle; del does not unpickle (it can run code). Convert it once, "
            f"where it was made: {pickle_conversion(path)}"
        )


def results_to_predictions(results: dict[str, list[dict]], source: str = "") -> Predictions:
    """In-memory ActivityNet results (`{video: [{label, score, segment}]}`, as
    `predict_dataset` returns them) as `Predictions`; trusted input, no validation."""
    videos = list(results)
    counts = [len(results[v]) for v in videos]
    entries = [entry for v in videos for entry in results[v]]
    names: dict[str | int, int] = {}
    label = [names.setdefault(entry["label"], len(names)) for entry in entries]
    return Predictions(
        videos=videos,
        video=np.repeat(np.arange(len(videos), dtype=np.int64), counts),
        segments=np.array([e["segment"] for e in entries], dtype=np.float64).reshape(-1, 2),
        scores=np.array([e["score"] for e in entries], dtype=np.float64),
        label_names=list(names),
        label=np.array(label, dtype=np.int64),
        source=source,
    )


def _read_results_json(path: Path, data: object) -> Predictions:
    if isinstance(data, dict) and all(key in data for key in ACTIONFORMER_KEYS):
        data = {"results": _actionformer_results(path, data)}
    if not isinstance(data, dict) or "results" not in data:
        raise DataError(f"{path}: not an ActivityNet results file (no top-level 'results' key)")
    results = data["results"]
    if not isinstance(results, dict):
        raise DataError(f"{path}: 'results' must map video ids to lists of detections")
    videos = [str(v) for v in results]
    counts, segments, scores, labels = [], [], [], []
    for video_id, entries in results.items():
        if not isinstance(entries, list):
            raise DataError(f"{path}: results['{video_id}'] must be a list of detections")
        try:
            segments.extend([entry["segment"] for entry in entries])
            scores.extend([entry["score"] for entry in entries])
            labels.extend([entry["label"] for entry in entries])
        except (KeyError, TypeError):
            _explain_entries(path, video_id, entries)
            raise
        counts.append(len(entries))
    video = np.repeat(np.arange(len(videos)), counts)
    entry = np.arange(len(video)) - np.repeat(np.cumsum(counts) - counts, counts)

    def describe(row: int) -> str:
        return f"results['{videos[video[row]]}'][{entry[row]}]"

    bounds = _segment_array(segments, path, describe)
    return _build(path, videos, video, bounds, scores, labels, describe)


def _explain_entries(path: Path, video_id: str, entries: list) -> None:
    """Raise the precise error for the first malformed entry of one video."""
    for number, entry in enumerate(entries):
        where = f"results['{video_id}'][{number}]"
        if not isinstance(entry, dict):
            raise DataError(f"{path}: {where} must be an object")
        missing = [repr(key) for key in RESULT_KEYS if key not in entry]
        if missing:
            raise DataError(f"{path}: {where} has no {', '.join(missing)}")


def _segment_array(segments: list, path: Path, describe: Callable[[int], str]) -> np.ndarray:
    """(M, 2) float64 from `[start, end]` lists, or an error naming the first bad one."""
    try:
        bounds = _float_array(segments)
        if (bounds.ndim == 2 and bounds.shape[1] == 2) or len(segments) == 0:
            return bounds.reshape(-1, 2)
    except (TypeError, ValueError):
        pass
    for row, segment in enumerate(segments):
        if not isinstance(segment, list | tuple) or len(segment) != 2:
            raise DataError(
                f"{path}: {describe(row)} 'segment' must be [start, end], got {segment!r}"
            )
        for value, name in zip(segment, ("start", "end"), strict=True):
            if not _is_number(value):
                raise DataError(f"{path}: {describe(row)} has a non-numeric {name} {value!r}")
    raise DataError(f"{path}: segments are not all [start, end] pairs")


def _actionformer_results(path: Path, data: dict) -> dict[str, list[dict]]:
    """ActionFormer's results (`valid_one_epoch`: parallel lists per key) as ActivityNet's."""
    columns = [data[key] for key in ACTIONFORMER_KEYS]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
        lengths = ", ".join(
            f"{key} {len(c) if isinstance(c, list) else type(c).__name__}"
            for key, c in zip(ACTIONFORMER_KEYS, columns, strict=True)
        )
        raise DataError(f"{path}: ActionFormer results need lists of one length ({lengths})")
    results: dict[str, list[dict]] = {}
    for video, start, end, label, score in zip(*columns, strict=True):
        results.setdefault(str(video), []).append(
            {"segment": [start, end], "label": label, "score": score}
        )
    return results


def _read_csv(path: Path, rows: list[dict[str, str]]) -> Predictions:
    index: dict[str, int] = {}
    video = np.array([index.setdefault(row["video"], len(index)) for row in rows], dtype=np.int64)

    def describe(row: int) -> str:
        return f"row {row + 2}"

    bounds = _segment_array([[row["start"], row["end"]] for row in rows], path, describe)
    scores = [row["score"] for row in rows]
    labels = [row["label"] for row in rows]
    return _build(path, list(index), video, bounds, scores, labels, describe)


def _build(
    path: Path,
    videos: list[str],
    video: np.ndarray,
    segments: np.ndarray,
    scores: list,
    labels: list,
    describe: Callable[[int], str],
) -> Predictions:
    """Validate the columns and intern the labels.

    A negative start is kept as given: real detectors emit them near a video's start and
    the official scorer scores them unclamped (`score_loaded` notes how many)."""
    if len(video) == 0:
        raise DataError(f"{path}: holds no predictions")
    try:
        score = _float_array(scores)
    except (TypeError, ValueError):
        row = next(r for r, value in enumerate(scores) if not _is_number(value))
        raise DataError(
            f"{path}: {describe(row)} has a non-numeric score {scores[row]!r}"
        ) from None
    problems = (
        (~np.isfinite(score), "a score that is not a finite number"),
        (~np.isfinite(segments).all(axis=1), "a non-finite segment boundary"),
        (segments[:, 1] < segments[:, 0], "a segment that ends before it starts"),
    )
    for bad, what in problems:
        if bad.any():
            row = int(np.argmax(bad))
            start, end = segments[row]
            raise DataError(
                f"{path}: {describe(row)} has {what} "
                f"(segment [{start:g}, {end:g}], score {score[row]:g})"
            )
    try:  # distinct labels in order of first appearance, at C speed
        names = {name: number for number, name in enumerate(dict.fromkeys(labels))}
    except TypeError:  # an unhashable label
        names = None
    # by type, not by key: 1.0 and True are equal to the key 1 but are not class ids
    valid = (
        names is not None
        and set(map(type, labels)) <= {str, int}
        and all(_is_label(name) for name in names)
    )
    if not valid:
        row = next(r for r, name in enumerate(labels) if not _is_label(name))
        raise DataError(
            f"{path}: {describe(row)} label {labels[row]!r} must be a class name or class id"
        )
    label = np.fromiter(map(names.__getitem__, labels), dtype=np.int64, count=len(labels))
    return Predictions(
        videos=videos,
        video=video,
        segments=segments,
        scores=score,
        label_names=list(names),
        label=label,
        source=str(path),
    )


def _is_label(name: object) -> bool:
    """A class name, or a non-negative integer class id."""
    if isinstance(name, str):
        return True
    return isinstance(name, int) and not isinstance(name, bool) and name >= 0


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)  # numbers, and numeric strings from CSV
        return True
    except OverflowError:  # an integer beyond float range: a number, refused as non-finite
        return True
    except (TypeError, ValueError):
        return False


def _float_array(values: list) -> np.ndarray:
    """`np.array(values, float64)`, with integers beyond the float range (JSON allows
    them) as ±inf — refused later as non-finite — instead of an `OverflowError`."""
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        return np.array(_big_as_inf(values), dtype=np.float64)


def _big_as_inf(value: object) -> object:
    if isinstance(value, list | tuple):
        return [_big_as_inf(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value
