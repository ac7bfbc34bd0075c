"""The training loop: `fit(recipe, run_dir, …)` trains, validates and writes a run directory.

    RUN_DIR/config.yaml        the resolved recipe
    RUN_DIR/metrics.jsonl      one JSON object per line (train, epoch, eval, … events)
    RUN_DIR/best.safetensors   evaluation weights of the best validation average mAP
    RUN_DIR/last.safetensors   evaluation weights after the latest epoch
    RUN_DIR/checkpoint/        the resume state (what it holds: `state.py`; the folder:
                               `checkpoint.py`)
    RUN_DIR/val_predictions.json   the best epoch's validation detections (ActivityNet
                               results; `del eval -p` scores them)

The evaluation weights are the EMA weights when `train.ema_decay > 0`. The
data order of an epoch and its random crops are pure functions of (seed,
epoch), and every RNG state is checkpointed, so a run resumed after epoch k
ends with exactly the weights of an uninterrupted run. Under `torchrun` the
same function runs in every process (DDP); only rank 0 writes files and
reports events.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from delcli.errors import ConfigError
from delcli.recipe import PRECISIONS, Recipe, recipe_to_dict
from delcli.train import distributed
from delcli.train.checkpoint import check_same_recipe, checkpoint_folder
from delcli.train.memory import peak_memory, release_freed_memory
from delcli.train.metrics import MetricsLog, RunningMeans
from delcli.train.normalization import fit_input_normalization
from delcli.train.seeding import epoch_permutation, seed_everything
from delcli.train.state import TrainingState
from delcli.train.validation import (
    DatasetNotes,
    ValidationSet,
    build_datasets,
    check_training_set,
    pin_classes,
)

Event = dict
VAL_PREDICTIONS = "val_predictions.json"  # detections of the best epoch on the validation split
PROGRESS_ONLY = ("step", "validate", "saved")  # events not written to metrics.jsonl


class TrainingDiverged(RuntimeError):
    """The gradients stopped being finite numbers."""


@dataclass
class FitResult:
    """What a run achieved. mAP values are fractions; tIoU keys are formatted as `f"{t:g}"`."""

    run_dir: Path
    epochs: int  # epochs completed
    steps: int  # optimizer steps completed
    best_epoch: int | None = None
    best_map: float | None = None  # average mAP of the best epoch
    best_maps: dict[str, float] = field(default_factory=dict)  # mAP per tIoU of the best epoch
    average_tious: list[float] = field(default_factory=list)
    validated: bool = False
    seconds: float = 0.0


class TrainingObjective(nn.Module):
    """Network + Eq. (14) in one `forward`, so DDP sees every parameter used in one call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, visual, audio, mask, segments, labels) -> dict[str, torch.Tensor]:
        return self.model.losses(self.model(visual, audio, mask), segments, labels)


