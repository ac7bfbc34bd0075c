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
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from delcli.cli.backend import BACKEND_HELP
from delcli.cli.output import note, progress_bar, stderr_console
from delcli.cli.predict_output import (
    PER_VIDEO,
    EventWriter,
    PredictFormat,
    check_plot,
    per_video_folder,
    plotter,
)
from delcli.errors import ConfigError, DataError, WeightsError
from delcli.export.backend import Backend

if TYPE_CHECKING:
    from delcli.inference.video import VideoEvents

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

  del predict match.mp4 --weights runs/mine --format srt --output match.srt

  del predict clips/*.mp4 --format audacity --output labels/   (one <video>.txt each)

  del predict video.mp4 --backend onnxruntime --weights demo.onnx   (see del export)
"""


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
        "name; with --backend onnxruntime an .onnx file. Its recipe says how to extract "
        "features.",
    ),
    backend: Backend = typer.Option(Backend.torch, "--backend", help=BACKEND_HELP),
    output_format: PredictFormat = typer.Option(
        PredictFormat.table,
        "--format",
        "-f",
        help="table (per video: start, end, duration, label, score); json (a list of videos "
        "with their events); jsonl (one line per event); csv (video,start,end,label,score); "
        "anet (ActivityNet results JSON, as del eval reads); srt or vtt (subtitles: "
        "overlapping events merged in one cue, label and score); audacity (a label track). "
        "srt, vtt and audacity: one file per video (--output DIR for several).",
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
    from delcli.extract import gather_videos
    from delcli.inference.video import predict_video
    from delcli.recipe import class_names

    if demo:
        videos, annotations = demo_inputs(videos, list_file, annotations, plot is not None)
    paths = gather_videos(videos or [], list_file)
    plot_target = check_plot(plot, annotations, len(paths))
    per_video_folder(output_format, output, len(paths))
    if output is not None and not output.parent.is_dir():
        raise ConfigError(f"--output {output}: folder {output.parent} does not exist")
    ground_truth = None
    if annotations is not None:
        from delcli.data.formats import read_annotations

        ground_truth = read_annotations(annotations)

    if backend is Backend.onnxruntime and device is None:
        device = "cpu"
    device = resolve_device(device)
    model, recipe, extractors = load_predictor(weights, str(device), backend)
    readable = threshold if threshold is not None else READABLE_THRESHOLD
    people = output_format is PredictFormat.table or output_format in PER_VIDEO
    shown = readable if people else threshold
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
    videos: list[str] | None, list_file: Path | None, annotations: Path | None, plot: bool
) -> tuple[list[str] | None, Path | None]:
    """The packaged demo video (unless videos are given) and, for `--plot`, its ground truth."""
    from delcli.resources import resource_path

    video = resource_path("demo/demo.mp4")
    if not video.is_file():
        raise ConfigError("the demo is not shipped with this installation (no demo/demo.mp4)")
    if not videos and list_file is None:
        videos = [str(video)]
        if annotations is None and plot:
            annotations = resource_path("demo/demo_annotations.json")
    return videos, annotations


def load_predictor(spec: str, device: str, backend: Backend = Backend.torch):
    """Model, recipe and the recipe's feature extractors for `--weights spec`."""
    from delcli.export.backend import load_network
    from delcli.features.pipeline import recipe_extractors
    from delcli.weights import resolve_weights

    if spec == DEMO and backend is Backend.onnxruntime:
        raise ConfigError(
            "--backend onnxruntime runs an exported model: del export --model demo -o "
            "demo.onnx, then give --weights demo.onnx"
        )
    if spec == DEMO and not Path(spec).exists():
        try:
            resolve_weights(spec)
        except WeightsError as error:
            raise WeightsError(
                f"the demo model is not shipped with this installation of del yet ({error}); "
                "give --weights RUN_DIR|FILE|ZOO_NAME"
            ) from None
    model, recipe, _ = load_network(spec, backend, device)
    return model, recipe, recipe_extractors(recipe, device=device)


# -- the work --------------------------------------------------------------------------------


def run_videos(
    paths: list[Path],
    predict: Callable[[Path], VideoEvents],
    writer: EventWriter,
    draw: Callable[[VideoEvents], None] | None = None,
) -> int:
    """Predict, write (and `draw`) every video; returns how many failed, each reported."""
    from rich.markup import escape

    from delcli.features.pipeline import missing_stream_note

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
                if result.missing_streams:
                    line = missing_stream_note(str(path), result.missing_streams)
                    console.print(f"[dim]note:[/dim] {escape(line)}", highlight=False)
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
    if writer.target is not None:
        note(f"wrote {writer.path}")
    return failures
