"""`del data`: datasets. `del data synth` writes the synthetic audio-visual benchmark (features);
`del data synth-video` writes synthetic mp4 videos with their ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from delcli.cli.output import (
    TableJson,
    note,
    progress_bar,
    stderr_console,
    stdout_console,
    write_json,
)
from delcli.errors import ConfigError

data_app = typer.Typer(
    name="data",
    help="Datasets: make the synthetic audio-visual benchmark (features) or synthetic videos.",
    no_args_is_help=True,
    add_completion=False,
)

SYNTH_HELP = """Write a synthetic audio-visual feature dataset in the UnAV-100 layout (annotations.json + features/<video>_{rgb,flow,vggish}.npy on a 25 fps grid, stride 8, window 24) and print its statistics, including how well a per-step linear classifier does on audio (A), visual (V) and both (AV).

Deterministic for a seed. Sizes: tiny (32 short videos, 8 classes; for tests), default (400 videos, 16 classes; trains on a CPU in minutes), large (3000 videos, 32 classes; benchmarks). A rerun with the same settings resumes an interrupted run or does nothing.

Examples:

  del data synth data/synth

  del data synth /tmp/tiny --size tiny --seed 3 --format json

  del data synth data/unav-like --like unav100_annotations.json.gz --max-videos 500

  del data synth data/synth-unav --geometry unav100
"""  # noqa: E501 - one line per paragraph: the help formatter wraps them


SYNTH_VIDEO_HELP = """Write synthetic mp4 videos (H.264 + AAC) with a known timeline of audio, visual and audio-visual events, and their ground truth: OUT/videos/synv_NNNNN.mp4 and OUT/annotations.json (the ActivityNet / UnAV form; subsets train, validation, test).

For the end-to-end path (del extract, del predict) and the demo model. 8 classes, each a visual pattern (a red square, a moving blue disk, a flashing green box, yellow stripes, a magenta checkerboard) and/or a sound (a 440 Hz tone, chirps, clicks, noise bursts, an alarm, a hum); events of 1-6 s, overlapping at times. Deterministic for a seed. A rerun with the same settings resumes an interrupted run or does nothing.

--edge-cases also writes OUT/edge_cases/ for tests: no audio, audio only, variable frame rate, odd frame size, very short, rotated, truncated (two ways) and a broken audio stream, described in edge_cases.json.

Examples:

  del data synth-video data/videos --videos 200

  del data synth-video /tmp/v --videos 3 --duration-range 4:6 --size 64x64 --edge-cases
