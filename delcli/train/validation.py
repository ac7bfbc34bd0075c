"""The datasets of a run, and validation during training: the validation split scored
by `delcli.evaluation.evaluate_model` (predictions sharded across processes, merged),
exactly as `del eval --weights RUN` scores it.

The score is the benchmark's average mAP (`recipe.data.benchmark`'s tIoU
sets), or the mean over tIoU 0.1:0.1:0.9 (UnAV-100's) when the recipe names
no benchmark.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from torch import nn

from delcli.data.benchmarks import evaluation_protocol
from delcli.errors import ConfigError, DataError
from delcli.evaluation import EvaluationReport, evaluate_model
from delcli.recipe import Recipe
from delcli.train import distributed


def build_datasets(recipe: Recipe):
    """The training dataset, and the validation set (None when the split is absent or empty)
    with a note saying why; both where `recipe.data` says."""
    from delcli.data.annotations import UnknownSplit
    from delcli.data.dataset import FeatureDataset

    data = recipe.data
    seed = recipe.train.seed
    train = FeatureDataset(data, recipe.model, data.train_split, training=True, seed=seed)
    fallback = "; best.safetensors follows the last epoch"
    if data.val_split is None:
        return train, None, f"no validation split in the recipe{fallback}"
    try:  # missing or unreadable features stop the run, as in the training split
        val = FeatureDataset(data, recipe.model, data.val_split, training=False, seed=seed)
    except UnknownSplit as error:
        return train, None, f"no validation ({error}){fallback}"
    if recipe.model.num_classes == 1 and len(val.classes) > 1:
        return train, None, f"a class-agnostic model needs external class scores{fallback}"
    if len(val) == 0 or val.annotations.num_events == 0:
        what = "no videos" if len(val) == 0 else "no events"
        return train, None, f"validation split '{data.val_split}' has {what}{fallback}"
    return train, val, None


def pin_classes(recipe: Recipe, train) -> tuple[Recipe, str | None]:
    """A recipe that leaves `data.classes` open takes the training data's class list (and
    its size as `model.num_classes`, unless class-agnostic), so that the run's config.yaml
    and weights name their classes; and a note when `model.num_classes` changed."""
    if recipe.data.classes is not None:
        return recipe, None
    classes = list(train.classes)
    model, note = recipe.model, None
    if model.num_classes not in (1, len(classes)):
        note = (
            f"model.num_classes={model.num_classes} → {len(classes)}, "
            "the classes of the training data (data.classes is not set)"
        )
        model = replace(model, num_classes=len(classes))
    return replace(recipe, data=replace(recipe.data, classes=classes), model=model), note


def check_training_set(recipe: Recipe, train) -> None:
    """The training split must have videos, and the model an output per class (or one:
    class-agnostic)."""
    classes = len(train.classes)
    if len(train) == 0:
        raise DataError(f"the training split '{recipe.data.train_split}' has no videos")
    if recipe.model.num_classes not in (1, classes):
        raise ConfigError(
            f"model.num_classes={recipe.model.num_classes} but the dataset has "
            f"{classes} classes; set model.num_classes={classes}"
        )


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
    """A validation dataset, built once per run, and the tIoU thresholds it is averaged over."""

    def __init__(self, dataset, recipe: Recipe) -> None:
        self.dataset = dataset
        self.recipe = recipe
        self.average_tious = evaluation_protocol(recipe.data.benchmark).average_tious

    def evaluate(self, model: nn.Module, context: distributed.Context) -> EvaluationReport:
        """The report `del eval --weights` gives for these weights on this split: every
        video predicted by exactly one process, the merged results scored in each."""
        return evaluate_model(
            model,
            self.recipe,
            dataset=self.dataset,
            device=context.device,
            indices=distributed.eval_indices(len(self.dataset), context),
            merge=partial(distributed.gather_results, context=context),
        )
