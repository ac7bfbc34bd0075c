"""The datasets of a run, and validation during training: predict the validation
split (sharded across processes), merge, score.

The score is the benchmark's average mAP (`recipe.data.benchmark`'s tIoU
sets), or the mean over tIoU 0.1:0.1:0.9 (UnAV-100's) when the recipe names
no benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from delcli.data.benchmarks import get_benchmark, tiou_range
from delcli.errors import DataError
from delcli.evaluation.detection_map import align_predictions, detection_map
from delcli.evaluation.predictions import Predictions
from delcli.recipe import Recipe
from delcli.train import distributed

DEFAULT_TIOUS = tiou_range(0.1, 0.9, 0.1)


def build_datasets(recipe: Recipe, features: Path | None, annotations: Path | None):
    """The training dataset, and the validation set (None when the split is absent or empty)
    with a note saying why."""
    from delcli.data.dataset import FeatureDataset

    data = recipe.data
    common = dict(features=features, annotations=annotations, seed=recipe.train.seed)
    train = FeatureDataset(data, recipe.model, data.train_split, training=True, **common)
    fallback = "; best.safetensors follows the last epoch"
    try:
        val = FeatureDataset(data, recipe.model, data.val_split, training=False, **common)
    except DataError as error:
        return train, None, f"no validation ({error}){fallback}"
    if recipe.model.num_classes == 1 and len(val.classes) > 1:
        return train, None, f"a class-agnostic model needs external class scores{fallback}"
    if len(val) == 0 or val.annotations.num_events == 0:
        what = "no videos" if len(val) == 0 else "no events"
        return train, None, f"validation split '{data.val_split}' has {what}{fallback}"
    return train, val, None


class ValidationSet:
    """A validation dataset with the thresholds it is scored at."""

    def __init__(self, dataset, recipe: Recipe) -> None:
        self.dataset = dataset
        self.recipe = recipe
        if recipe.data.benchmark:
            benchmark = get_benchmark(recipe.data.benchmark)
            self.tious, self.average_tious = benchmark.tious, benchmark.average_tious
        else:
            self.tious = self.average_tious = DEFAULT_TIOUS

    def predict(self, model: nn.Module, context: distributed.Context) -> dict[str, list[dict]]:
        """ActivityNet-style results of every video, each predicted by exactly one process."""
        from delcli.inference.predictor import predict_dataset

        indices = distributed.eval_indices(len(self.dataset), context)
        results = predict_dataset(
            model, self.dataset, self.recipe, indices=indices, device=context.device
        )
        return distributed.gather_results(results, context)


def results_to_predictions(results: dict[str, list[dict]]) -> Predictions:
    """Flat arrays of a `{video: [{label, score, segment}]}` dict."""
    videos = list(results)
    names: dict[str, int] = {}
    rows = [
        (v, names.setdefault(d["label"], len(names)), d["score"], d["segment"])
        for v, video_id in enumerate(videos)
        for d in results[video_id]
    ]
    return Predictions(
        videos=videos,
        video=np.array([r[0] for r in rows], dtype=np.int64),
        segments=np.array([r[3] for r in rows], dtype=np.float64).reshape(-1, 2),
        scores=np.array([r[2] for r in rows], dtype=np.float64),
        label_names=list(names),
        label=np.array([r[1] for r in rows], dtype=np.int64),
        source="validation",
    )


def evaluate_results(
    results: dict[str, list[dict]], validation: ValidationSet
) -> tuple[dict[str, float], float]:
    """mAP per tIoU (keys `f"{t:g}"`) and the average mAP, as fractions."""
    ground_truth = validation.dataset.annotations
    tious = np.array(sorted(set(validation.tious) | set(validation.average_tious)))
    aligned = align_predictions(ground_truth, results_to_predictions(results))
    scores = detection_map(ground_truth, aligned, tious)
    per_tiou = {f"{t:g}": float(m) for t, m in zip(scores.tious, scores.mean_ap, strict=True)}
    return per_tiou, scores.average(validation.average_tious)
