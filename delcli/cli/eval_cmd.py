"""`del eval`: score detections against ground truth and print the mAP table.

Two modes: `--predictions FILE` scores a results file; `--weights MODEL`
evaluates a model on a feature dataset (`delcli.evaluation.evaluate_model`:
predict, score in memory; optionally write the results).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from delcli.cli.backend import BACKEND_HELP
from delcli.cli.output import (
    OutputFormat,
    note,
    progress_bar,
    stdout_console,
    write_csv,
    write_json,
)
from delcli.errors import ConfigError
from delcli.export.backend import Backend

if TYPE_CHECKING:
    from delcli.evaluation import EvaluationReport

EXAMPLES = """
Examples:

  del eval --dataset unav100 --predictions examples/unav100_test_predictions.json.gz

  del eval --dataset thumos14 --predictions preds.csv --per-class --format csv

  del eval -g annotations.json -s validation -p results.json --tiou 0.3:0.7:0.1

  del predict clip.mp4 -w runs/mine -f anet | del eval -g runs/mine/annotations.json -s test -p -

  del eval --weights runs/unav100 --features data/unav100/av_features --predictions-out test.json

  del eval --weights runs/anet13/best.safetensors --features data/anet \\
      --external-scores cuhk_val_simp_share.json

  del eval --weights unav100.onnx --backend onnxruntime --features data/unav100/av_features