"""  # noqa: E501 - one line per paragraph: the help formatter wraps them


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("synth", help=SYNTH_HELP)
def synth_command(
    out: Path = typer.Argument(..., help="Output folder (created; must be new, empty or ours)."),
    size: str = typer.Option("default", "--size", help="tiny | default | large."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same files."),
    like: Path | None = typer.Option(
        None,
        "--like",
        help="Take durations, events, splits and classes from this annotation file "
        "(any format 'del eval' reads); only the features are synthetic.",
    ),
    max_videos: int | None = typer.Option(
        None, "--max-videos", help="Only the first N videos (of the size, or of --like)."
    ),
    classes: int | None = typer.Option(
        None, "--classes", help="Number of classes (default: the size's)."
    ),
    dims: str = typer.Option(
        "64,64,64", "--dims", help="Feature sizes of the rgb, flow and vggish streams."
    ),
    geometry: str = typer.Option(
        "toy",
        "--geometry",
        help="toy: small centred streams of --dims channels; unav100: UnAV-100's released "
        "feature geometry (rgb 1024 + flow 1024 with a large common mean, per-video offsets "
        "and correlated noise; VGGish-like 0-255 audio 128), made from --dims latent streams.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a dataset made with other settings (or regenerate)."
    ),
    output_format: TableJson = typer.Option(
        TableJson.table, "--format", "-f", help="table for people, json for machines."
    ),
) -> None:
    from dataclasses import asdict

    from delcli.synth.config import synth_config
    from delcli.synth.features import write_synth_dataset

    config = synth_config(
        size=size,
        seed=seed,
        classes=classes,
        like=like,
        max_videos=max_videos,
        dims=parse_dims(dims),
        geometry=geometry,
    )
    if (config.size == "tiny" and config.like is None) or not stderr_console().is_terminal:
        result = write_synth_dataset(out, config, force=force)
    else:
        with SynthProgress() as progress:
            result = write_synth_dataset(out, config, force=force, progress=progress.update)
    if result.skipped:
        note(f"{out} is already complete with these settings; nothing written (--force redoes it)")
    if output_format is TableJson.json:
        write_json(
            {
                "folder": str(out),
                "skipped": result.skipped,
                "written": result.written,
                "settings": asdict(config),
                "classes": [asdict(c) for c in result.classes],
                "statistics": asdict(result.statistics),
            }
        )
    else:
        console = stdout_console()
        console.print(summary_table(result))
        if result.statistics.probe:
            console.print(probe_table(result.statistics))


@data_app.command("synth-video", help=SYNTH_VIDEO_HELP)
def synth_video_command(
    out: Path = typer.Argument(..., help="Output folder (created; must be new, empty or ours)."),
    videos: int = typer.Option(100, "--videos", help="Number of videos."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same files."),
    duration_range: str = typer.Option(
        "8:20", "--duration-range", help="MIN:MAX seconds of each video."
    ),
    size: str = typer.Option("160x120", "--size", help="Frame size WIDTHxHEIGHT."),
    fps: float = typer.Option(25.0, "--fps", help="Frame rate."),
    edge_cases: bool = typer.Option(
        False, "--edge-cases", help="Also write the edge-case files into OUT/edge_cases/."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace videos made with other settings (or regenerate)."
    ),
    output_format: TableJson = typer.Option(
        TableJson.table, "--format", "-f", help="table for people, json for machines."
    ),
) -> None:
    from delcli.synth.video import SynthVideoConfig, write_synth_videos

    low, high = parse_pair(duration_range, ":", "--duration-range", "8:20", float)
    width, height = parse_pair(size, "x", "--size", "160x120", int)
    config = SynthVideoConfig(
        videos=videos,
        seed=seed,
        min_duration=low,
        max_duration=high,
        width=width,
        height=height,
        fps=fps,
    )
    if stderr_console().is_terminal:
        with progress_bar() as bar:
            task = bar.add_task("writing videos", total=videos)
            result = write_synth_videos(
                out,
                config,
                force=force,
                edge_cases=edge_cases,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    else:
        result = write_synth_videos(out, config, force=force, edge_cases=edge_cases)
    if result.skipped:
        note(f"{out} is already complete with these settings; nothing written (--force redoes it)")
    summary = synth_video_summary(result)
    if output_format is TableJson.json:
        write_json(summary)
    else:
        stdout_console().print(synth_video_table(summary))


def parse_pair(text: str, separator: str, option: str, example: str, kind: type) -> tuple:
    parts = text.lower().split(separator)
    try:
        values = tuple(kind(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 2:
        raise ConfigError(f"{option} '{text}': expected two numbers like {example}")
    return values


def synth_video_summary(result) -> dict:
    from collections import Counter
    from dataclasses import asdict

    from delcli.synth.video import CLASSES

    events = Counter(e.label for plan in result.plans for e in plan.events)
    minutes = result.video_seconds / 60
    return {
        "folder": str(result.folder),
        "skipped": result.skipped,
        "videos": dict(Counter(plan.subset for plan in result.plans)),
        "video_minutes": round(sum(plan.duration for plan in result.plans) / 60, 2),
        "written": result.written,
        "seconds": round(result.seconds, 2),
        "seconds_per_video_minute": round(result.seconds / minutes, 2) if minutes else None,
        "classes": [
            dict(asdict(c), label_id=i, evidence=c.evidence, events=events.get(i, 0))
            for i, c in enumerate(CLASSES)
        ],
        "edge_cases": result.edge_cases,
    }


def synth_video_table(summary: dict):
    from rich.table import Table

    table = Table(title=f"Synthetic videos · {summary['folder']}", title_justify="left")
    table.add_column("class")
    table.add_column("evidence")
    table.add_column("events", justify="right")
    for c in summary["classes"]:
        table.add_row(c["name"], c["evidence"], str(c["events"]))
    splits = " / ".join(
        f"{summary['videos'].get(s, 0)} {s}" for s in ("train", "validation", "test")
    )
    speed = summary["seconds_per_video_minute"]
    table.caption = (
        f"{splits} videos, {summary['video_minutes']:.1f} min; wrote {summary['written']}"
        + (f" in {summary['seconds']:.1f} s ({speed:.1f} s per video-minute)" if speed else "")
        + (f"; edge cases: {len(summary['edge_cases'])} files" if summary["edge_cases"] else "")
    )
    table.caption_justify = "left"
    return table


def parse_dims(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(f"--dims '{text}': three positive sizes RGB,FLOW,VGGISH, e.g. 64,64,64")
    return values


class SynthProgress:
    """A rich progress bar on stderr, started by the first update (an early error prints
    nothing): videos written, then the linear probes."""

    def __init__(self) -> None:
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> SynthProgress:
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=stderr_console(),
                transient=True,
            )
            self._progress.start()
        if stage not in self._tasks:
            label = "writing videos" if stage == "videos" else "fitting linear probes"
            self._tasks[stage] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[stage], completed=done)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary_table(result):
    from rich.table import Table

    stats = result.statistics
    splits = " / ".join(f"{stats.videos.get(s, 0)} {s}" for s in ("train", "validation", "test"))
    table = Table(title=f"Synthetic dataset · {result.folder}", title_justify="left")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    rows = [
        ("videos", splits),
        ("events", f"{stats.events:,}"),
        ("classes", f"{stats.classes}"),
        ("evidence types", ", ".join(f"{k} {v}" for k, v in stats.evidence.items()) or "—"),
        ("events per video", f"{stats.mean_events_per_video:.2f}"),
        ("steps per video (mean)", f"{stats.mean_steps:.1f}"),
        ("overlap share (of event steps)", f"{stats.overlap_share:.1%}"),
        ("background share (of steps)", f"{stats.background_share:.1%}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def probe_table(stats):
    from rich.table import Table

    kinds = list(next(iter(stats.probe.values())).by_evidence)
    table = Table(
        title="Per-step linear classifier · test split · accuracy (%)",
        caption="steps: all test steps (background included); events: mean recall over "
        "classes on event steps; the last columns: that mean per evidence type",
        title_justify="left",
        caption_justify="left",
    )
    for name in ("input", "steps", "events", *kinds):
        table.add_column(name, justify="left" if name == "input" else "right")
    for name, result in stats.probe.items():
        by_kind = [
            f"{result.by_evidence[k] * 100:.1f}" if k in result.by_evidence else "—" for k in kinds
        ]
        table.add_row(
            name, f"{result.accuracy * 100:.1f}", f"{result.event_accuracy * 100:.1f}", *by_kind
        )
    return table
