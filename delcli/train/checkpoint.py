"""The resume state of a run: `RUN_DIR/checkpoint/`, replaced atomically every epoch.

    checkpoint/model.safetensors   the trained weights
    checkpoint/ema.safetensors     the EMA weights (absent when the EMA is off)
    checkpoint/state.pt            optimizer, scheduler, RNG states, epoch, step, best score

The folder is written under a temporary name and swapped in with renames, so
an interrupted save leaves the previous checkpoint whole. A resumed run keeps
its recipe (`check_same_recipe`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from delcli.errors import ConfigError, WeightsError
from delcli.recipe import Recipe, load_recipe, recipe_to_dict
from delcli.weights import write_safetensors

CHECKPOINT = "checkpoint"
_TEMPORARY = "checkpoint.tmp"
_PREVIOUS = "checkpoint.old"


def save_checkpoint(
    run_dir: Path,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor] | None,
    state: dict,
) -> Path:
    """Write the resume state; returns the checkpoint folder."""
    run_dir = Path(run_dir)
    temporary, final, previous = (run_dir / n for n in (_TEMPORARY, CHECKPOINT, _PREVIOUS))
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        write_safetensors(_plain(model_state), temporary / "model.safetensors")
        if ema_state is not None:
            write_safetensors(_plain(ema_state), temporary / "ema.safetensors")
        torch.save(state, temporary / "state.pt")
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    temporary.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    return final


def checkpoint_folder(run_dir: Path) -> Path | None:
    """The complete checkpoint of `run_dir`, if any (a save interrupted between its two
    renames leaves the previous one as `checkpoint.old`)."""
    for name in (CHECKPOINT, _PREVIOUS):
        folder = Path(run_dir) / name
        if (folder / "state.pt").is_file() and (folder / "model.safetensors").is_file():
            return folder
    return None


def load_checkpoint(
    run_dir: Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict]:
    """Model weights, EMA weights (or None) and the state dict saved by `save_checkpoint`."""
    folder = checkpoint_folder(run_dir)
    if folder is None:
        raise WeightsError(f"{run_dir}: no checkpoint to resume from ({CHECKPOINT}/ is missing)")
    try:
        model_state = load_file(folder / "model.safetensors", device=str(device))
        ema_path = folder / "ema.safetensors"
        ema_state = load_file(ema_path, device=str(device)) if ema_path.is_file() else None
        # RNG states must stay on the CPU; the optimizer moves its state to the parameters.
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file: the same user problem
        raise WeightsError(f"{folder}: unreadable checkpoint ({error})") from None
    return model_state, ema_state, state


def check_same_recipe(recipe: Recipe, run_dir: Path) -> None:
    """`ConfigError` naming the first key where `recipe` differs from the run's config.yaml."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return
    from delcli.settings import read_yaml

    saved, given = with_defaults(read_yaml(path)), json.loads(json.dumps(recipe_to_dict(recipe)))
    saved.pop("weights", None)  # where weights are published is not part of training
    given.pop("weights", None)
    if given["data"].get("classes") is None:  # left open: the run pinned the data's classes
        given["data"]["classes"] = saved.get("data", {}).get("classes")
        given["model"]["num_classes"] = saved.get("model", {}).get("num_classes")
    difference = _first_difference(saved, given)
    if difference is not None:
        key, before, now = difference
        raise ConfigError(
            f"--resume: {key} is {now!r} here but {before!r} in {path}; "
            "a resumed run keeps its recipe"
        )


def with_defaults(saved: dict) -> dict:
    """A run's saved config with the settings added since it was written at their
    defaults, so a run made by an older `del` resumes (left as saved if it does not load)."""
    try:
        return json.loads(json.dumps(recipe_to_dict(load_recipe(saved))))
    except ConfigError:  # an unloadable file is compared as it is
        return saved


def _first_difference(saved, given, key: str = ""):
    """(dotted key, saved value, given value) of the first difference, or None."""
    if isinstance(saved, dict) and isinstance(given, dict):
        for name in list(saved) + [n for n in given if n not in saved]:
            found = _first_difference(saved.get(name), given.get(name), f"{key}.{name}".strip("."))
            if found is not None:
                return found
        return None
    if isinstance(saved, list | tuple) and isinstance(given, list | tuple):
        saved, given = list(saved), list(given)
    return None if saved == given else (key, saved, given)


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors wants contiguous tensors that share no memory."""
    return {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
