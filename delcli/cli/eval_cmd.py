"""`del eval`: score detections against ground truth and print the mAP table."""

from __future__ import annotations

from pathlib import Path

import typer

from delcli.cli.output import OutputFormat, note, stdout_console, write_csv, write_json
from delcli.errors import ConfigError

EXAMPLES = """
Examples:

  del eval --dataset unav100 --predictions examples/unav100_test_predictions.json.gz

  del eval --dataset thumos14 --predictions preds.csv --per-class --format csv

  del eval -g annotations.json -s validation -p results.json --tiou 0.3:0.7:0.1
"""


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        help="Score detections (ActivityNet results JSON or CSV) against ground truth: "
        "official ActivityNet mAP per tIoU and its average.\n\n" + EXAMPLES,
    )(eval_command)


def eval_command(
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        "-p",
        help="ActivityNet results JSON ({'results': {video: [{label, score, segment}]}}) "
        "or CSV with columns video,start,end,label,score; .gz accepted.",
    ),
    ground_truth: Path | None = typer.Option(
        None,
        "--ground-truth",
        "-g",
        help="Annotation file (ActivityNet/ActionFormer/UnAV JSON, BSN ActivityNet JSON, "
        "EPIC-Kitchens CSV). Default: the ground truth bundled for --dataset.",
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="unav100 | thumos14 | anet13 | epic100-verb | epic100-noun: the benchmark's "
        "tIoU set, default split and bundled ground truth.",
    ),
    split: str | None = typer.Option(
        None, "--split", "-s", help="Subset to score (default: the benchmark's test split)."
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
) -> None:
    from delcli.data.benchmarks import parse_tious
    from delcli.evaluation.scoring import score_predictions

    if predictions is None:
        raise ConfigError(
            "--predictions FILE is required (evaluating a model directly is not built yet)"
        )
    report = score_predictions(
        predictions,
        ground_truth=ground_truth,
        dataset=dataset,
        split=split,
        tious=parse_tious(tiou) if tiou else None,
        ignore_unknown_labels=ignore_unknown_labels,
        clean_ground_truth=clean_ground_truth,
    )
    for line in report.notes:
        note(line)
    if output_format is OutputFormat.json:
        write_json(report.to_dict(per_class=per_class))
    elif output_format is OutputFormat.csv:
        header, rows = _rows(report, per_class, percent=False)
        write_csv(header, rows)
    else:
        stdout_console().print(_rich_table(report, per_class))


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


def _rich_table(report, per_class: bool):
    from rich.table import Table

    from delcli.data.benchmarks import format_tious, get_benchmark

    header, rows = _rows(report, per_class, percent=True)
    paper = {f"{t:g}" for t in report.paper_tious}
    mark_paper = bool(paper) and paper != set(header[1:-1])
    counts = report.counts
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