def autocast(precision: str, device: torch.device):
    """bf16 autocast on CUDA for `auto`, everywhere for `bf16`; nothing for `fp32`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(
    recipe: Recipe,
    run_dir: Path,
    resume: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> FitResult:
    """Train `recipe` into `run_dir`.

    Args:
        recipe: the resolved recipe (written to `run_dir/config.yaml`); its `data` says
            where the features and annotations are (`delcli.recipe.with_data_paths`).
        run_dir: output folder (created).
        resume: continue from `run_dir/checkpoint/` (a fresh start when there is none);
            the recipe must equal the run's `config.yaml`.
        device: cpu, cuda, cuda:N; None → CUDA when available. Under torchrun, `cuda`
            means each process's LOCAL_RANK GPU.
        max_steps: stop after this many optimizer steps in total (smoke tests); the
            epoch in progress then ends as if complete (validated, saved).
        on_event: receives every event dict (rank 0 only): those of metrics.jsonl plus
            `step` (every optimizer step) and `validate` (validation begins).
    """
    started = time.perf_counter()
    owns_group = distributed.launched_by_torchrun() and not torch.distributed.is_initialized()
    context = distributed.setup(device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        loop = _Loop(recipe, Path(run_dir), context, on_event)
        loop.prepare(resume)
        loop.run(max_steps)
        return loop.result(time.perf_counter() - started)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        if owns_group:
            distributed.teardown(context)


class _Loop:
    """The state of one training run; methods in the order they run."""

    def __init__(self, recipe, run_dir, context, on_event) -> None:
        self.recipe, self.run_dir, self.context = recipe, run_dir, context
        self.config = recipe.train
        self.on_event = on_event
        self.device = context.device
        self.metrics: MetricsLog | None = None  # opened once the run directory exists
        self.dataset_notes = DatasetNotes()

    # -- setup ---------------------------------------------------------------------------

    def prepare(self, resume: bool) -> None:
        recipe, config, context = self.recipe, self.config, self.context
        autocast(config.precision, self.device)  # validates the setting before any work
        distributed.per_process_batch(config.batch_size, context)
        seed_everything(config.seed)
        self.train_set, val_set, note = build_datasets(recipe)
        self.recipe, pinned = pin_classes(recipe, self.train_set)
        if pinned:
            self._emit({"event": "note", "message": pinned})
        recipe = self.recipe
        check_training_set(recipe, self.train_set)
        self.validation = ValidationSet(val_set, recipe) if val_set is not None else None

        from delcli.model.del_model import DELModel

        model = DELModel(recipe.model)
        model.activation_checkpointing = config.activation_checkpointing
        resumed = resume and checkpoint_folder(self.run_dir) is not None
        normalization_note = None
        if not resumed:  # a resumed run restores the statistics with the weights
            normalization_note = fit_input_normalization(model, self.train_set)
        model.to(self.device)
        steps_per_epoch = distributed.steps_per_epoch(len(self.train_set), config.batch_size)
        self.state = state = TrainingState(model, config, steps_per_epoch)
        self.total_epochs = config.warmup_epochs + config.epochs
        self.objective = distributed.wrap(TrainingObjective(model), context)

        if resume:
            check_same_recipe(recipe, self.run_dir)
        if context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not resumed:
                from delcli.settings import write_yaml

                write_yaml(self.run_dir / "config.yaml", recipe_to_dict(recipe))
        if resumed:
            state.restore(self.run_dir, self.device)
        self.metrics = (
            MetricsLog(self.run_dir / "metrics.jsonl", state.epoch, resumed)
            if context.is_main
            else None
        )
        if resume and not resumed:
            self._emit(
                {"event": "note", "message": f"nothing to resume in {self.run_dir}; starting"}
            )
        for message in (note, normalization_note):
            if message:
                self._emit({"event": "note", "message": message})
        self._report_datasets()
        self._emit(
            {
                "event": "start" if not resumed else "resume",
                "epoch": state.epoch,
                "step": state.step,
                "epochs": self.total_epochs,
                "steps_per_epoch": steps_per_epoch,
                "total_steps": self.total_epochs * steps_per_epoch,
                "train_videos": len(self.train_set),
                "val_videos": len(self.validation.dataset) if self.validation else 0,
                "batch_size": config.batch_size,
                "processes": context.world_size,
                "device": str(self.device),
            }
        )

    def _report_datasets(self) -> None:
        validation = self.validation.dataset if self.validation is not None else None
        for message in self.dataset_notes.fresh(training=self.train_set, validation=validation):
            self._emit({"event": "note", "message": message})

    # -- the loop ------------------------------------------------------------------------

    def run(self, max_steps: int | None) -> None:
        state = self.state
        try:
            while state.epoch < self.total_epochs:
                if max_steps is not None and state.step >= max_steps:
                    break
                self._train_epoch(max_steps)
                stopping = max_steps is not None and state.step >= max_steps
                self._finish_epoch(last=stopping or state.epoch == self.total_epochs)
        finally:
            if self.metrics is not None:
                self.metrics.close()

    def _loader(self, epoch: int):
        from delcli.data.batch import collate

        config, model_config = self.config, self.recipe.model
        self.train_set.set_epoch(epoch)
        order = epoch_permutation(len(self.train_set), config.seed, epoch)
        batches = distributed.train_batches(order, config.batch_size, self.context)
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=batches,
            collate_fn=partial(
                collate, divisor=model_config.length_divisor, length=model_config.max_seq_len
            ),
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed + epoch),
        )

    def _train_epoch(self, max_steps: int | None) -> None:
        config, context, state = self.config, self.context, self.state
        epoch_number = state.epoch + 1
        precision = autocast(config.precision, self.device)
        state.model.train()
        window = RunningMeans()
        whole = RunningMeans()
        for batch in self._loader(state.epoch):
            batch = batch.to(self.device, non_blocking=True)
            lr = state.optimizer.param_groups[0]["lr"]
            with precision:
                terms = self.objective(
                    batch.visual, batch.audio, batch.mask, batch.segments, batch.labels
                )
            state.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            limit = config.clip_grad if config.clip_grad > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), limit)
            if not torch.isfinite(grad_norm):
                raise TrainingDiverged(
                    f"the gradient norm is {float(grad_norm)} at epoch {epoch_number}, "
                    f"step {state.step + 1} (loss {float(terms['total'].detach()):.4g}); "
                    "lower train.lr or check the features"
                )
            state.optimizer_step()
            for running in (window, whole):
                running.add(terms, len(batch), float(grad_norm), lr)
            self._emit(
                {
                    "event": "step",
                    "epoch": epoch_number,
                    "step": state.step,
                    "loss": float(terms["total"].detach()),
                    "lr": lr,
                },
            )
            if config.log_every > 0 and state.step % config.log_every == 0:
                self._emit(
                    {
                        "event": "train",
                        "epoch": epoch_number,
                        "step": state.step,
                        **window.summary(context),
                    }
                )
                window = RunningMeans()
            if max_steps is not None and state.step >= max_steps:
                break
        self._emit(
            {
                "event": "epoch",
                "epoch": epoch_number,
                "step": state.step,
                **whole.summary(context),
                **peak_memory(self.device),
            }
        )
        state.epoch += 1

    def _finish_epoch(self, last: bool) -> None:
        """Validate when due, write last/best weights and the checkpoint."""
        state, every = self.state, self.config.eval_every
        due = last or (every > 0 and state.epoch % every == 0)
        improved = False
        if self.validation is not None and due:
            improved = self._validate()
        self._report_datasets()  # warnings of files first read during the epoch
        if self.context.is_main:
            state.save(self.run_dir, self.recipe, best=improved or self.validation is None)
            self._emit({"event": "saved", "epoch": state.epoch, "step": state.step})

    def _validate(self) -> bool:
        """Score the evaluation weights on the validation split; True when the best improved."""
        started = time.perf_counter()
        state = self.state
        self._emit(
            {
                "event": "validate",
                "epoch": state.epoch,
                "step": state.step,
                "videos": len(self.validation.dataset),
            }
        )
        release_freed_memory()  # what the training steps freed, before validation allocates
        # evaluating restores the model's mode
        report = self.validation.evaluate(state.evaluation_model, self.context)
        maps, average, results = report.maps, report.average_map, report.results
        improved = state.record(maps, average)
        if improved and self.context.is_main:
            from delcli.inference.predictor import write_results

            details = f"validation split '{self.recipe.data.val_split}', epoch {state.epoch}"
            write_results(self.run_dir / VAL_PREDICTIONS, results, details=details)
        self._emit(
            {
                "event": "eval",
                "epoch": state.epoch,
                "step": state.step,
                "map": maps,
                "average_map": average,
                "best": improved,
                "best_map": state.best_map,
                "best_epoch": state.best_epoch,
                "videos": len(results),
                "detections": sum(len(r) for r in results.values()),
                "seconds": time.perf_counter() - started,
            }
        )
        return improved

    # -- reporting -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if not self.context.is_main:
            return
        if self.metrics is not None and event["event"] not in PROGRESS_ONLY:
            self.metrics.write(event)
        if self.on_event is not None:
            self.on_event(event)

    def result(self, seconds: float) -> FitResult:
        state = self.state
        return FitResult(
            run_dir=self.run_dir,
            epochs=state.epoch,
            steps=state.step,
            best_epoch=state.best_epoch,
            best_map=state.best_map,
            best_maps=dict(state.best_maps),
            average_tious=list(self.validation.average_tious) if self.validation else [],
            validated=self.validation is not None,
            seconds=seconds,
        )
