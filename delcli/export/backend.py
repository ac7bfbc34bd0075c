"""Which runtime runs the network: torch (the trained weights) or ONNX Runtime (an
`.onnx` file written by `del export`).

Both give an object that `predict_dataset`, `detect_events` and `evaluate_model`
call alike, with the recipe it was trained from. Importing this module imports
neither torch nor onnxruntime: the command line builds its options from `Backend`.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

from delcli.errors import ConfigError

if TYPE_CHECKING:
    from delcli.export.runtime import OnnxNetwork
    from delcli.model.del_model import DELModel
    from delcli.recipe import Recipe


class Backend(str, enum.Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"


def load_network(
    spec: str, backend: Backend, device: str
) -> tuple[DELModel | OnnxNetwork, Recipe, Path]:
    """The network, its recipe and the file it came from, for `--weights spec`.

    `spec` is a run directory, a `.safetensors` file or a zoo name for torch; an
    `.onnx` file for ONNX Runtime, which runs on the CPU only.
    """
    if backend is Backend.onnxruntime:
        from delcli.export.runtime import load_onnx_network

        if device != "cpu":
            raise ConfigError(f"--backend onnxruntime runs on the CPU; drop --device {device}")
        network = load_onnx_network(spec)
        return network, network.recipe, network.path
    from delcli.weights import load_model, resolve_weights

    source = resolve_weights(spec)
    model, recipe = load_model(str(source), device=device)
    return model, recipe, Path(source)
