"""Model weights on disk: safetensors with the recipe inside.

A weights file is self-describing: its safetensors metadata holds
`"format": "del-weights-1"` and `"recipe"`, the JSON of the resolved recipe, so
`load_model` rebuilds the exact network without any other file. Files are
written atomically (temp file + rename) with mode 0644, and only safetensors is
ever read (never pickle).

A weights *spec* on the command line is a run directory (`best.safetensors`,
else `last.safetensors`), a file, or a zoo recipe name (published weights come
through `delcli.hub`, packaged ones from the package, and an unpublished one
says how to train it).
"""

from __future__ import annotations

import difflib
import errno
import json
from pathlib import Path
from typing import TYPE_CHECKING

from delcli.errors import ConfigError, WeightsError
from delcli.files import atomic_path
from delcli.recipe import Recipe, load_recipe, recipe_to_dict, zoo_names

if TYPE_CHECKING:
    from torch import Tensor

    from delcli.model.del_model import DELModel

FORMAT = "del-weights-1"
RESERVED_KEYS = ("format", "recipe")
NORMALIZATION_PREFIXES = ("norm_visual.", "norm_audio.")  # DELModel's input normalisation
RUN_DIR_FILES = ("best.safetensors", "last.safetensors")
EXPORTED_SUFFIXES = {
    ".onnx": "an exported ONNX model, not weights; run it with --backend onnxruntime",
    ".pt2": "an exported torch.export program, not weights (torch.export.load reads it); "
    "del reads .safetensors weights",
}


