"""What a run trains and checkpoints: the network, its EMA, the optimiser and the
learning-rate schedule, and how far the run got (epoch, step, best validation score).

`save` writes the run's weights files and its resume state after every epoch;
`restore` puts a run back exactly where its checkpoint left it, RNG states included
(the checkpoint folder itself is `checkpoint.py`'s). The training loop (`engine.py`)
decides when; this module decides what.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from delcli.errors import ConfigError
from delcli.recipe import Recipe, TrainConfig
from delcli.train.checkpoint import load_checkpoint, save_checkpoint
from delcli.train.ema import ModelEMA
from delcli.train.optim import make_optimizer, make_schedule
from delcli.train.seeding import restore_rng_state, rng_state


class TrainingState:
    """The trained objects of one run and its counters; see the module docstring."""

    def __init__(self, model: nn.Module, config: TrainConfig, steps_per_epoch: int) -> None:
        self.model = model
        self.ema = ModelEMA(model, config.ema_decay) if config.ema_decay > 0 else None
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_schedule(self.optimizer, config, steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps completed
        self.best_map: float | None = None
        self.best_epoch: int | None = None
        self.best_maps: dict[str, float] = {}

    @property
    def evaluation_model(self) -> nn.Module:
        """The weights that are validated and saved: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def optimizer_step(self) -> None:
        """Apply the gradients: optimiser, schedule and EMA each take their step."""
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1

    def record(self, maps: dict[str, float], average: float) -> bool:
        """Keep this epoch's validation score; True when it is the best so far."""
        improved = self.best_map is None or average > self.best_map
        if improved:
            self.best_map, self.best_epoch, self.best_maps = average, self.epoch, maps
        return improved

    def save(self, run_dir: Path, recipe: Recipe, best: bool) -> None:
        """`last.safetensors` (and `best.safetensors` when `best`) with the evaluation
        weights, then the resume state."""
        from delcli.weights import save_weights

        weights = self.evaluation_model.state_dict()
        metadata = {"epoch": str(self.epoch), "step": str(self.step)}
        if self.best_epoch == self.epoch and self.best_map is not None:
            metadata["average_map"] = repr(self.best_map)
        save_weights(run_dir / "last.safetensors", weights, recipe, metadata)
        if best:
            save_weights(run_dir / "best.safetensors", weights, recipe, metadata)
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "best_map": self.best_map,
            "best_epoch": self.best_epoch,
            "best_maps": dict(self.best_maps),
        }
        save_checkpoint(
            run_dir,
            self.model.state_dict(),
            self.ema.state_dict() if self.ema is not None else None,
            state,
        )

    def restore(self, run_dir: Path, device: torch.device) -> None:
        """Everything as `save` left it; `ConfigError` when the training split changed."""
        from delcli.weights import with_identity_normalization

        model_state, ema_state, state = load_checkpoint(run_dir, device)
        expected = self.model.state_dict()  # a run from before input normalisation: identity
        model_state = with_identity_normalization(expected, model_state)
        if ema_state is not None:
            ema_state = with_identity_normalization(expected, ema_state)
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise ConfigError(
                f"--resume: the training split now gives {self.steps_per_epoch} steps per epoch, "
                f"the checkpoint {state['steps_per_epoch']}; the data changed"
            )
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            self.ema.load_state_dict(ema_state if ema_state is not None else model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_map, self.best_epoch = state["best_map"], state["best_epoch"]
        self.best_maps = dict(state["best_maps"])
        restore_rng_state(state["rng"])
