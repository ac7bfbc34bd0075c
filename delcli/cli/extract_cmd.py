"""`del extract`: videos in, a feature folder out (the layout `del train` / `del eval` read)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import typer

from delcli.cli.output import TableJson, progress_bar, stderr_console, stdout_console, write_json
from delcli.errors import ConfigError

HELP = """Decode videos and write their feature arrays into OUT, in the layout that del train and del eval read, with OUT/features.json describing the grid, the extractors and every video's length.

Which features: a recipe's (--recipe: its extractors and grid; --extractor then picks some of them), or extractors by name (--extractor, repeatable) on a --grid (unav100 = 25 fps, stride 8, window 24; thumos14; epic100; basic = 12.5:4:8; or FPS:STRIDE:WINDOW). basic is weight-free and fast; i3d and vggish need converted weights (--weights); dinov2 and mert read the models their authors publish on the Hugging Face Hub (--weights dinov2=facebook/dinov2-base, mert=m-a-p/MERT-v1-95M; downloaded when online; pip install 'del-av[hub-features]').

Layouts (--naming): unav writes OUT/VIDEO_OUTPUT.npy (UnAV-100: VIDEO_rgb.npy, VIDEO_flow.npy, VIDEO_vggish.npy); actionformer writes OUT/OUTPUT/VIDEO.npy; recipe (the default with --recipe) writes the files the recipe names, so OUT is what del train RECIPE --features and del eval --features take. A video's id is its file name without the extension.

Resumable: finished videos are skipped (--force redoes them) and every file is written atomically. Shardable: --shard i/n takes every n-th video of the sorted ids; under torchrun each process takes its rank's share. A video that cannot be decoded is reported on stderr and the others are done; the exit code is then 1.

