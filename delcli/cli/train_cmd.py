"""`del train`: train a recipe on feature datasets into a run directory."""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime
from pathlib import Path

import typer

from delcli.cli.output import stdout_console
from delcli.cli.train_progress import TrainProgress, check_run_dir, count
from delcli.cli.train_videos import VIDEOS_HELP
from delcli.errors import ConfigError, DelError, Terminated

EXAMPLES = """
Examples:

  del train unav100 --features data/unav100/av_features

  del train my_recipe.yaml --set train.epochs=10 --set model.scl=false --out runs/no-scl

  del train unav100 --features feats --max-steps 20 --device cpu   (smoke test)

  del train --resume --out runs/unav100-20250101-120000             (continue a run)

  del train --videos clips/ --labels labels.csv --out runs/mine      (your own videos)

  torchrun --standalone --nproc_per_node=4 -m delcli.cli.app train unav100 --features feats
"""

# One paragraph (rich rewraps it to the terminal).
RUN_DIR_HELP = (
    "The run directory holds config.yaml, metrics.jsonl (one JSON line per log, epoch and "
    "evaluation), best.safetensors and last.safetensors (the evaluation weights: EMA when "
    "train.ema_decay > 0), val_predictions.json and checkpoint/ (what --resume needs). "
    "train.batch_size is the global batch: under torchrun each of N processes takes "
    "batch_size / N videos per step."
)


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        help="Train a model from a zoo recipe or a YAML config on pre-extracted features: "
        "AdamW + warmup/cosine, EMA, best-checkpoint selection by validation mAP, "
        "resumable; DDP when launched with torchrun.\n\n"
        + VIDEOS_HELP
        + "\n\n"
        + EXAMPLES
        + "\n"
        + RUN_DIR_HELP,
    )(train_command)


def train_command(
    recipe: str | None = typer.Argument(
        None,
        metavar="RECIPE|CONFIG.yaml",
        help="Zoo recipe name or a recipe YAML file. With --resume: optional (the run's "
        "config.yaml); when given it must match it.",
    ),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Dotted override, e.g. train.lr=5e-4 (repeat)."
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="The folder holding the files the recipe names ({video}_rgb.npy, "
        "audio/{video}.npy, …; overrides data.features). With --videos: where features are "
        "extracted to or reused from (default RUN/features).",
    ),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="Annotation file (overrides data.annotations)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory. Default: runs/<recipe>-<YYYYmmdd-HHMMSS>."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its checkpoint/."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu | cuda | cuda:N. Default: cuda when available."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Shortcut for --set train.epochs=N (after warmup)."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="Stop after N optimizer steps (smoke tests)."
    ),
    videos: Path | None = typer.Option(
        None, "--videos", help="Your own videos: a folder of video files (with --labels)."
    ),
    list_file: Path | None = typer.Option(
        None, "--list", help="Your own videos: a file of video paths, one a line (with --labels)."
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="Labels of --videos/--list: CSV video,start,end,label[,split], "
        "ActivityNet/ActionFormer JSON, or a folder of Audacity <video>.txt files.",
    ),
    extractors: list[str] = typer.Option(
        [],
        "--extractor",
        "-e",
        metavar="NAME",
        help="With --videos: feature extractor(s) (basic, vggish, i3d; default basic).",
    ),
    extractor_weights: list[str] = typer.Option(
        [],
        "--extractor-weights",
        metavar="NAME=SPEC",
        help="With --videos: extractor weights, as del extract --weights.",
    ),
    split_ratios: str = typer.Option(
        "0.8,0.1,0.1",
        "--split-ratios",
        help="With --videos, when the labels name no splits: train,validation,test shares.",
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="With --videos: the split's seed."),
    workers: int = typer.Option(
        1, "--workers", "-j", min=1, help="With --videos: processes extracting features."
    ),
) -> None:
    if videos is not None or list_file is not None or labels is not None:
        from delcli.cli.train_videos import train_own_videos

        if annotations is not None:
            raise ConfigError("--annotations does not apply with --videos/--labels")
        train_own_videos(
            videos,
            list_file,
            labels,
            recipe,
            overrides,
            features,
            out,
            resume,
            device,
            epochs,
            max_steps,
            extractors,
            extractor_weights,
            split_ratios,
            split_seed,
            workers,
        )
        return
    # a bad recipe or setting fails here, in a second, before torch is imported
    _resolve_recipe(recipe, _with_epochs(overrides, epochs), out, resume)
    from delcli.train import distributed

    context = distributed.setup(device)
    if not context.distributed:
        _train(context, recipe, overrides, features, annotations, out, resume, epochs, max_steps)
        return
    # torchrun: every process runs this; rank 0 alone prints and writes. Workers end with
    # os._exit after leaving the process group: gloo can abort in exit handlers otherwise.
    debug = "--debug" in sys.argv
    code = 0
    try:
        _train(context, recipe, overrides, features, annotations, out, resume, epochs, max_steps)
    except DelError as error:
        code = 2
        if context.is_main:
            _report(str(error), debug)
    except typer.Exit as done:  # already reported
        code = done.exit_code
    except BaseException as error:  # one line per failing process, then exit
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
        code = Terminated.exit_code if isinstance(error, Terminated) else code
        _report(f"rank {context.rank}: {type(error).__name__}: {error}", debug or code == 1)
    if code == 0:
        distributed.teardown(context)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report(message: str, show_traceback: bool) -> None:
    if show_traceback:
        traceback.print_exc()
    typer.echo(f"del: error: {message}", err=True)


