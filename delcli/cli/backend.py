"""`--backend` of `del predict` and `del eval`: which runtime runs the network."""

from __future__ import annotations

import enum
from pathlib import Path

from delcli.errors import ConfigError

BACKEND_HELP = (
    "torch runs the weights (.safetensors, run directory, zoo name); onnxruntime runs an "
    ".onnx file written by del export, on the CPU (needs pip install 'del-av\\[export]')."
)


class Backend(str, enum.Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"


def load_network(spec: str, backend: Backend, device: str):
    """The network, its recipe and the file it came from, for `--weights spec`."""
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
