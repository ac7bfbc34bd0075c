"""Ground truth in one in-memory form, whatever file it came from.

`Annotations` holds every video of an annotation file (all subsets) and its
events as flat arrays, so evaluation and datasets index them without loops.
Readers for the benchmarks' file formats live in `delcli.data.formats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delcli.errors import DataError

# Subset names seen in the field's files, folded to one spelling each.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}


def canonical_split(name: str) -> str:
    """Fold a subset name (`Validation`, `training`, `val`, …) to `train|validation|test`.

    Names outside the known aliases are kept, lower-cased, so custom subsets work.
    """
    key = name.strip().lower()
    return _SPLIT_ALIASES.get(key, key)


class UnknownSplit(DataError):
    """The annotations hold no video of the split asked for."""


@dataclass(frozen=True)
class Annotations:
    """Videos and their labelled events.

    Attributes:
        video_ids: (V,) video identifiers, in file order.
        durations: (V,) float64 seconds; NaN where the file gives none.
        subsets: (V,) canonical subset of each video (see `canonical_split`).
        classes: (K,) class names; an event's label indexes this list.
        event_video: (N,) int64 index into `video_ids`.
        segments: (N, 2) float64 [start, end] in seconds.
        labels: (N,) int64 index into `classes`.
        source: where the annotations were read from (for messages).
    """

    video_ids: list[str]
    durations: np.ndarray
    subsets: list[str]
    classes: list[str]
    event_video: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    source: str = ""
    _index: dict[str, int] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {v: i for i, v in enumerate(self.video_ids)})

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def num_events(self) -> int:
        return len(self.labels)

    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def split_names(self) -> list[str]:
        return sorted(set(self.subsets))

    def find_video(self, video_id: str) -> int:
        """Index of `video_id`, or -1.

        ActivityNet ids appear with and without BSN's `v_` prefix across tools;
        an id that is not found verbatim is tried with the prefix added/removed.
        """
        index = self._index.get(video_id)
        if index is None:
            alias = video_id[2:] if video_id.startswith("v_") else "v_" + video_id
            index = self._index.get(alias, -1)
        return index

    def select_split(self, split: str) -> Annotations:
        """The videos of one subset (and their events), classes unchanged."""
        wanted = canonical_split(split)
        keep = np.array([s == wanted for s in self.subsets], dtype=bool)
        if not keep.any():
            available = ", ".join(self.split_names()) or "none"
            raise UnknownSplit(
                f"{self.source}: no videos in split '{split}' (splits here: {available})"
            )
        return self._subset_videos(keep)

    def _subset_videos(self, keep: np.ndarray) -> Annotations:
        new_index = np.cumsum(keep) - 1
        event_keep = keep[self.event_video]
        return Annotations(
            video_ids=[v for v, k in zip(self.video_ids, keep, strict=True) if k],
            durations=self.durations[keep],
            subsets=[s for s, k in zip(self.subsets, keep, strict=True) if k],
            classes=self.classes,
            event_video=new_index[self.event_video[event_keep]],
            segments=self.segments[event_keep],
            labels=self.labels[event_keep],
            source=self.source,
        )

    def without_degenerate_events(self, tolerance: float = 1e-3) -> tuple[Annotations, int, int]:
        """Drop zero/negative-length events and duplicates (same video, label and
        boundaries within `tolerance` s) — the ActionFormer/OpenTAD cleaning.

        Returns the cleaned annotations and the counts of (zero-length, duplicate)
        events removed.
        """
        positive = self.segments[:, 1] > self.segments[:, 0]
        rounded = np.round(self.segments / tolerance).astype(np.int64)
        keys = np.stack([self.event_video, self.labels, rounded[:, 0], rounded[:, 1]], axis=1)
        # the first occurrence of every key survives
        _, first = np.unique(keys, axis=0, return_index=True)
        unique = np.zeros(len(keys), dtype=bool)
        unique[first] = True
        keep = positive & unique
        cleaned = Annotations(
            video_ids=self.video_ids,
            durations=self.durations,
            subsets=self.subsets,
            classes=self.classes,
            event_video=self.event_video[keep],
            segments=self.segments[keep],
            labels=self.labels[keep],
            source=self.source,
        )
        return cleaned, int((~positive).sum()), int((positive & ~unique).sum())


def build_annotations(
    videos: list[tuple[str, float, str]],
    events: list[tuple[int, float, float, str]],
    classes: list[str] | None,
    source: str,
) -> Annotations:
    """Assemble `Annotations` from reader output.

    Args:
        videos: (video id, duration in s or NaN, raw subset name) per video.
        events: (video index, start s, end s, label name) per event.
        classes: the benchmark's class list in id order; None → the sorted
            distinct labels of the file.
        source: file name for messages.
    """
    if classes is None:
        classes = sorted({label for *_, label in events})
    class_index = {name: i for i, name in enumerate(classes)}
    labels = np.empty(len(events), dtype=np.int64)
    for row, (_, _, _, label) in enumerate(events):
        index = class_index.get(label)
        if index is None:
            raise DataError(f"{source}: label '{label}' is not in the class list")
        labels[row] = index
    segments = np.array([(s, e) for _, s, e, _ in events], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(segments).all():
        raise DataError(f"{source}: an event has a non-finite boundary")
    return Annotations(
        video_ids=[v for v, _, _ in videos],
        durations=np.array([d for _, d, _ in videos], dtype=np.float64),
        subsets=[canonical_split(s) for _, _, s in videos],
        classes=list(classes),
        event_video=np.array([v for v, *_ in events], dtype=np.int64),
        segments=segments,
        labels=labels,
        source=source,
    )
