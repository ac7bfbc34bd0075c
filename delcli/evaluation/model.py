"""Evaluate a model on one split of its feature dataset: predict every video, score them.

`del eval --weights`, validation during training and the Python API all go through
`evaluate_model`, so the mAP a training run reports for its best epoch is, bit for bit,
the mAP `del eval --weights RUN` prints for the same weights and split:

    from delcli.evaluation import evaluate_model
    from delcli.export.backend import Backend, load_network

    network, recipe, source = load_network("runs/unav100", Backend.torch, "cpu")
    report = evaluate_model(network, recipe, "test", source=source)
    report.average_map, report.maps, report.results
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from delcli.data.benchmarks import evaluation_protocol
from delcli.evaluation.predictions import results_to_predictions
from delcli.evaluation.scoring import EvaluationReport, Results, score_loaded

if TYPE_CHECKING:
    import torch

    from delcli.data.dataset import FeatureDataset
    from delcli.model.del_model import DELModel
    from delcli.recipe import Recipe

_LISTED = 5  # skipped videos named in the note


def evaluate_model(
    network: DELModel,
    recipe: Recipe,
    split: str | None = None,
    *,
    dataset: FeatureDataset | None = None,
    benchmark: str | None = None,
    tious: Sequence[float] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    external_scores: str | Path | None = None,
    clean_ground_truth: bool = False,
    source: str | Path | None = None,
    indices: Sequence[int] | None = None,
    merge: Callable[[Results], Results] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Official ActivityNet mAP of `network` on one split of `recipe`'s feature dataset.

    Args:
        network: a `DELModel`, or what answers as one: an `OnnxNetwork` (both come from
            `delcli.export.backend.load_network`).
        recipe: `data` says where the features and annotations are (command-line paths
            enter it through `delcli.recipe.with_data_paths`); `inference` how detections
            are made.
        split: default `recipe.data.test_split`.
        dataset: the split, already built (validation builds it once per run); its
            warnings and skipped videos are then its builder's to report.
        benchmark: whose tIoU protocol scores the split; default `recipe.data.benchmark`,
            else UnAV-100's (`evaluation_protocol`).
        tious: thresholds instead of the benchmark's; all are averaged.
        external_scores: a file of video-level class scores that name the detections of a
            class-agnostic model (`read_external_scores`).
        source: the file the network came from, named in the report.
        indices: the videos this process predicts (distributed validation); default all.
        merge: turns every process's results into the whole split's (an all-gather).
        progress: called with (videos done, videos to do) before the first batch and after
            every batch.
        on_note: receives, as they happen, what is worth telling beside the score: the
            dataset's warnings, the videos skipped, how long predicting took.

    Returns:
        The report `del eval` prints, with the detections (`results`), in the split's
        order whatever the sharding, so equal scores are ranked as in one process.
    """
    from delcli.inference.predictor import predict_dataset, read_external_scores

    tell = on_note or (lambda message: None)
    if dataset is None:
        dataset = _build_dataset(recipe, split or recipe.data.test_split, tell)
    external = (
        read_external_scores(external_scores, classes=dataset.classes)
        if external_scores is not None
        else None
    )
    indices = list(range(len(dataset))) if indices is None else list(indices)
    started = time.perf_counter()
    results = predict_dataset(
        network,
        dataset,
        recipe,
        indices=indices,
        batch_size=batch_size,
        device=device,
        external_scores=external,
        progress=_counter(progress, len(indices)),
    )
    seconds = time.perf_counter() - started
    merged = merge(results) if merge is not None else results
    results = {video: merged[video] for video in dataset.video_ids if video in merged}
    tell(f"predicted {len(results)} videos in {seconds:.1f} s on {device}")

    name = benchmark or recipe.data.benchmark
    report = score_loaded(
        dataset.annotations,
        results_to_predictions(results, source=f"model {source}" if source else "model"),
        benchmark=evaluation_protocol(name),
        dataset=name,
        split=dataset.split,
        tious=tuple(tious) if tious is not None else None,
        clean_ground_truth=clean_ground_truth,
        ground_truth=dataset.annotations.source,
    )
    if recipe.paper is not None and tious is None and name == recipe.data.benchmark:
        paper = recipe.paper
        report.notes.append(
            f"the paper reports an average mAP of {paper.average:.1f} ({paper.table})"
        )
    return replace(report, results=results, skipped=list(dataset.problems))


def _build_dataset(recipe: Recipe, split: str, tell: Callable[[str], None]) -> FeatureDataset:
    """The split as `recipe.data` describes it; what it changed or left out is told."""
    from delcli.data.dataset import FeatureDataset

    dataset = FeatureDataset(recipe.data, recipe.model, split)
    for warning in dataset.warnings:
        tell(warning)
    if dataset.problems:
        listed = "; ".join(f"{video} ({reason})" for video, reason in dataset.problems[:_LISTED])
        extra = len(dataset.problems) - _LISTED
        more = f"; … {extra} more" if extra > 0 else ""
        tell(
            f"skipped {len(dataset.problems)} videos of split '{split}' whose features are "
            f"missing or unreadable (the mAP covers the other {len(dataset)}): {listed}{more}"
        )
    return dataset


def _counter(
    progress: Callable[[int, int], None] | None, total: int
) -> Callable[[int], None] | None:
    """`predict_dataset`'s per-batch counts as (done, total) calls, starting with (0, total)."""
    if progress is None:
        return None
    done = 0
    progress(done, total)

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total)

    return advance
