"""`del predict`'s output: events in each `--format`, and timelines drawn with `--plot`."""

from __future__ import annotations

import contextlib
import csv
import enum
import gzip
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from delcli.cli.output import note, stdout_console
from delcli.errors import ConfigError
from delcli.files import STDOUT, atomic_path, write_bytes_atomic

if TYPE_CHECKING:
    from delcli.data.annotations import Annotations
    from delcli.inference.video import Event, VideoEvents


class PredictFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    anet = "anet"
    srt = "srt"
    vtt = "vtt"
    audacity = "audacity"


# Formats for people who watch videos: one file per video (delcli.inference.captions).
PER_VIDEO = {PredictFormat.srt: ".srt", PredictFormat.vtt: ".vtt", PredictFormat.audacity: ".txt"}


def per_video_folder(kind: PredictFormat, output: Path | None, count: int) -> bool:
    """Whether `--output` is a folder of one file per video (srt, vtt, audacity); checked
    before any work: several videos in these formats need one."""
    if kind not in PER_VIDEO:
        return False
    folder = output is not None and (output.is_dir() or not output.suffix)
    if count > 1 and not folder:
        raise ConfigError(
            f"--format {kind.value} writes one file per video: give --output DIR for "
            f"{count} videos (one <video>{PER_VIDEO[kind]} each)"
        )
    if folder:
        output.mkdir(parents=True, exist_ok=True)
    return folder


def above(result: VideoEvents, threshold: float | None) -> VideoEvents:
    """`result` with only its events scoring at least `threshold` (all with None)."""
    if threshold is None:
        return result
    return replace(result, events=[e for e in result.events if e.score >= threshold])


# -- plots -----------------------------------------------------------------------------------


def check_plot(plot: str | None, annotations: Path | None, count: int) -> tuple[Path, bool] | None:
    """(target, is_folder) of `--plot`, checked before any work; None without it.

    A folder is a path ending in '/', an existing folder, or a new name without a suffix.
    """
    if plot is None:
        if annotations is not None:
            raise ConfigError("--annotations only draws ground truth in plots: add --plot")
        return None
    from delcli.inference.timeline import FORMATS, require_matplotlib

    require_matplotlib()
    text, plot = plot, Path(plot).expanduser()
    folder = text.endswith(("/", os.sep)) or plot.is_dir() or not (plot.exists() or plot.suffix)
    if folder:
        if plot.exists() and not plot.is_dir():
            raise ConfigError(f"--plot {plot}: is a file, not a folder")
        plot.mkdir(parents=True, exist_ok=True)
        return plot, True
    if count > 1:
        raise ConfigError(
            f"--plot {plot}: one picture for {count} videos; give a folder (--plot DIR/) "
            "for one picture per video"
        )
    if plot.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {plot}: the picture must end in {', '.join(FORMATS)}")
    if not plot.parent.is_dir():
        raise ConfigError(f"--plot {plot}: folder {plot.parent} does not exist")
    return plot, False


def plotter(
    target: tuple[Path, bool],
    ground_truth: Annotations | None,
    threshold: float,
    classes: list[str],
) -> Callable[[VideoEvents], None]:
    """Draws a video's events scoring at least `threshold` to the `check_plot` target."""
    from delcli.inference.timeline import plot_timeline

    where, folder = target

    def draw(result: VideoEvents) -> None:
        truth = gt_events(ground_truth, result.video_id) if ground_truth is not None else None
        if ground_truth is not None and truth is None:
            note(f"{ground_truth.source} has no video '{result.video_id}': no ground truth drawn")
        out = where / f"{result.video_id}.png" if folder else where
        plot_timeline(above(result, threshold), out, truth, classes)

    return draw


def gt_events(annotations: Annotations, video_id: str) -> list[Event] | None:
    """The annotated events of `video_id` (None when the file lacks the video)."""
    from delcli.inference.video import Event

    index = annotations.find_video(video_id)
    if index < 0:
        return None
    rows = (annotations.event_video == index).nonzero()[0]
    return [
        Event(
            float(annotations.segments[i, 0]),
            float(annotations.segments[i, 1]),
            annotations.classes[annotations.labels[i]],
        )
        for i in rows
    ]


# -- output ----------------------------------------------------------------------------------


def _event_record(event: Event) -> dict:
    return {
        "start": round(event.start, 3),
        "end": round(event.end, 3),
        "label": event.label,
        "score": round(event.score, 6),
    }


