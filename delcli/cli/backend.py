"""`--backend` of `del predict` and `del eval`: its help (the choice is
`delcli.export.backend.Backend`)."""

from __future__ import annotations

BACKEND_HELP = (
    "torch runs the weights (.safetensors, run directory, zoo name); onnxruntime runs an "
    ".onnx file written by del export, on the CPU (needs pip install 'del-av\\[export]')."
)
