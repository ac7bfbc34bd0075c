"""`del train --videos DIR --labels FILE`: labelled videos to a trained model in one command.

The library does the work (`delcli.train.from_videos`); this prints: a line per
label problem, extraction progress, training progress, and at the end the
test-split mAP table exactly as `del eval --weights RUN` prints it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from delcli.cli.output import stderr_console
from delcli.cli.train_progress import TrainProgress, check_run_dir, count
from delcli.errors import ConfigError

VIDEOS_HELP = (
    "Train on your own videos: --videos DIR (or --list FILE) with --labels FILE — a CSV "
    "video,start,end,label[,split], an ActivityNet/ActionFormer JSON, or a folder of Audacity "
    "label files (<video>.txt). Splits come from the labels, else --split-ratios; features are "
    "extracted into RUN/features; the recipe is generated from the data (--recipe and --set "
    "override it) and saved as RUN/config.yaml; the test-split mAP table ends the run."
)


def train_own_videos(
    videos: Path | None,
    list_file: Path | None,
    labels: Path | None,
    recipe: str | None,
    overrides: list[str],
    features: Path | None,
    out: Path | None,
    resume: bool,
    device: str | None,
    epochs: int | None,
    max_steps: int | None,
    extractors: list[str],
    extractor_weights: list[str],
    split_ratios: str,
    split_seed: int,
    workers: int,
) -> None:
    from delcli.cli.extract_cmd import ExtractProgress, parse_weights, pick_device
    from delcli.data.label_checks import find_videos, parse_ratios, videos_from_list
    from delcli.extract import gather_videos
    from delcli.train.from_videos import OwnVideos, prepare_own_videos

    if labels is None:
        raise ConfigError("--videos/--list need --labels FILE (CSV, JSON or a folder of .txt)")
    if videos is None and list_file is None:
        raise ConfigError("--labels needs the videos: --videos DIR or --list FILE")
    if videos is not None and list_file is not None:
        raise ConfigError("give --videos DIR or --list FILE, not both")
    found = (
        find_videos(videos)
        if videos is not None
        else videos_from_list(list_file, gather_videos([], list_file))
    )
    ratios = parse_ratios(split_ratios)
    name = (videos or list_file).resolve().stem or "videos"
    run_dir = out or Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    check_run_dir(run_dir, resume)
    overrides = list(overrides) + ([f"train.epochs={epochs}"] if epochs else [])
    device_name = pick_device(device)
    own = OwnVideos(
        labels=labels,
        videos=found,
        run_dir=run_dir,
        features=features,
        extractors=extractors or ["basic"],
        extractor_weights=parse_weights(extractor_weights),
        ratios=ratios,
        seed=split_seed,
        base_recipe=recipe,
        overrides=overrides,
        device=device_name,
        workers=workers,
        name=name,
    )
    console = stderr_console()

    def stage(message: str) -> None:
        console.print(f"[dim]{message}[/dim]", highlight=False, soft_wrap=True)

    with ExtractProgress(console) as progress:
        prepared = prepare_own_videos(
            own,
            on_extract_event=progress.handle,
            on_stage=stage,
            on_problem=lambda line: console.print(
                f"label problem: {line}", highlight=False, soft_wrap=True
            ),
        )
    checked = prepared.labels
    counts = {s: len(checked.videos(s)) for s in ("train", "validation", "test")}
    stage(
        f"{len(checked.events)} events of {len(checked.classes)} classes in "
        f"{len(checked.durations)} videos · split {counts['train']}/{counts['validation']}/"
        f"{counts['test']} (train/validation/test) from {checked.split_source} · features: "
        f"{prepared.extracted} extracted, {prepared.reused} reused"
    )

    from delcli.train.engine import TrainingDiverged, fit

    bar = TrainProgress(run_dir)
    try:
        result = fit(
            prepared.recipe,
            run_dir,
            resume=resume,
            device=device_name,
            max_steps=max_steps,
            on_event=bar.handle,
        )
    except TrainingDiverged as error:
        bar.stop()
        typer.echo(f"del: error: training diverged: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        bar.stop()
    stage(
        f"trained {count(result.epochs, 'epoch')} ({count(result.steps, 'step')}) "
        f"in {result.seconds:.0f} s; run: {run_dir}"
    )
    split = prepared.recipe.data.test_split
    if split == "train":
        stage("no validation or test videos: no held-out mAP (the model is in the run)")
    else:
        from delcli.cli.eval_cmd import print_model_evaluation

        print_model_evaluation(str(run_dir), device=device_name)
    stage(f"next: del predict VIDEO --weights {run_dir}   ·   del eval --weights {run_dir}")
    if prepared.failed_videos:
        raise typer.Exit(1)