"""


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        help="Score detections (ActivityNet results JSON or CSV) against ground truth, or "
        "evaluate a model (--weights) on a feature dataset: official ActivityNet mAP per "
        "tIoU and its average.\n\n" + EXAMPLES,
    )(eval_command)


def eval_command(
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        "-p",
        help="ActivityNet results JSON ({'results': {video: [{label, score, segment}]}}), "
        "ActionFormer's results JSON (video-id, t-start, t-end, label, score lists) "
        "or CSV with columns video,start,end,label,score; .gz accepted; '-' reads stdin.",
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="Evaluate a model: a run directory (best.safetensors, else last), a "
        ".safetensors file, or a zoo name; with --backend onnxruntime an .onnx file. Needs "
        "--features.",
    ),
    backend: Backend | None = typer.Option(
        None, "--backend", help=f"With --weights: {BACKEND_HELP} Default: torch."
    ),
    ground_truth: Path | None = typer.Option(
        None,
        "--ground-truth",
        "--annotations",
        "-g",
        help="Annotation file (ActivityNet/ActionFormer/UnAV JSON, BSN ActivityNet JSON, "
        "EPIC-Kitchens CSV). Default: the ground truth bundled for --dataset (with "
        "--weights: the recipe's).",
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="unav100 | thumos14 | anet13 | epic100-verb | epic100-noun: the benchmark's "
        "tIoU set, default split and bundled ground truth (with --weights: its tIoU set; "
        "default: the recipe's benchmark, else UnAV-100's).",
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        "-s",
        help="Subset to score (default: the benchmark's test split; with --weights, the "
        "recipe's data.test_split).",
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="With --weights: the folder holding the files the recipe names ({video}_rgb.npy, "
        "audio/{video}.npy, …; default: the recipe's data.features).",
    ),
    predictions_out: Path | None = typer.Option(
        None,
        "--predictions-out",
        "-o",
        help="With --weights: also write the detections as ActivityNet results JSON "
        "(.gz compresses).",
    ),
    external_scores: Path | None = typer.Option(
        None,
        "--external-scores",
        help="With --weights: video-level class scores that name class-agnostic "
        "detections (ActivityNet; CUHK's {'results', 'class'} JSON or {video: {class: "
        "score}}).",
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="With --weights: videos per forward pass (default: the recipe's).",
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="With --weights: cpu or cuda (default: cuda when available).",
    ),
    tiou: str | None = typer.Option(
        None,
        "--tiou",
        help="Thresholds as start:stop:step (inclusive) or a list 0.3,0.5; all are averaged. "
        "Default: the benchmark's set.",
    ),
    per_class: bool = typer.Option(False, "--per-class", help="Also show AP of every class."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.table,
        "--format",
        "-f",
        help="table (percent) for people; json or csv (fractions) for machines.",
    ),
    ignore_unknown_labels: bool = typer.Option(
        False,
        "--ignore-unknown-labels",
        help="Drop predictions whose label is not a class of the ground truth "
        "(OpenTAD does this silently). Default: stop with an error naming the label.",
    ),
    clean_ground_truth: bool = typer.Option(
        False,
        "--clean-ground-truth",
        help="Drop zero-length and duplicate ground-truth events, as ActionFormer/OpenTAD "
        "do. Default: keep them, as the official scorer does.",
    ),
) -> int:
    from delcli.data.benchmarks import parse_tious

    if predictions is not None and weights is not None:
        raise ConfigError("give --predictions FILE or --weights MODEL, not both")
    tious = parse_tious(tiou) if tiou else None
    if weights is None:
        _check_file_options(
            predictions,
            {
                "--features": features,
                "--predictions-out": predictions_out,
                "--external-scores": external_scores,
                "--batch-size": batch_size,
                "--device": device,
                "--backend": backend,
            },
        )
        from delcli.evaluation.scoring import score_predictions

        report = score_predictions(
            _stdin_predictions() if str(predictions) == "-" else predictions,
            ground_truth=ground_truth,
            dataset=dataset,
            split=split,
            tious=tious,
            ignore_unknown_labels=ignore_unknown_labels,
            clean_ground_truth=clean_ground_truth,
        )
        title = None
    else:
        report, title = _model_report(
            weights,
            backend or Backend.torch,
            device,
            features=features,
            annotations=ground_truth,
            benchmark=dataset,
            split=split,
            tious=tious,
            predictions_out=predictions_out,
            external_scores=external_scores,
            batch_size=batch_size,
            clean_ground_truth=clean_ground_truth,
        )
    _print_report(report, output_format, per_class, title)
    return 1 if report.skipped else 0


def _check_file_options(predictions: Path | None, given: dict[str, object]) -> None:
    """Scoring a file: every option that only applies to evaluating a model must be unset."""
    if predictions is None:
        raise ConfigError(
            "--predictions FILE is required (or --weights RUN_DIR|FILE|ZOO_NAME to "
            "evaluate a model)"
        )
    for option, value in given.items():
        if value is not None:
            raise ConfigError(f"{option} needs --weights (it applies to evaluating a model)")


def _model_report(
    weights: str,
    backend: Backend,
    device: str | None,
    features: Path | None = None,
    annotations: Path | None = None,
    benchmark: str | None = None,
    split: str | None = None,
    tious: tuple[float, ...] | None = None,
    predictions_out: Path | None = None,
    external_scores: Path | None = None,
    batch_size: int | None = None,
    clean_ground_truth: bool = False,
) -> tuple[EvaluationReport, str | None]:
    """`--weights`: the model's report on the split (`evaluate_model`, its notes on stderr as
    they come), with `--predictions-out` written; and the table's title."""
    from delcli import __version__
    from delcli.device import resolve_device
    from delcli.evaluation import evaluate_model
    from delcli.export.backend import load_network
    from delcli.inference.predictor import write_results
    from delcli.recipe import with_data_paths

    if predictions_out is not None and not predictions_out.parent.is_dir():
        raise ConfigError(
            f"--predictions-out {predictions_out}: folder {predictions_out.parent} does not exist"
        )
    if backend is Backend.onnxruntime and device is None:
        device = "cpu"
    device = str(resolve_device(device))
    network, recipe, source = load_network(weights, backend, device)
    recipe = with_data_paths(recipe, features, annotations)
    with _prediction_bar() as progress:
        report = evaluate_model(
            network,
            recipe,
            split,
            benchmark=benchmark,
            tious=tious,
            batch_size=batch_size,
            device=device,
            external_scores=external_scores,
            clean_ground_truth=clean_ground_truth,
            source=source,
            progress=progress,
            on_note=note,
        )
    if predictions_out is not None:
        details = f"del {__version__}, weights {source}"
        if external_scores is not None:
            details += f", external class scores {external_scores}"
        write_results(
            predictions_out,
            report.results,
            external_used=external_scores is not None,
            details=details,
        )
        note(f"wrote {predictions_out}")
    return report, None if report.dataset else recipe.title or recipe.name


