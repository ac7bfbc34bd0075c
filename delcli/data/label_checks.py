"""From a user's label rows and video files to clean, split ground truth.

    found = find_videos(folder)                          # or videos_from_list(list_file)
    checked = check_labels(read_labels(path), found, durations)
    assign_splits(checked, (0.8, 0.1, 0.1), seed=0)      # unless the labels carry splits
    drop_untrained_classes(checked)
    checked.annotation_json()                            # ActivityNet JSON, classes included

Every row that cannot be used is one line in `checked.problems` naming the row;
rows that can be repaired (an end past the video's end) are repaired and named
too. Splits are stratified by class at the level of videos and seeded, so the
same labels and seed always give the same split; the JSON records it.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from delcli.data.annotations import canonical_split
from delcli.data.formats import database_json
from delcli.data.labels import LabelFile, LabelRow
from delcli.errors import ConfigError, DataError

VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".3gp",
    ".ogv",
)
SPLITS = ("train", "validation", "test")


@dataclass
class VideoFiles:
    """Video files and the names a label may use for each: the path relative to the folder
    (with or without its extension), the file name, or the name without its extension."""

    paths: dict[str, Path]  # video id (file name without extension) → path
    names: dict[str, str | None] = field(default_factory=dict)  # name → id; None: ambiguous
    where: str = ""  # "in FOLDER" / "in LIST", for messages

    def resolve(self, name: str) -> str | None:
        """The video id a label's video name means; None when unknown or ambiguous."""
        name = name.strip().replace("\\", "/")
        return self.names.get(name, self.names.get(name.removeprefix("./")))


def find_videos(folder: Path) -> VideoFiles:
    """Every video file under `folder` (recursively, by extension)."""
    if not folder.is_dir():
        raise ConfigError(f"--videos {folder}: not a folder")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
    )
    if not paths:
        suffixes = ", ".join(VIDEO_SUFFIXES[:6])
        raise ConfigError(f"--videos {folder}: no video files ({suffixes}, …) in it")
    return _index(paths, folder, f"in {folder}")


def videos_from_list(list_file: Path, paths: Sequence[str | Path]) -> VideoFiles:
    """The videos of a `--list` file (paths relative to the current directory)."""
    existing = [Path(p) for p in paths]
    missing = [str(p) for p in existing if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"--list {list_file}: no such video file '{missing[0]}'{more}")
    return _index(existing, None, f"in {list_file}")


def _index(paths: list[Path], root: Path | None, where: str) -> VideoFiles:
    videos = VideoFiles({}, {}, where)
    for path in paths:
        video = path.stem
        if video in videos.paths:
            raise ConfigError(
                f"two videos are named '{video}' ({videos.paths[video]} and {path}); "
                "a video's id is its file name without the extension, so rename one"
            )
        videos.paths[video] = path
        relative = PurePosixPath(path.relative_to(root).as_posix()) if root else None
        keys = {path.name, path.stem, path.as_posix(), path.with_suffix("").as_posix()}
        if relative is not None:
            keys |= {str(relative), str(relative.with_suffix(""))}
        for key in keys:
            videos.names[key] = video if videos.names.get(key, video) == video else None
    return videos


@dataclass
class Event:
    video: str
    start: float
    end: float
    label: str
    where: str


