"""Extractor networks published on the Hugging Face Hub in the `transformers` layout.

The `dinov2` and `mert` extractors read a model *folder*: `config.json` and one
`model.safetensors`, the layout their authors publish on the Hub. A weights
spec names it as

- a local folder holding both files (or the `.safetensors` file inside it);
- `hf://ORG/NAME[@REVISION]` or a bare repo id `ORG/NAME[@REVISION]`
  (e.g. `facebook/dinov2-base`): both files from the Hugging Face cache, else
  downloaded when allowed (`delcli.hub.download.fetch_repo_file`: fast
  failure, checked against the Hub's checksums; `HF_HUB_OFFLINE` keeps it to
  the cache), both from the same commit;
- a file of a Hub snapshot in the cache (what a zoo manifest's pinned
  `model.safetensors` resolves to): its `config.json` comes from the same commit.

The network is built by `transformers` (the optional extra `hub-features`)
from safetensors only — `use_safetensors=True`, never `trust_remote_code`, so
nothing pickled and no code from the network runs. A repo or folder with only
`pytorch_model.bin` is refused with the converter to run
(`scripts/convert_hub_checkpoint.py`, on a file the user downloaded).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from delcli.errors import ConfigError, WeightsError
from delcli.features.base import Extractor, FeatureGrid
from delcli.features.weights import HF_SCHEME

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PICKLED = ("pytorch_model.bin", "model.bin")
SHARDED = "model.safetensors.index.json"
INSTALL = "pip install 'del-av[hub-features]'"
CONVERT = "scripts/convert_hub_checkpoint.py"
# The options every extractor of this module's networks takes (`HubModelExtractor`).
HUB_MODEL_OPTIONS: dict[str, Any] = {"dtype": "auto", "random_init": False, "seed": 0}


class HubModelExtractor(Extractor):
    """An extractor whose network is a `transformers` model from a weights spec
    (`open_model`): its `option_defaults` end with `HUB_MODEL_OPTIONS`; the `dtype`
    option is checked before any loading and applied by `self.autocast()`."""

    def __init__(
        self, grid: FeatureGrid, weights: str | None = None, device: str = "cpu", **options: Any
    ) -> None:
        super().__init__(grid, weights, device, **options)
        autocast(device, self.options["dtype"])  # validates dtype before any loading

    def autocast(self) -> contextlib.AbstractContextManager:
        """The `dtype` option's autocast on this extractor's device (`autocast`)."""
        return autocast(self.device, self.options["dtype"])


def open_model(
    extractor: str, weights: str | None, random_init: bool, how_to_get: str
) -> tuple[Any, Path | None, dict[str, Any]]:
    """(`transformers`, model folder, its `config.json`) for an extractor's weights
    spec; (`transformers`, None, {}) for `random_init`, which takes no weights.

    The folder is resolved before `transformers` is imported, so a missing file
    fails first."""
    if random_init:
        if weights is not None:
            raise ConfigError(
                f"extractor '{extractor}': give weights= or random_init=True, not both"
            )
        return import_transformers(extractor), None, {}
    if weights is None:
        raise WeightsError(f"the {extractor} extractor needs weights: {how_to_get}")
    folder = resolve_model_folder(weights)
    transformers = import_transformers(extractor)
    return transformers, folder, read_config(folder, weights)


def random_model(model_class: Any, config: Any, seed: int) -> Any:
    """An eval-mode `model_class(config)` initialised from `seed`, leaving the global
    torch RNG as it was (benchmarks only)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config).eval()


def import_transformers(extractor: str) -> Any:
    """The `transformers` module, or a one-line `ConfigError` saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            f"extractor '{extractor}' needs the transformers package: {INSTALL}"
        ) from None
    return transformers


def resolve_model_folder(spec: str) -> Path:
    """The local folder holding `config.json` and `model.safetensors` for `spec`
    (module docstring); `WeightsError` in one line when there is none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return checked_folder(path, spec)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WeightsError(f"{spec}: expected a folder with {CONFIG} and {WEIGHTS}")
        origin = snapshot_origin(path)
        if origin is not None and not (path.parent / CONFIG).exists():
            repo, commit = origin
            _hub_file(repo, CONFIG, commit, spec)
        return checked_folder(path.parent, spec, weights=path.name)
    repo, revision = parse_repo_spec(spec)
    if repo is None:
        raise WeightsError(
            f"{spec}: no such folder (expected a folder with {CONFIG} and {WEIGHTS}, "
            "hf://ORG/NAME[@REVISION] or a Hub repo id ORG/NAME)"
        )
    config = _hub_file(repo, CONFIG, revision, spec)
    commit = config.parent.name  # snapshots/<commit>/config.json: the weights come from it too
    _hub_file(repo, WEIGHTS, commit, spec)
    return config.parent