class EventWriter:
    """Writes videos' events in one format to stdout or, atomically, to a file.

    Table, JSON lines and CSV stream video by video; JSON and ActivityNet results are
    one document, written when the last video is done. A file goes to a temporary
    name next to it and is renamed into place only when every video is done
    (`delcli.files.atomic_path`: a symlink's target is replaced, a device or FIFO is
    written directly, an existing file keeps its mode); `-` is stdout.
    """

    def __init__(
        self, kind: PredictFormat, path: Path | None, threshold: float | None, weights: str
    ) -> None:
        self.kind, self.path, self.threshold, self.weights = kind, path, threshold, weights
        self.stream: TextIO = sys.stdout
        self.target: contextlib.AbstractContextManager | None = None  # atomic_path(path)
        self.files: list = []  # what to close, innermost first
        self.collected: list[VideoEvents] = []
        self.folder = kind in PER_VIDEO and path is not None and path.is_dir()

    def __enter__(self) -> EventWriter:
        if self.path is not None and str(self.path) != STDOUT and not self.folder:
            self.target = atomic_path(self.path)
            temporary = self.target.__enter__()
            self.files = [open(temporary, "wb")]
            if self.path.suffix == ".gz":  # GzipFile leaves the file it wraps open
                self.files.append(gzip.GzipFile(fileobj=self.files[0], mode="wb", mtime=0))
            self.stream = io.TextIOWrapper(self.files[-1], encoding="utf-8", newline="")
        if self.kind is PredictFormat.table:
            self.console = stdout_console() if self.target is None else _file_console(self.stream)
        if self.kind is PredictFormat.csv:
            self.csv = csv.writer(self.stream, lineterminator="\n")
            self.csv.writerow(["video", "start", "end", "label", "score"])
        return self

    def write(self, result: VideoEvents) -> None:
        result = above(result, self.threshold)
        if self.kind in PER_VIDEO:
            self._write_captions(result)
            return
        if self.kind is PredictFormat.table:
            self.console.print(_table(result, self.threshold))
        elif self.kind is PredictFormat.jsonl:
            for event in result.events:
                self.stream.write(json.dumps({"video": result.video_id, **_event_record(event)}))
                self.stream.write("\n")
        elif self.kind is PredictFormat.csv:
            for e in result.events:
                record = _event_record(e)
                self.csv.writerow(
                    [result.video_id, record["start"], record["end"], e.label, record["score"]]
                )
        else:
            self.collected.append(result)
        self.stream.flush()

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            if self.kind is PredictFormat.json:
                json.dump([_video_record(r) for r in self.collected], self.stream, indent=2)
                self.stream.write("\n")
            elif self.kind is PredictFormat.anet:
                json.dump(self._results_document(), self.stream)
                self.stream.write("\n")
            self.stream.flush()
        if self.target is None:
            return
        try:
            self.stream.close()
            for file in reversed(self.files):
                file.close()
        except BaseException as closing:  # e.g. the disk filled up on the last flush
            self.target.__exit__(type(closing), closing, closing.__traceback__)
            raise
        self.target.__exit__(kind, error, traceback)  # in place, or removed after an error

    def _write_captions(self, result: VideoEvents) -> None:
        from delcli.inference.captions import render_audacity, render_srt, render_vtt

        if self.kind is PredictFormat.srt:
            text = render_srt(result.events)
        elif self.kind is PredictFormat.vtt:
            text = render_vtt(result.events, title=result.video_id)
        else:
            text = render_audacity(result.events)
        if not self.folder:
            self.stream.write(text)
            self.stream.flush()
            return
        target = self.path / f"{result.video_id}{PER_VIDEO[self.kind]}"
        write_bytes_atomic(target, text.encode("utf-8"))

    def _results_document(self) -> dict:
        from delcli import __version__

        return {
            "version": "VERSION 1.3",
            "results": {
                r.video_id: [
                    {
                        "label": e.label,
                        "score": round(e.score, 6),
                        "segment": [round(e.start, 3), round(e.end, 3)],
                    }
                    for e in sorted(r.events, key=lambda e: -e.score)
                ]
                for r in self.collected
            },
            "external_data": {
                "used": False,
                "details": f"del {__version__} predict, weights {self.weights}",
            },
        }


def _video_record(result: VideoEvents) -> dict:
    return {
        "video": result.video_id,
        "path": result.path,
        "duration": round(result.duration, 3),
        "events": [_event_record(e) for e in result.events],
        "seconds": {
            "features": round(result.extract_seconds, 3),
            "model": round(result.model_seconds, 3),
        },
    }


def _file_console(stream: TextIO):
    from rich.console import Console

    return Console(file=stream, width=200, soft_wrap=False, color_system=None)


def _table(result: VideoEvents, threshold: float | None):
    from rich.table import Table

    count = len(result.events)
    title = f"{result.video_id} · {result.duration:.1f} s · {count} event{'s' * (count != 1)}"
    if threshold is not None:
        title += f" scoring ≥ {threshold:g}"
    table = Table(title=title, title_justify="left")
    for name in ("start", "end", "duration"):
        table.add_column(name, justify="right")
    table.add_column("label")
    table.add_column("score", justify="right")
    for e in result.events:
        table.add_row(
            f"{e.start:.2f}", f"{e.end:.2f}", f"{e.end - e.start:.2f}", e.label, f"{e.score:.3f}"
        )
    return table
