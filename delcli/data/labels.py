"""A user's own labels, read leniently: every row a `LabelRow`, every bad row one line.

Three formats, told apart by content (`read_labels`):
- CSV `video,start,end,label[,split]` (a header row is optional; times in seconds
  or `hh:mm:ss.ms` / `mm:ss.ms`);
- ActivityNet / ActionFormer JSON (`database` → video → `subset`,
  `annotations: [{segment, label}]`), the subset becoming the row's split;
- a folder of Audacity label files, `<video>.txt` with `start<TAB>end<TAB>label`
  lines (the `\\` lines of spectral selections are skipped).

Unlike the ground-truth readers of `delcli.data.formats`, which stop at the
first problem, these keep every row they can and return a line for each one
they cannot: a user's first labelling always has a few slips. Checking rows
against the videos and choosing splits is `delcli.data.label_checks`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from delcli.data.formats import declared_classes, open_text, parse_json
from delcli.errors import DataError

CSV_COLUMNS = ("video", "start", "end", "label")


@dataclass(frozen=True)
class LabelRow:
    """One labelled event as written.

    `where` names the row for messages (`labels.csv row 7`); `start`/`end` are
    seconds; `split` is the row's subset, or None when the file gives none.
    """

    where: str
    video: str
    start: float
    end: float
    label: str
    split: str | None = None


@dataclass
class LabelFile:
    """Every readable row of a label file, and one line per row that was not.

    `splits` holds the subset of videos that the file lists without events (JSON);
    `classes` is the file's own class list when it carries one, else None.
    """

    source: str
    rows: list[LabelRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    splits: dict[str, str] = field(default_factory=dict)
    classes: list[str] | None = None
    kind: str = ""


def parse_time(text: str) -> float:
    """Seconds from `12.5`, `01:02.5` (mm:ss) or `00:01:02.500` (hh:mm:ss); ValueError else."""
    text = text.strip()
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
        raise ValueError(text)
    seconds = float(parts[-1])
    for scale, part in zip((60, 3600), reversed(parts[:-1]), strict=False):
        whole = int(part)
        if whole < 0:
            raise ValueError(text)
        seconds += scale * whole
    if not math.isfinite(seconds):
        raise ValueError(text)
    return seconds


def read_labels(path: str | Path) -> LabelFile:
    """Read a label file or folder (format detected from its content, see the module)."""
    path = Path(path)
    if path.is_dir():
        return read_audacity_folder(path)
    if not path.exists():
        raise DataError(f"--labels {path}: no such file or folder")
    with open_text(path) as handle:
        try:
            text = handle.read()
        except (UnicodeDecodeError, OSError, EOFError) as error:
            raise DataError(f"{path}: unreadable ({error})") from None
    if not text.strip():
        raise DataError(f"{path}: the label file is empty")
    if text.lstrip().startswith(("{", "[")):
        return read_label_json(text, str(path))
    if "\t" in text.splitlines()[0] and "," not in text.splitlines()[0]:
        raise DataError(
            f"{path}: looks like an Audacity label file; put one <video>.txt per video in a "
            "folder and pass the folder (--labels FOLDER)"
        )
    return read_label_csv(text, str(path))


# -- CSV --------------------------------------------------------------------------------------


def read_label_csv(text: str, source: str) -> LabelFile:
    """`video,start,end,label[,split]` rows; a first row naming the columns is a header."""
    name = Path(source).name
    labels = LabelFile(source, kind="csv")
    rows = list(csv.reader(io.StringIO(text)))
    columns = {"video": 0, "start": 1, "end": 2, "label": 3, "split": 4}
    first = 0
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if all(column in header for column in CSV_COLUMNS):
        columns = {
            column: header.index(column) for column in (*CSV_COLUMNS, "split") if column in header
        }
        first = 1
    elif header and not _is_time(header[1] if len(header) > 1 else ""):
        raise DataError(
            f"{source}: the header must name the columns video,start,end,label[,split] "
            f"(found: {','.join(header)})"
        )
    for number, row in enumerate(rows[first:], start=first + 1):
        where = f"{name} row {number}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(columns[c] for c in CSV_COLUMNS):
            labels.problems.append(
                f"{where}: {len(row)} column(s), expected video,start,end,label[,split]; "
                "row dropped"
            )
            continue
        cell = {
            key: row[index].strip() if index < len(row) else "" for key, index in columns.items()
        }
        _add_row(
            labels,
            where,
            cell["video"],
            cell["start"],
            cell["end"],
            cell["label"],
            cell.get("split") or None,
        )
    return labels


def _is_time(text: str) -> bool:
    try:
        parse_time(text)
        return True
    except ValueError:
        return False


def _add_row(labels: LabelFile, where, video, start, end, label, split) -> None:
    if not video:
        labels.problems.append(f"{where}: no video named; row dropped")
        return
    times = []
    for name, text in (("start", start), ("end", end)):
        try:
            times.append(parse_time(str(text)))
        except ValueError:
            labels.problems.append(
                f"{where}: {name} {text!r} is not a time (seconds or hh:mm:ss.ms); row dropped"
            )
            return
    labels.rows.append(LabelRow(where, video, times[0], times[1], str(label).strip(), split))


# -- JSON -------------------------------------------------------------------------------------


def read_label_json(text: str, source: str) -> LabelFile:
    """ActivityNet / ActionFormer `database` JSON; subsets become splits."""
    name = Path(source).name
    data = parse_json(text, source)
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise DataError(
            f"{source}: expected ActivityNet/ActionFormer JSON ({{'database': {{video: "
            "{'subset', 'annotations': [{'segment': [s, e], 'label'}]}}}})"
        )
    labels = LabelFile(source, kind="json", classes=declared_classes(data))
    for video, entry in database.items():
        if not isinstance(entry, dict):
            labels.problems.append(f"{name} video '{video}': entry is not an object; dropped")
            continue
        subset = entry.get("subset")
        split = str(subset) if subset not in (None, "") else None
        if split is not None:
            labels.splits[str(video)] = split
        annotations = entry.get("annotations") or []
        if not isinstance(annotations, list):
            labels.problems.append(f"{name} video '{video}': 'annotations' is not a list; dropped")
            continue
        for number, annotation in enumerate(annotations):
            where = f"{name} video '{video}' annotation {number}"
            segment = annotation.get("segment") if isinstance(annotation, dict) else None
            if not isinstance(segment, list | tuple) or len(segment) != 2:
                labels.problems.append(f"{where}: no [start, end] 'segment'; dropped")
                continue
            label = annotation.get("label")
            _add_row(
                labels,
                where,
                str(video),
                segment[0],
                segment[1],
                "" if label is None else label,
                split,
            )
    return labels


# -- Audacity ---------------------------------------------------------------------------------


def read_audacity_folder(folder: Path) -> LabelFile:
    """One Audacity label track per video: `folder/<video>.txt`."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise DataError(
            f"--labels {folder}: a folder of Audacity label files needs <video>.txt files; "
            "found none"
        )
    labels = LabelFile(str(folder), kind="audacity")
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            labels.problems.append(f"{path.name}: unreadable ({error}); file skipped")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.startswith("\\"):  # spectral selection lines
                continue
            where = f"{path.name} line {number}"
            cells = line.split("\t")
            if len(cells) < 3:
                labels.problems.append(f"{where}: expected start<TAB>end<TAB>label; line dropped")
                continue
            _add_row(labels, where, path.stem, cells[0], cells[1], "\t".join(cells[2:]), None)
    return labels
