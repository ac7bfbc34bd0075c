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

from delcli.data.benchmarks import evaluation_protocol
from delcli.evaluation.detection_map import align_predictions, detection_map
from delcli.evaluation.predictions import results_to_predictions
from delcli.recipe import Recipe
from delcli.train import distributed


def build_datasets(recipe: Recipe, features: Path | None, annotations: Path | None):
    """The training dataset, and the validation set (None when the split is absent or empty)
    with a note saying why."""
    from delcli.data.annotations import UnknownSplit
    from delcli.data.dataset import FeatureDataset

    data = recipe.data
    common = dict(features=features, annotations=annotations, seed=recipe.train.seed)
    train = FeatureDataset(data, recipe.model, data.train_split, training=True, **common)
    fallback = "; best.safetensors follows the last epoch"
    if data.val_split is None:
        return train, None, f"no validation split in the recipe{fallback}"
    try:  # missing or unreadable features stop the run, as in the training split
        val = FeatureDataset(data, recipe.model, data.val_split, training=False, **common)
    except UnknownSplit as error:
        return train, None, f"no validation ({error}){fallback}"
    if recipe.model.num_classes == 1 and len(val.classes) > 1:
        return train, None, f"a class-agnostic model needs external class scores{fallback}"
    if len(val) == 0 or val.annotations.num_events == 0:
        what = "no videos" if len(val) == 0 else "no events"
        return train, None, f"validation split '{data.val_split}' has {what}{fallback}"
    return train, val, None


class DatasetNotes:
    """What the datasets changed or left out (videos skipped with `data.skip_missing`,
    streams interpolated, events clipped or dropped) as notes, each shown once; at most
    `limit` at a time per split, then a count."""

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.shown: dict[str, int] = {}  # split → warnings already shown

    def fresh(self, **datasets) -> list[str]:
        notes = []
        for split, dataset in datasets.items():
            if dataset is None:
                continue
            if split not in self.shown:
                problems = getattr(dataset, "problems", [])
                notes += [f"skipped {split} video {v}: {why}" for v, why in problems[: self.limit]]
                if len(problems) > self.limit:
                    notes.append(f"skipped {len(problems)} {split} videos in all")
            warnings = getattr(dataset, "warnings", [])
            new = warnings[self.shown.get(split, 0) :]
            notes += [f"{split} data: {warning}" for warning in new[: self.limit]]
            if len(new) > self.limit:
                notes.append(f"{split} data: {len(new) - self.limit} more notes like these")
            self.shown[split] = len(warnings)
        return notes


class ValidationSet:
    """A validation dataset with the thresholds it is scored at."""

    def __init__(self, dataset, recipe: Recipe) -> None:
        self.dataset = dataset
        self.recipe = recipe
        protocol = evaluation_protocol(recipe.data.benchmark)
        self.tious, self.average_tious = protocol.tious, protocol.average_tious

    def predict(self, model: nn.Module, context: distributed.Context) -> dict[str, list[dict]]:
        """ActivityNet-style results of every video, each predicted by exactly one process."""
        from delcli.inference.predictor import predict_dataset

        indices = distributed.eval_indices(len(self.dataset), context)
        results = predict_dataset(
            model, self.dataset, self.recipe, indices=indices, device=context.device
        )
        return distributed.gather_results(results, context)


def evaluate_results(
    results: dict[str, list[dict]], validation: ValidationSet
) -> tuple[dict[str, float], float]:
    """mAP per tIoU (keys `f"{t:g}"`) and the average mAP, as fractions."""
    ground_truth = validation.dataset.annotations
    tious = np.array(sorted(set(validation.tious) | set(validation.average_tious)))
    aligned = align_predictions(ground_truth, results_to_predictions(results, "validation"))
    scores = detection_map(ground_truth, aligned, tious)
    per_tiou = {f"{t:g}": float(m) for t, m in zip(scores.tious, scores.mean_ap, strict=True)}
    return per_tiou, scores.average(validation.average_tious)
