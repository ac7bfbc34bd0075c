"""`del data`: datasets. `del data synth` writes the synthetic audio-visual benchmark."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from delcli.cli.output import note, stderr_console, stdout_console, write_json
from delcli.errors import ConfigError

data_app = typer.Typer(
    name="data",
    help="Datasets: make the synthetic audio-visual benchmark.",
    no_args_is_help=True,
    add_completion=False,
)

SYNTH_HELP = """Write a synthetic audio-visual feature dataset in the UnAV-100 layout (annotations.json + features/<video>_{rgb,flow,vggish}.npy on a 25 fps grid, stride 8, window 24) and print its statistics, including how well a per-step linear classifier does on audio (A), visual (V) and both (AV).

Deterministic for a seed. Sizes: tiny (32 short videos, 8 classes; for tests), default (400 videos, 16 classes; trains on a CPU in minutes), large (3000 videos, 32 classes; benchmarks). A rerun with the same settings resumes an interrupted run or does nothing.

Examples:

  del data synth data/synth

  del data synth /tmp/tiny --size tiny --seed 3 --format json

  del data synth data/unav-like --like unav100_annotations.json.gz --max-videos 500
"""  # noqa: E501 - one line per paragraph: the help formatter wraps them


class StatsFormat(str, enum.Enum):
    table = "table"
    json = "json"


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
    force: bool = typer.Option(
        False, "--force", help="Replace a dataset made with other settings (or regenerate)."
    ),
    output_format: StatsFormat = typer.Option(
        StatsFormat.table, "--format", "-f", help="table for people, json for machines."
    ),
) -> None:
    from dataclasses import asdict

    from delcli.data.synth import synth_config, write_synth_dataset

    config = synth_config(
        size=size,
        seed=seed,
        classes=classes,
        like=like,
        max_videos=max_videos,
        dims=parse_dims(dims),
    )
    if (config.size == "tiny" and config.like is None) or not stderr_console().is_terminal:
        result = write_synth_dataset(out, config, force=force)
    else:
        with SynthProgress() as progress:
            result = write_synth_dataset(out, config, force=force, progress=progress.update)
    if result.skipped:
        note(f"{out} is already complete with these settings; nothing written (--force redoes it)")
    if output_format is StatsFormat.json:
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