def save_weights(
    path: Path | str,
    state_dict: dict[str, Tensor],
    recipe: Recipe,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write `state_dict` and `recipe` to a safetensors file, atomically (`atomic_path`).

    Args:
        path: destination; its folder must exist.
        state_dict: tensors by name (copied to CPU; shared storage is fine).
        recipe: stored as JSON in the metadata entry `recipe`.
        metadata: extra string entries (e.g. `epoch`, `step`); `format` and `recipe`
            are reserved.
    """
    extra = dict(metadata or {})
    clash = [key for key in RESERVED_KEYS if key in extra]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError("metadata keys and values must be strings")
    entries = {"format": FORMAT, "recipe": json.dumps(recipe_to_dict(recipe)), **extra}
    # clone(): safetensors refuses tensors that share storage (tied or sliced weights).
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state_dict.items()}

    with atomic_path(path) as temporary:
        write_safetensors(tensors, temporary, entries)


def write_safetensors(
    tensors: dict[str, Tensor], path: Path | str, metadata: dict[str, str] | None = None
) -> None:
    """safetensors' `save_file`, with its I/O errors (a full disk) raised as `OSError`."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, path, metadata=metadata)
    except SafetensorError as error:
        raise OSError(errno.EIO, f"cannot write ({error})", str(path)) from error


def load_weights(path: Path | str) -> tuple[dict[str, Tensor], Recipe, dict[str, str]]:
    """Tensors, recipe and metadata of a weights file (tensors on the CPU).

    The returned metadata holds every entry except `recipe` (returned parsed).
    Anything that is not a readable del weights file is a one-line `WeightsError`.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        raise WeightsError(f"{path}: {EXPORTED_SUFFIXES[path.suffix.lower()]}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: not a safetensors file, or corrupt ({reason})") from None
    _check_finite(tensors, path)

    found = metadata.get("format")
    if found is None:
        raise WeightsError(
            f"{path}: a safetensors file without del metadata (no 'format'; expected {FORMAT})"
        )
    if found != FORMAT:
        raise WeightsError(f"{path}: weights format '{found}' is not readable (expected {FORMAT})")
    try:
        recipe = load_recipe(json.loads(metadata.pop("recipe")))
    except KeyError:
        raise WeightsError(f"{path}: no 'recipe' in the metadata") from None
    except json.JSONDecodeError as error:
        raise WeightsError(f"{path}: the stored recipe is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise WeightsError(
            f"{path}: the stored recipe is not valid JSON (nested too deeply)"
        ) from None
    except ConfigError as error:
        raise WeightsError(f"{path}: the stored recipe does not load: {error}") from None
    return tensors, recipe, metadata


def _check_finite(tensors: dict[str, Tensor], path: Path) -> None:
    """`WeightsError` naming the first tensor that holds NaN or ±inf: such weights give
    no events (or garbage) without any error of their own."""
    import torch

    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(
                f"{path}: tensor '{name}' holds {bad} NaN or infinite value(s) of "
                f"{tensor.numel()}; these weights are unusable (a diverged run?)"
            )


def packaged_weights(name: str) -> Path | None:
    """Weights that ship inside the package (`delcli/resources/<name>/<name>.safetensors`),
    e.g. the offline `demo` model; None when there are none."""
    if not name.isidentifier():
        return None
    from delcli.resources import resource_path

    path = resource_path(f"{name}/{name}.safetensors")
    return path if path.is_file() else None


def resolve_weights(spec: str, download: bool = True) -> Path:
    """The weights file meant by `spec`: a run directory, a file, or a zoo name.

    A zoo name means its packaged weights, or its published ones: from the
    Hugging Face cache, else downloaded (unless `download` is False or
    HF_HUB_OFFLINE is set), verified by sha256 (`delcli.hub.download.fetch`).
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        for name in RUN_DIR_FILES:
            if (path / name).is_file():
                return path / name
        present = sorted(p.name for p in path.iterdir())
        listing = ", ".join(present[:8]) + (", …" if len(present) > 8 else "") or "nothing"
        raise WeightsError(
            f"{path}: no {' or '.join(RUN_DIR_FILES)} in this folder (it holds: {listing})"
        )
    if path.is_file():
        return path
    names = zoo_names()
    packaged = packaged_weights(spec)
    if packaged is not None:
        return packaged
    if spec in names:
        manifest = load_recipe(spec).weights
        if manifest is not None and manifest.status == "published":
            from delcli.hub.download import fetch

            return fetch(manifest, allow_download=download, name=spec)
        if manifest is not None and manifest.status == "packaged":
            raise WeightsError(
                f"the weights of '{spec}' should ship with del (delcli/resources/{spec}/"
                f"{spec}.safetensors) but this installation lacks them; reinstall del"
            )
        raise WeightsError(
            f"weights for '{spec}' are not published yet; "
            f"train them with: del train {spec} --features DIR"
        )
    if "/" in spec or path.suffix:
        raise WeightsError(f"{spec}: no such file or directory")
    close = difflib.get_close_matches(spec, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise WeightsError(
        f"'{spec}' is not a run directory, a weights file or a zoo name{hint}; "
        f"zoo: {', '.join(names)}"
    )


def load_model(spec: str, device: str = "cpu") -> tuple[DELModel, Recipe]:
    """The network described and filled by the weights `spec` points to, in eval mode."""
    from delcli.model.del_model import DELModel

    path = resolve_weights(spec)
    tensors, recipe, _ = load_weights(path)
    model = DELModel(recipe.model)
    expected = model.state_dict()
    tensors = with_identity_normalization(expected, tensors)
    check_state_dict(expected, tensors, path)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), recipe


def with_identity_normalization(
    expected: dict[str, Tensor], found: dict[str, Tensor]
) -> dict[str, Tensor]:
    """`found`, plus the model's identity input normalisation where a file written before
    normalisation existed has no statistics (it was trained on raw features)."""
    missing = {
        name: tensor
        for name, tensor in expected.items()
        if name.startswith(NORMALIZATION_PREFIXES) and name not in found
    }
    return {**found, **missing} if missing else found


def check_state_dict(expected: dict[str, Tensor], found: dict[str, Tensor], path: Path) -> None:
    """`WeightsError` naming the first missing, unexpected or misshapen tensors."""

    def first(names: list[str]) -> str:
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more

    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing {first(missing)}")
    if unexpected:
        problems.append(f"unexpected {first(unexpected)}")
    if problems:
        raise WeightsError(
            f"{path}: the weights do not fit the model of their recipe: {'; '.join(problems)}"
        )
    for name, tensor in expected.items():
        if tuple(found[name].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{path}: tensor '{name}' has shape {tuple(found[name].shape)}; "
                f"the recipe's model needs {tuple(tensor.shape)}"
            )
