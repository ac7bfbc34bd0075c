"""`del predict`: videos in, events out (decode → features → DEL → NMS).

Events go to stdout (or `--output FILE`, written atomically) in `--format`, video
by video as they finish, so `del predict … --format jsonl | jq` streams; progress,
notes and failures go to stderr. A video that fails to decode is reported and
skipped; the exit code is then 1.

Default score threshold: formats people read (`table`, and `--plot`) show events
scoring at least `READABLE_THRESHOLD`; formats machines read (`json`, `jsonl`,
`csv`, `anet`) carry every detection after NMS (up to the recipe's
`inference.max_detections`), because mAP and downstream filters need the
low-scoring ones. `--threshold` sets both.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import gzip
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer

from delcli.cli.output import note, progress_bar, stderr_console, stdout_console
from delcli.errors import ConfigError, DataError, WeightsError

if TYPE_CHECKING:
    from delcli.data.annotations import Annotations
    from delcli.inference.video import Event, VideoEvents

DEMO = "demo"
READABLE_THRESHOLD = 0.2

EXAMPLES = """
Examples:

  del predict --demo --plot demo_timeline.png      (offline: the packaged demo)

  del predict video.mp4

  del predict clips/*.mp4 --format jsonl | jq -c 'select(.score > 0.5)'

  find videos -name '*.mp4' | del predict - --format csv --output events.csv

  del predict match.mp4 --weights runs/unav100 --plot match.png --annotations gt.json

  del predict --list videos.txt --format anet --output results.json --plot plots/
"""


class PredictFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    anet = "anet"


def register(app: typer.Typer) -> None:
    app.command(
        "predict",
        help="Find the events of videos: decode, extract the model's features, localize, "
        "post-process. Prints a table per video, or JSON, JSON lines, CSV or ActivityNet "
        "results; --plot draws each video's timeline.\n\n"
        f"Default threshold: {READABLE_THRESHOLD} for table and --plot; none for the "
        "machine formats.\n\n" + EXAMPLES,
    )(predict_command)


def predict_command(
    videos: list[str] | None = typer.Argument(
        None, help="Video files; '-' reads a list of paths (one per line) from stdin."
    ),
    list_file: Path | None = typer.Option(
        None, "--list", "-l", help="A file listing video paths, one per line ('-': stdin)."
    ),
    weights: str = typer.Option(
        DEMO,
        "--weights",
        "-w",
        help="A run directory (best.safetensors, else last), a .safetensors file, or a zoo "
        "name. Its recipe says how to extract features.",
    ),
    output_format: PredictFormat = typer.Option(
        PredictFormat.table,
        "--format",
        "-f",
        help="table (per video: start, end, duration, label, score); json (a list of videos "
        "with their events); jsonl (one line per event); csv (video,start,end,label,score); "
        "anet (ActivityNet results JSON, as del eval reads).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write there (atomically; .gz compresses), not stdout."
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        "-t",
        min=0.0,
        max=1.0,
        help=f"Keep events scoring at least this (default: {READABLE_THRESHOLD} for table "
        "and --plot, none otherwise).",
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", "-k", min=1, help="Keep each video's N best events."
    ),
    plot: str | None = typer.Option(
        None,
        "--plot",
        help="Draw the timeline: FILE.png (.svg, .pdf) for one video, or a folder (DIR/, "
        "made if needed) for one <video>.png each. Needs matplotlib (pip install "
        "del-av\\[plot]).",
    ),
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        "-g",
        help="Ground truth to draw in the plots (ActivityNet/UnAV JSON); videos match by "
        "file name without extension.",
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda (default: cuda when available)."
    ),
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Run the packaged demo: its synthetic video (when no video is given), its ground "
        "truth in the plot, and the demo model. Offline.",
    ),
) -> int:
    from delcli.device import resolve_device
    from delcli.inference.video import class_names, predict_video

    if demo:
        videos, annotations = demo_inputs(videos, list_file, annotations)
    paths = gather_videos(videos or [], list_file)
    plot_target = check_plot(plot, annotations, len(paths))
    if output is not None and not output.parent.is_dir():
        raise ConfigError(f"--output {output}: folder {output.parent} does not exist")
    ground_truth = None
    if annotations is not None:
        from delcli.data.formats import read_annotations

        ground_truth = read_annotations(annotations)

    device = resolve_device(device)
    model, recipe, extractors = load_predictor(weights, str(device))
    readable = threshold if threshold is not None else READABLE_THRESHOLD
    shown = readable if output_format is PredictFormat.table else threshold
    draw = None
    if plot_target is not None:
        draw = plotter(plot_target, ground_truth, readable, class_names(recipe))
    try:
        failures = run_videos(
            paths,
            lambda path: predict_video(path, model, recipe, extractors, top_k=top_k, device=device),
            EventWriter(output_format, output, shown, weights),
            draw,
        )
    except BrokenPipeError:  # `del predict … | head`: the reader left; stop, not an error
        with contextlib.suppress(OSError, ValueError):  # pending data goes there too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1 if failures else 0


# -- inputs ----------------------------------------------------------------------------------


def demo_inputs(
    videos: list[str] | None, list_file: Path | None, annotations: Path | None
) -> tuple[list[str] | None, Path | None]:
    """The packaged demo video (unless videos are given) and its ground truth."""
    from delcli.resources import resource_path

    video = resource_path("demo/demo.mp4")
    if not video.is_file():
        raise ConfigError("the demo is not shipped with this installation (no demo/demo.mp4)")
    if not videos and list_file is None:
        videos = [str(video)]
        if annotations is None:
            annotations = resource_path("demo/demo_annotations.json")
    return videos, annotations


def gather_videos(arguments: list[str], list_file: Path | None) -> list[Path]:
    """The videos to process, in order, once each; `ConfigError` for a path that is not a
    file or for two files with the same id (name without extension)."""
    listed: list[str] = []
    stdin_read = False

    def read_list(source: str) -> list[str]:
        nonlocal stdin_read
        if source == "-":
            if stdin_read:
                return []
            stdin_read = True
            lines = sys.stdin.read().splitlines()
        else:
            try:
                lines = Path(source).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(f"--list {source}: cannot read ({error})") from None
        return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]

    if list_file is not None:
        listed += read_list(str(list_file))
    for argument in arguments:
        listed += read_list("-") if argument == "-" else [argument]
    if not listed:
        raise ConfigError(
            "no videos: give video files, --list FILE, or '-' to read paths from stdin"
        )

    paths: list[Path] = []
    ids: dict[str, Path] = {}
    seen: set[Path] = set()
    for text in listed:
        path = Path(text).expanduser()
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory; give video files (e.g. {path}/*.mp4)")
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if path.stem in ids:
            raise ConfigError(
                f"{ids[path.stem]} and {path} have the same video id '{path.stem}'; "
                "events are keyed by file name: rename one"
            )
        ids[path.stem] = path
        paths.append(path)
    return paths


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


def load_predictor(spec: str, device: str):
    """Model, recipe and the recipe's feature extractors for `--weights spec`."""
    from delcli.features.pipeline import recipe_extractors
    from delcli.weights import load_model, resolve_weights

    if spec == DEMO and not Path(spec).exists():
        try:
            resolve_weights(spec)
        except WeightsError as error:
            raise WeightsError(
                f"the demo model is not shipped with this installation of del yet ({error}); "
                "give --weights RUN_DIR|FILE|ZOO_NAME"
            ) from None
    model, recipe = load_model(spec, device=device)
    return model, recipe, recipe_extractors(recipe, device=device)


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


# -- the work --------------------------------------------------------------------------------


def run_videos(
    paths: list[Path],
    predict: Callable[[Path], VideoEvents],
    writer: EventWriter,
    draw: Callable[[VideoEvents], None] | None = None,
) -> int:
    """Predict, write (and `draw`) every video; returns how many failed, each reported."""
    from rich.markup import escape

    console = stderr_console()
    failures = 0
    done_seconds = extract_seconds = model_seconds = 0.0
    started = time.perf_counter()
    with writer, progress_bar(status=True, console=console) as progress:
        task = progress.add_task("predicting", total=len(paths), status="")
        for path in paths:
            progress.update(task, status=path.name)
            try:
                result = predict(path)
            except (DataError, OSError) as error:
                failures += 1
                message = str(error) if str(path) in str(error) else f"{path}: {error}"
                console.print(f"[red]failed[/red] {escape(message)}", highlight=False)
            else:
                writer.write(result)  # an unwritable output stops the run
                done_seconds += result.duration
                extract_seconds += result.extract_seconds
                model_seconds += result.model_seconds
                if draw is not None:
                    try:
                        draw(result)
                    except OSError as error:
                        failures += 1
                        console.print(f"[red]plot failed[/red] {escape(str(error))}")
            progress.advance(task)
    elapsed = time.perf_counter() - started
    done = len(paths) - failures
    summary = (
        f"predicted {done} video{'s' * (done != 1)} ({done_seconds:.1f} s) in {elapsed:.1f} s: "
        f"features {extract_seconds:.1f} s, model {model_seconds:.1f} s"
    )
    if failures:
        summary += f"; {failures} failed (listed above)"
    note(summary)
    if writer.path is not None:
        note(f"wrote {writer.path}")
    return failures


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


def above(result: VideoEvents, threshold: float | None) -> VideoEvents:
    if threshold is None:
        return result
    return replace(result, events=[e for e in result.events if e.score >= threshold])


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
    name next to it and is renamed into place only when every video is done.
    """

    def __init__(
        self, kind: PredictFormat, path: Path | None, threshold: float | None, weights: str
    ) -> None:
        self.kind, self.path, self.threshold, self.weights = kind, path, threshold, weights
        self.stream: TextIO = sys.stdout
        self.temporary: str | None = None
        self.files: list = []  # what to close, innermost first
        self.collected: list[VideoEvents] = []

    def __enter__(self) -> EventWriter:
        if self.path is not None:
            handle, self.temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            self.files = [os.fdopen(handle, "wb")]
            if self.path.suffix == ".gz":  # GzipFile leaves the file it wraps open
                self.files.append(gzip.GzipFile(fileobj=self.files[0], mode="wb", mtime=0))
            self.stream = io.TextIOWrapper(self.files[-1], encoding="utf-8", newline="")
        if self.kind is PredictFormat.table:
            self.console = stdout_console() if self.path is None else _file_console(self.stream)
        if self.kind is PredictFormat.csv:
            self.csv = csv.writer(self.stream, lineterminator="\n")
            self.csv.writerow(["video", "start", "end", "label", "score"])
        return self

    def write(self, result: VideoEvents) -> None:
        result = above(result, self.threshold)
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
        if self.temporary is None:
            return
        try:
            self.stream.close()
            for file in reversed(self.files):
                file.close()
            if error is None:
                os.chmod(self.temporary, 0o644)
                os.replace(self.temporary, self.path)
        finally:
            Path(self.temporary).unlink(missing_ok=True)

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
