"""Extractor weights: a local safetensors file or a file in the Hugging Face cache.

A spec is either a path (`vggish.safetensors`) or `hf://ORG/NAME/FILE[@REVISION]`
(revision: a branch, tag or commit; default `main`). Hub files come from the
Hugging Face cache — `HF_HUB_CACHE`, else `HF_HOME`/hub, else the default, read
when called — and, when they are not there, from the Hub (`HF_ENDPOINT`)
unless `HF_HUB_OFFLINE` is set: `delcli.hub.download.fetch_repo_file`, which
probes the endpoint first so that an unreachable Hub fails at once, and checks
the file against the checksum the Hub announced. Offline, a missing file fails
at once with a one-line message that says how to fetch it. Only safetensors is
read, never a pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from delcli.errors import WeightsError
from delcli.hub.download import fetch_repo_file

if TYPE_CHECKING:
    from torch import Tensor

HF_SCHEME = "hf://"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")


def parse_hf_spec(spec: str) -> tuple[str, str, str | None]:
    """`hf://ORG/NAME/FILE[@REVISION]` → (repo id, file in the repo, revision or None)."""
    rest = spec[len(HF_SCHEME) :]
    revision = None
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
        if not revision or "/" in revision:
            raise WeightsError(f"{spec}: bad revision after '@' (a branch, tag or commit)")
    parts = rest.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise WeightsError(f"{spec}: expected hf://ORG/NAME/FILE[@REVISION]")
    org, name, filename = parts
    return f"{org}/{name}", filename, revision


def resolve_weights_file(spec: str) -> Path:
    """The local file a weights spec points to; `WeightsError` if there is none."""
    if spec.startswith(HF_SCHEME):
        return _from_hub_cache(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise WeightsError(f"{spec}: no such file")
    if not path.is_file():
        raise WeightsError(f"{spec}: not a file")
    return path


def _from_hub_cache(spec: str) -> Path:
    repo, filename, revision = parse_hf_spec(spec)
    return fetch_repo_file(repo, filename, revision)


def load_extractor_weights(spec: str) -> dict[str, Tensor]:
    """Tensors (on the CPU) of the safetensors file `spec` names.

    Raises `WeightsError` (one line) for a missing file, a hub file not in the
    cache, and anything that is not a readable safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = resolve_weights_file(spec)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = ""
        if path.suffix.lower() in PICKLE_SUFFIXES or spec.lower().endswith(PICKLE_SUFFIXES):
            hint = (
                "; del never loads pickled checkpoints: convert it to safetensors first "
                "(scripts/convert_vggish.py for torchvggish)"
            )
        raise WeightsError(f"{spec}: not a safetensors file, or corrupt ({reason}){hint}") from None