Examples:

  del extract videos/*.mp4 --out feats --extractor basic --grid basic

  del extract --recipe unav100 --out data/unav100/av_features --list videos.txt --workers 4 --weights i3d=i3d_{stream}.safetensors --weights vggish=vggish.safetensors   (writes data/unav100/av_features/VIDEO_rgb.npy …; then: del train unav100 --features data/unav100/av_features)

  del extract --recipe thumos14 --extractor vggish --grid 30:4:16 --out thumos/features --weights vggish=vggish.safetensors --list thumos_videos.txt

  find videos -name '*.mp4' | del extract - --out feats --extractor basic --grid basic --format json

  torchrun --nproc_per_node=4 -m delcli.cli.app extract --list videos.txt --out feats --recipe unav100
"""  # noqa: E501 - one line per paragraph: the help formatter wraps them


class Naming(str, enum.Enum):
    unav = "unav"
    actionformer = "actionformer"
    recipe = "recipe"


def register(app: typer.Typer) -> None:
    app.command("extract", help=HELP)(extract_command)


def extract_command(
    videos: list[str] = typer.Argument(
        None, metavar="VIDEO…", help="Video files; '-' reads paths from stdin, one a line."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Feature folder (created)."),
    list_file: Path | None = typer.Option(
        None, "--list", help="A file of video paths, one a line ('#' comments; '-' is stdin)."
    ),
    recipe: str | None = typer.Option(
        None, "--recipe", "-r", help="Zoo recipe name or YAML file: its extractors and grid."
    ),
    extractor_names: list[str] = typer.Option(
        [], "--extractor", "-e", metavar="NAME", help="basic, vggish or i3d (repeat)."
    ),
    grid: str | None = typer.Option(
        None, "--grid", help="unav100 | thumos14 | epic100 | basic | FPS:STRIDE:WINDOW."
    ),
    weights: list[str] = typer.Option(
        [],
        "--weights",
        metavar="NAME=SPEC",
        help="Extractor weights: a safetensors path or hf://ORG/NAME/FILE[@REV]; dinov2 and "
        "mert take a model folder, hf://ORG/NAME[@REV] or a repo id ORG/NAME; "
        "i3d takes i3d=FILE_{stream}.safetensors or i3d.rgb=… i3d.flow=… (repeat).",
    ),
    options: list[str] = typer.Option(
        [], "--option", metavar="NAME.KEY=VALUE", help="Extractor option, e.g. i3d.batch_size=4."
    ),
    naming: Naming | None = typer.Option(
        None,
        "--naming",
        help="unav | actionformer | recipe (default: recipe with --recipe, else unav).",
    ),
    workers: int = typer.Option(1, "--workers", "-j", help="Processes decoding in parallel."),
    shard: str | None = typer.Option(
        None, "--shard", metavar="i/n", help="Only every n-th video, from the i-th (0-based)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu | cuda | cuda:N (default: cuda when available)."
    ),
    force: bool = typer.Option(False, "--force", help="Extract finished videos again."),
    output_format: TableJson = typer.Option(
        TableJson.table, "--format", "-f", help="table for people, json for machines."
    ),
) -> None:
    from delcli.extract import extract_folder, gather_videos
    from delcli.features.pipeline import named_extractors, recipe_extractors

    paths = gather_videos(videos or [], list_file)
    chosen_grid = parse_grid(grid) if grid else None
    weight_specs = parse_weights(weights)
    extractor_options = parse_options(options)
    shard_range = parse_shard(shard) if shard else None
    device_name = pick_device(device)
    loaded = None
    if recipe is not None:
        from delcli.recipe import load_recipe

        loaded = load_recipe(recipe)
        extractors = recipe_extractors(
            loaded,
            device_name,
            weight_specs,
            grid=chosen_grid,
            options=extractor_options,
            only=extractor_names or None,
        )
    else:
        extractors = named_extractors(
            extractor_names, chosen_grid, device_name, weight_specs, extractor_options
        )
    layout = naming.value if naming else ("recipe" if loaded else "unav")

    console = stderr_console()
    with ExtractProgress(console) as progress:
        report = extract_folder(
            paths,
            out,
            extractors,
            naming=layout,
            workers=workers,
            shard=shard_range,
            skip_existing=not force,
            on_event=progress.handle,
            recipe=loaded,
        )
    if report.failed:
        console.print(
            f"{len(report.failed)} of {len(report.failed) + len(report.done)} videos failed "
            "(listed above); the others are written",
            highlight=False,
        )
    if output_format is TableJson.json:
        write_json(report.summary())
    else:
        stdout_console().print(summary_table(report.summary()))
    if report.failed:
        raise typer.Exit(1)


# -- parsing ----------------------------------------------------------------------------------


def parse_grid(text: str):
    from delcli.features import GRID_PRESETS, FeatureGrid

    if text in GRID_PRESETS:
        return GRID_PRESETS[text]
    try:
        fps, stride, window = (float(part) for part in text.split(":"))
    except ValueError:
        presets = ", ".join(GRID_PRESETS)
        raise ConfigError(f"--grid '{text}': a preset ({presets}) or FPS:STRIDE:WINDOW") from None
    return FeatureGrid(fps, stride, window)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard '{text}': expected i/n, e.g. 0/4") from None
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text}: need 0 <= i < n (e.g. 0/2 and 1/2)")
    return index, count


def parse_weights(items: list[str]) -> dict[str, Any]:
    """`NAME=SPEC` → {NAME: SPEC}; `NAME.PART=SPEC` → {NAME: {PART: SPEC}} (i3d's streams)."""
    weights: dict[str, Any] = {}
    for item in items:
        key, sep, spec = item.partition("=")
        if not sep or not key or not spec:
            raise ConfigError(
                f"--weights '{item}': expected NAME=SPEC, e.g. vggish=vggish.safetensors"
            )
        name, dot, part = key.partition(".")
        if dot:
            if isinstance(weights.get(name), str):
                raise ConfigError(f"--weights {key}: {name} already has one weights spec")
            weights.setdefault(name, {})[part] = spec
        elif name in weights:
            raise ConfigError(f"--weights {name}: given twice")
        else:
            weights[name] = spec
    return weights


def parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """`NAME.KEY=VALUE` → {NAME: {KEY: VALUE}}, VALUE read as YAML (4, true, [rgb])."""
    import yaml

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        name, dot, option = key.partition(".")
        if not sep or not dot or not name or not option:
            raise ConfigError(f"--option '{item}': expected NAME.KEY=VALUE, e.g. i3d.batch_size=4")
        try:
            value = yaml.safe_load(text) if text else ""
        except (yaml.YAMLError, RecursionError):
            value = text
        options.setdefault(name, {})[option] = value
    return options


def pick_device(device: str | None) -> str:
    import os

    from delcli.device import resolve_device

    return str(resolve_device(device, int(os.environ.get("LOCAL_RANK", "0"))))


# -- output -----------------------------------------------------------------------------------


class ExtractProgress:
    """A progress bar on stderr (on a terminal) and one line per failed video."""

    def __init__(self, console) -> None:
        self.console = console
        self.bar = progress_bar(status=True, transient=True, console=console)
        self.task = None
        self.failed = 0

    def __enter__(self) -> ExtractProgress:
        return self

    def handle(self, event) -> None:
        if event.kind == "planned":
            if self.console.is_terminal:
                self.bar.start()
                self.task = self.bar.add_task(
                    "extracting", total=event.total, completed=event.skipped, status=""
                )
            return
        result = event.result
        if result.status == "failed":
            self.failed += 1
            self.console.print(
                f"failed: {result.video}: {result.reason}", highlight=False, soft_wrap=True
            )
        elif result.missing:
            from delcli.features.pipeline import missing_stream_note

            note_line = missing_stream_note(result.video, result.missing)
            self.console.print(f"[dim]note:[/dim] {note_line}", highlight=False)
        if self.task is not None:
            status = result.video + (f" · {self.failed} failed" if self.failed else "")
            self.bar.update(self.task, advance=1, status=status)

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.bar.stop()


def summary_table(summary: dict):
    from rich.table import Table

    videos = summary["videos"]
    index, count = summary["shard"]
    table = Table(title=f"del extract · {summary['out']}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    scope = f"of {videos['this_shard']}" + (
        f" in shard {index}/{count} ({videos['given']} in all)" if count > 1 else ""
    )
    counts = f"{videos['done']} done · {videos['skipped']} skipped · {videos['failed']} failed"
    table.add_row("videos", f"{counts} ({scope})")
    for output in summary["outputs"]:
        table.add_row("output", f"{output['name']} ({output['modality']}, {output['dim']})")
    table.add_row("files", ", ".join(summary["files"]))
    table.add_row(
        "time",
        f"{summary['seconds']:.1f} s · {summary['video_seconds']:.1f} video-s · "
        f"{summary['video_seconds_per_second']:.1f} video-s per s",
    )
    table.add_row("metadata", summary["metadata"])
    return table