def parse_repo_spec(spec: str) -> tuple[str | None, str | None]:
    """`hf://ORG/NAME[@REV]` or `ORG/NAME[@REV]` → (repo id, revision); (None, None) when
    `spec` is neither."""
    from delcli.hub.manifest import REPO_ID

    rest = spec[len(HF_SCHEME) :] if spec.startswith(HF_SCHEME) else spec
    revision = None
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
        if not revision or "/" in revision:
            raise WeightsError(f"{spec}: bad revision after '@' (a branch, tag or commit)")
    if not REPO_ID.fullmatch(rest):
        if spec.startswith(HF_SCHEME):
            raise WeightsError(f"{spec}: expected hf://ORG/NAME[@REVISION]")
        return None, None
    return rest, revision


def snapshot_origin(path: Path) -> tuple[str, str] | None:
    """(repo id, commit) of a file in a Hugging Face cache snapshot
    (`models--ORG--NAME/snapshots/<commit>/FILE`), else None."""
    snapshot = path.parent
    repo_folder = snapshot.parent.parent
    if snapshot.parent.name != "snapshots" or not repo_folder.name.startswith("models--"):
        return None
    parts = repo_folder.name[len("models--") :].split("--")
    if len(parts) != 2:
        return None
    return "/".join(parts), snapshot.name


def checked_folder(folder: Path, spec: str, weights: str = WEIGHTS) -> Path:
    """`folder` when it holds `config.json` and the safetensors weights, else why not."""
    if (folder / weights).is_file() and (folder / CONFIG).is_file():
        return folder
    if (folder / SHARDED).exists():
        raise WeightsError(
            f"{spec}: sharded checkpoints ({SHARDED}) are not supported; "
            f"give a folder with one {WEIGHTS}"
        )
    pickled = [name for name in PICKLED if (folder / name).exists()]
    if pickled and not (folder / weights).exists():
        raise WeightsError(
            f"{spec}: only {pickled[0]} (pickle), which del never loads; convert it with "
            f"{CONVERT} {folder / pickled[0]} -o {folder}"
        )
    missing = [name for name in (CONFIG, weights) if not (folder / name).is_file()]
    raise WeightsError(f"{spec}: {', '.join(missing)} missing in {folder}")


def _hub_file(repo: str, file: str, revision: str | None, spec: str) -> Path:
    from delcli.hub.download import fetch_repo_file

    try:
        return fetch_repo_file(repo, file, revision)
    except WeightsError as error:
        fetch_one = f"hf download {repo} {file}"
        if fetch_one in str(error):  # the model needs both files: say so in the hint
            message = str(error).replace(fetch_one, f"hf download {repo} {CONFIG} {WEIGHTS}")
            raise WeightsError(message) from None
        if file == WEIGHTS and "has no file" in str(error):
            raise WeightsError(
                f"{error}; if {repo} publishes only pytorch_model.bin (pickle, never loaded), "
                f"download it yourself and convert it with {CONVERT}"
            ) from None
        raise


def read_config(folder: Path, spec: str) -> dict[str, Any]:
    """`config.json` of a model folder as a dict (`WeightsError` if it is not JSON)."""
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WeightsError(f"{spec}: {CONFIG} is not readable JSON ({error})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{spec}: {CONFIG} is not a JSON object")
    return config


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load reports from `transformers` on stderr (del owns stderr)."""
    from transformers.utils import logging

    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_pretrained(model_class: Any, config: Any, folder: Path, spec: str) -> Any:
    """`model_class` with the folder's safetensors weights, every tensor accounted for.

    Missing, unexpected or misshapen tensors are a `WeightsError` (a checkpoint that
    loads only in part would give plausible-looking but wrong features).
    """
    with quiet_transformers():
        try:
            model, info = model_class.from_pretrained(
                str(folder),
                config=config,
                use_safetensors=True,
                output_loading_info=True,
                local_files_only=True,
            )
        except (OSError, RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise WeightsError(f"{spec}: cannot load {model_class.__name__}: {reason}") from None
    problems = [
        f"{len(info[key])} {label} ({', '.join(sorted(info[key])[:3])})"
        for key, label in (
            ("missing_keys", "missing"),
            ("unexpected_keys", "unexpected"),
            ("mismatched_keys", "misshapen"),
        )
        if info.get(key)
    ]
    if problems:
        raise WeightsError(
            f"{spec}: not a {model_class.__name__} checkpoint: tensors {'; '.join(problems)}"
        )
    return model.eval()


def autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA for `dtype` "auto" or "bfloat16"; float32 otherwise."""
    import torch

    if dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"option dtype={dtype!r}: allowed: auto, float32, bfloat16")
    on_cuda = str(device).startswith("cuda")
    if dtype == "bfloat16" and not on_cuda:
        raise ConfigError("option dtype=bfloat16 runs on CUDA only (use --device cuda)")
    if on_cuda and dtype != "float32":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