@contextlib.contextmanager
def _prediction_bar() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for `evaluate_model(progress=…)`: it appears with the first
    video and is gone once the last is done, so no note is printed while it shows."""
    bar = progress_bar(transient=True)
    task = None

    def advance(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("predicting", total=total)
        bar.update(task, completed=done)
        if done == total:
            bar.stop()

    try:
        yield advance
    finally:
        bar.stop()


def _print_report(
    report: EvaluationReport, output_format: OutputFormat, per_class: bool, title: str | None
) -> None:
    """The notes on stderr, the table (or JSON, CSV) on stdout."""
    for line in report.notes:
        note(line)
    if output_format is OutputFormat.json:
        write_json(report.to_dict(per_class=per_class))
    elif output_format is OutputFormat.csv:
        header, rows = _rows(report, per_class, percent=False)
        write_csv(header, rows)
    else:
        stdout_console().print(_rich_table(report, per_class, title))


def _rows(report, per_class: bool, percent: bool) -> tuple[list[str], list[list]]:
    """Header and rows: `mAP` first, then one row per class; last column the average."""
    import numpy as np

    result = report.result
    scale = 100.0 if percent else 1.0
    columns = [f"{t:g}" for t in result.tious]
    average_cols = np.isin(np.round(result.tious, 6), np.round(report.average_tious, 6))
    header = ["class", *columns, "avg"]
    rows = [["mAP", *(m * scale for m in result.mean_ap), report.average_map * scale]]
    if per_class:
        for name, ap in zip(result.classes, result.ap, strict=True):
            rows.append([name, *(a * scale for a in ap), ap[average_cols].mean() * scale])
    return header, rows


def _rich_table(report, per_class: bool, name: str | None = None):
    from rich.table import Table

    from delcli.data.benchmarks import format_tious, get_benchmark

    header, rows = _rows(report, per_class, percent=True)
    paper = {f"{t:g}" for t in report.paper_tious}
    mark_paper = bool(paper) and paper != set(header[1:-1])
    counts = report.counts
    if name is None:
        name = get_benchmark(report.dataset).title if report.dataset else "mAP"
    title = f"{name} · {report.split} split · mAP (%)"
    caption = (
        f"{counts['videos']:,} videos · {counts['ground_truth']:,} events · "
        f"{counts['classes']} classes · {counts['predictions']:,} predictions\n"
        f"avg = mean over tIoU {format_tious(report.average_tious)}"
    )
    if mark_paper:
        caption += "; * = columns of the paper's table"
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in header:
        label = f"{name}*" if mark_paper and name in paper else name
        justify = "left" if name == "class" else "right"
        table.add_column("tIoU" if name == "class" else label, justify=justify)
    for row in rows:
        table.add_row(str(row[0]), *(f"{v:.2f}" for v in row[1:]))
    return table


def print_model_evaluation(weights: str, device: str | None = None) -> int:
    """What `del eval --weights WEIGHTS` prints (notes on stderr, the table on stdout);
    its exit code."""
    report, title = _model_report(weights, Backend.torch, device)
    _print_report(report, OutputFormat.table, False, title)
    return 1 if report.skipped else 0


def _stdin_predictions():
    """`-p -`: the detections piped in (JSON or CSV, told from the content)."""
    import sys

    from delcli.evaluation.predictions import read_predictions

    return read_predictions("<stdin>", text=sys.stdin.read())