@dataclass
class CheckedLabels:
    """Usable events of labelled videos, their durations and (once chosen) splits."""

    source: str
    events: list[Event]
    durations: dict[str, float]  # video id → seconds, for every video with a usable event
    paths: dict[str, Path]
    splits: dict[str, str] = field(default_factory=dict)  # video id → train|validation|test
    problems: list[str] = field(default_factory=list)
    split_source: str = ""  # "the labels" or "seeded ratios …"
    declared_classes: list[str] | None = None

    @property
    def classes(self) -> list[str]:
        """The class list: the file's own order when it carries one, else sorted names."""
        used = {e.label for e in self.events}
        if self.declared_classes:
            return [c for c in self.declared_classes if c in used]
        return sorted(used)

    def videos(self, split: str | None = None) -> list[str]:
        ids = sorted(self.durations)
        return ids if split is None else [v for v in ids if self.splits.get(v) == split]

    def annotation_json(self, fps: float | None = None, version: str = "del") -> dict:
        """ActivityNet form with the class list (`classes`), in video id order."""
        by_video: dict[str, list[Event]] = defaultdict(list)
        for event in self.events:
            by_video[event.video].append(event)
        classes = self.classes
        index = {name: i for i, name in enumerate(classes)}
        entries = [
            (
                video,
                self.splits.get(video, "train"),
                self.durations[video],
                [
                    (e.start, e.end, index[e.label])
                    for e in sorted(by_video[video], key=lambda e: (e.start, e.end, e.label))
                ],
            )
            for video in self.videos()
        ]
        return database_json(version, classes, entries, fps)


def check_labels(
    labels: LabelFile, videos: VideoFiles, duration: Callable[[Path], float]
) -> CheckedLabels:
    """The rows of `labels` that name a known video with a sensible event.

    Dropped, each with a line naming the row: an unknown video, an empty label, an
    end at or before the start, an event that starts after the video ends, an
    unreadable video (`duration` raising `DataError`). Kept and named: an end past the
    video's end (clipped to it). Split names are folded to train/validation/test.
    """
    checked = CheckedLabels(labels.source, [], {}, {}, problems=list(labels.problems))
    checked.declared_classes = labels.classes
    lengths: dict[str, float | None] = {}
    row_splits: dict[str, set[str]] = defaultdict(set)
    for row in labels.rows:
        video = videos.resolve(row.video)
        if video is None:
            checked.problems.append(_unknown(row, videos))
            continue
        if video not in lengths:
            try:
                lengths[video] = float(duration(videos.paths[video]))
            except DataError as error:
                lengths[video] = None
                checked.problems.append(f"video '{video}': {error}; its rows dropped")
        length = lengths[video]
        if length is None:
            continue
        event = _checked_event(row, video, length, checked.problems)
        if event is None:
            continue
        checked.events.append(event)
        checked.durations[video] = length
        checked.paths[video] = videos.paths[video]
        if row.split is not None:
            row_splits[video].add(canonical_split(row.split))
    for name, split in labels.splits.items():
        video = videos.resolve(name)
        if video is not None and video in checked.durations:
            row_splits[video].add(canonical_split(split))
    _take_file_splits(checked, row_splits)
    return checked


def _unknown(row: LabelRow, videos: VideoFiles) -> str:
    ambiguous = videos.names.get(row.video.strip()) is None and row.video.strip() in videos.names
    reason = "names two video files" if ambiguous else f"is not a video {videos.where}"
    return f"{row.where}: video '{row.video}' {reason}; row dropped"


def _checked_event(row: LabelRow, video: str, length: float, problems: list[str]) -> Event | None:
    if not row.label:
        problems.append(f"{row.where}: empty label; row dropped")
        return None
    if row.end <= row.start:
        problems.append(
            f"{row.where}: end {row.end:g} s is not after start {row.start:g} s; row dropped"
        )
        return None
    if row.start < 0:
        problems.append(f"{row.where}: start {row.start:g} s is negative; row dropped")
        return None
    if row.start >= length:
        problems.append(
            f"{row.where}: starts at {row.start:g} s, after the video's end ({length:.2f} s); "
            "row dropped"
        )
        return None
    end = row.end
    if end > length + 1e-3:
        problems.append(
            f"{row.where}: ends at {end:g} s, after the video's end ({length:.2f} s); "
            f"kept, clipped to {length:.2f} s"
        )
        end = length
    return Event(video, row.start, min(end, length), row.label, row.where)