def _train(context, recipe_arg, overrides, features, annotations, out, resume, epochs, max_steps):
    from delcli.recipe import with_data_paths
    from delcli.train import distributed
    from delcli.train.checkpoint import check_same_recipe
    from delcli.train.engine import fit

    recipe = _resolve_recipe(recipe_arg, _with_epochs(overrides, epochs), out, resume)
    recipe = with_data_paths(recipe, features, annotations, absolute=True)
    run_dir = problem = None
    if context.is_main:  # one decision (the default name has a timestamp), shared
        try:
            run_dir = _choose_run_dir(out, recipe.name, resume)
            check_run_dir(run_dir, resume)
            if resume:
                check_same_recipe(recipe, run_dir)
        except ConfigError as error:
            problem = str(error)
    run_dir, problem = distributed.broadcast((run_dir, problem), context)
    if problem:
        raise ConfigError(problem)

    from delcli.train.engine import TrainingDiverged

    progress = TrainProgress(run_dir) if context.is_main else None
    try:
        result = fit(
            recipe,
            run_dir,
            resume=resume,
            device=str(context.device),
            max_steps=max_steps,
            on_event=progress.handle if progress else None,
        )
    except TrainingDiverged as error:  # a failure of the work, not of the input: exit 1
        if progress:
            progress.stop()
        if context.is_main:
            typer.echo(f"del: error: training diverged: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        if progress:
            progress.stop()
    if context.is_main:
        _print_result(result)


def _with_epochs(overrides: list[str], epochs: int | None) -> list[str]:
    return list(overrides) + ([f"train.epochs={epochs}"] if epochs else [])


def _resolve_recipe(recipe_arg: str | None, overrides: list[str], out: Path | None, resume: bool):
    from delcli.recipe import load_recipe

    if recipe_arg is not None:
        return load_recipe(recipe_arg, overrides)
    if not resume:
        raise ConfigError("give a RECIPE (zoo name or YAML file), or --resume --out RUN_DIR")
    if out is None:
        raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
    config = out / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"--resume: {config} not found; is {out} a run directory?")
    return load_recipe(config, overrides)


def _choose_run_dir(out: Path | None, name: str, resume: bool) -> Path:
    if out is not None:
        return out
    if resume:
        raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def _print_result(result) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"run: {result.run_dir}", highlight=False, soft_wrap=True)
    if not result.validated or result.best_map is None:
        console.print(
            f"trained {count(result.epochs, 'epoch')} ({count(result.steps, 'step')}) in "
            f"{result.seconds:.0f} s; "
            "no validation split: best.safetensors = the last epoch",
            highlight=False,
        )
        return
    averaged = {f"{t:g}" for t in result.average_tious}
    table = Table(
        title=f"best epoch {result.best_epoch} · validation mAP (%)",
        caption=f"avg = mean over tIoU {', '.join(sorted(averaged, key=float))} · "
        f"{count(result.epochs, 'epoch')}, {count(result.steps, 'step')}, "
        f"{result.seconds:.0f} s",
        title_justify="left",
        caption_justify="left",
    )
    columns = list(result.best_maps)
    for name in ["tIoU", *columns, "avg"]:
        table.add_column(name, justify="left" if name == "tIoU" else "right")
    table.add_row(
        "mAP",
        *(f"{100 * result.best_maps[c]:.2f}" for c in columns),
        f"{100 * result.best_map:.2f}",
    )
    console.print(table)