def _take_file_splits(checked: CheckedLabels, row_splits: dict[str, set[str]]) -> None:
    """Splits named by the labels (a `split` column, JSON subsets), one per video."""
    if not row_splits:
        return
    for video in checked.videos():
        names = sorted(row_splits.get(video, ()))
        if len(names) > 1:
            checked.problems.append(
                f"video '{video}': its rows name several splits ({', '.join(names)}); "
                f"'{names[0]}' used"
            )
        if not names:
            checked.problems.append(f"video '{video}': no split given; put in 'train'")
        split = names[0] if names else "train"
        if split not in SPLITS:
            checked.problems.append(
                f"video '{video}': split '{split}' is not train, validation or test; put in 'train'"
            )
            split = "train"
        checked.splits[video] = split
    checked.split_source = "the labels' splits"


def parse_ratios(text: str) -> tuple[float, float, float]:
    """`0.8,0.1,0.1` → train, validation, test shares (normalised to sum 1)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values) or values[0] <= 0:
        raise ConfigError(
            f"--split-ratios '{text}': three shares train,validation,test, e.g. 0.8,0.1,0.1"
        )
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def assign_splits(checked: CheckedLabels, ratios: tuple[float, float, float], seed: int) -> None:
    """A seeded split of the videos, stratified by class (systematic sampling).

    Each video is filed under its rarest class (the class with the fewest videos).
    Within each such group, shuffled with `seed`, the i-th of n videos takes the
    position (i + 0.5) / n; all videos sorted by position (ties in seeded random
    order) are cut by `ratios` — test first, then validation, the rest train — so
    every class's share of each split follows the ratios as closely as the counts
    allow. Depends only on the labels, the ratios and the seed.
    """
    if checked.splits:  # the labels named them
        return
    videos_of: dict[str, set[str]] = defaultdict(set)
    labels_of: dict[str, set[str]] = defaultdict(set)
    for event in checked.events:
        videos_of[event.label].add(event.video)
        labels_of[event.video].add(event.label)
    groups: dict[str, list[str]] = defaultdict(list)
    for video in checked.videos():
        rarest = min(labels_of[video], key=lambda label: (len(videos_of[label]), label))
        groups[rarest].append(video)
    rng = random.Random(seed)
    ranked = []
    for label in sorted(groups):
        members = groups[label]
        rng.shuffle(members)
        ranked += [((i + 0.5) / len(members), rng.random(), v) for i, v in enumerate(members)]
    ranked.sort()
    total = len(ranked)
    n_test, n_val = (round(total * share) for share in (ratios[2], ratios[1]))
    if total >= 3:  # a share asked for gets at least one video
        n_test, n_val = max(n_test, ratios[2] > 0), max(n_val, ratios[1] > 0)
    n_test = min(n_test, total - 1)
    n_val = min(n_val, total - 1 - n_test)
    for position, (_, _, video) in enumerate(ranked):
        split = (
            "test" if position < n_test else "validation" if position < n_test + n_val else "train"
        )
        checked.splits[video] = split
    shares = "/".join(f"{share:g}" for share in ratios)
    checked.split_source = f"a seeded split stratified by class (ratios {shares}, seed {seed})"


def drop_untrained_classes(checked: CheckedLabels) -> None:
    """Drop the events of classes without a training example, each class one line."""
    trained = {e.label for e in checked.events if checked.splits.get(e.video) == "train"}
    untrained = Counter(e.label for e in checked.events if e.label not in trained)
    for label in sorted(untrained):
        rows = [e.where for e in checked.events if e.label == label]
        listed = "; ".join(rows[:3]) + (f"; … {len(rows) - 3} more" if len(rows) > 3 else "")
        checked.problems.append(
            f"class '{label}' has no training example ({listed}); its {len(rows)} row(s) dropped"
        )
    if untrained:
        checked.events = [e for e in checked.events if e.label in trained]
        still = {e.video for e in checked.events}
        checked.durations = {v: d for v, d in checked.durations.items() if v in still}


def split_counts(checked: CheckedLabels) -> dict[str, int]:
    counts = Counter(checked.splits.get(v, "train") for v in checked.videos())
    return {split: counts.get(split, 0) for split in SPLITS}
