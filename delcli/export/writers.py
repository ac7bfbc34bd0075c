"""Write a DEL network as a file other programs run: ONNX, `.pt2`, or safetensors.

- `onnx`: the network of `delcli.export.graph` (no decoding, no NMS) traced once
  with concrete tensors (`delcli.export.onnx_trace`, opset 23, seconds), dynamic
  batch and time axes, the padding to the time multiple in front of the graph
  (`delcli.export.onnx_pad`), metadata in `metadata_props`
  (`delcli.export.metadata`). The file is checked (`onnx.checker`) and run with
  ONNX Runtime on batch sizes and lengths the trace never saw; a result off the
  eager network is an `ExportError`.
- `pt2`: the same graph as a `torch.export` program (`torch.export.load` runs it),
  the metadata in the extra file `del_export.json`.
- `safetensors`: the weights with their recipe (`delcli.weights`), what `del
  predict --weights` reads.

Every file is written to a temporary name beside the target and renamed, so a
failed export never leaves a half-written file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from delcli.errors import ConfigError, ExportError
from delcli.files import atomic_path

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from delcli.model.del_model import DELModel
    from delcli.recipe import Recipe

FORMATS = ("onnx", "pt2", "safetensors")
PARITY_TOLERANCE = 1e-3
"""Largest |ONNX Runtime − eager| accepted by the check after export, relative to the
outputs' scale (at least 1); float32 kernels differ by about 1e-6."""
INSTALL_HINT = "pip install 'del-av[export]'"


@dataclass(frozen=True)
class ExportSummary:
    """What `export_model` wrote."""

    path: Path
    format: str
    size: int  # bytes
    inputs: list[str]  # "name (shape)"
    outputs: list[str]
    time_multiple: int | None  # None for safetensors (no graph)
    seconds: float
    max_abs_diff: float | None  # of the check after export


def export_format(path: Path, requested: str | None) -> str:
    """The format to write: `requested`, else the one `path`'s suffix names."""
    if requested is not None:
        if requested not in FORMATS:
            raise ConfigError(f"--format {requested}: allowed: {', '.join(FORMATS)}")
        return requested
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise ConfigError(
        f"-o {path}: cannot tell the format from the suffix '{path.suffix}'; name it "
        f".onnx, .pt2 or .safetensors, or give --format {'|'.join(FORMATS)}"
    )


def export_model(
    model: DELModel,
    recipe: Recipe,
    path: Path | str,
    fmt: str,
    check: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Write `model` (with `recipe`) to `path` in format `fmt`; see the module docstring.
    `progress(stage)` is called as each stage starts ("tracing the network with
    torch.export", …)."""
    progress = progress or (lambda stage: None)
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"-o {path}: folder {path.parent} does not exist")
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}: allowed: {', '.join(FORMATS)}")
    started = time.perf_counter()
    if fmt == "safetensors":
        return _write_safetensors(model, recipe, path, started)
    if fmt == "onnx":
        _require("onnx", "onnxruntime")
        diff = _write_onnx(model, recipe, path, check, progress)
        return _summary(path, fmt, recipe, started, diff)
    from delcli.export.graph import export_program

    progress("tracing the network with torch.export")
    try:
        program = export_program(model)
    except Exception as error:
        raise ExportError(f"torch.export failed: {_first_line(error)}") from error
    if check:
        progress("checking the program against the eager network")
    diff = _check_pt2(program, model) if check else None
    progress("writing")
    _write_pt2(program, recipe, path)
    return _summary(path, fmt, recipe, started, diff)


# -- formats ---------------------------------------------------------------------------------


def _write_safetensors(model: DELModel, recipe: Recipe, path: Path, started: float):
    from delcli import __version__
    from delcli.weights import save_weights

    save_weights(path, model.state_dict(), recipe, metadata={"exported_by": f"del {__version__}"})
    return ExportSummary(
        path, "safetensors", path.stat().st_size, [], [], None, time.perf_counter() - started, None
    )


def _write_pt2(program, recipe: Recipe, path: Path) -> None:
    import torch

    from delcli.export.metadata import EXTRA_FILE, export_metadata

    extra = {EXTRA_FILE: json.dumps(export_metadata(recipe))}
    with atomic_path(path) as temporary:
        torch.export.save(program, temporary, extra_files=extra)


def _write_onnx(model: DELModel, recipe: Recipe, path: Path, check: bool, progress) -> float | None:
    import onnx

    from delcli.export.metadata import export_metadata
    from delcli.export.onnx_pad import pad_time_axis
    from delcli.export.onnx_trace import OPSET, trace_onnx

    progress(f"tracing the network to ONNX (opset {OPSET})")
    try:
        proto = trace_onnx(model)
    except Exception as error:
        raise ExportError(f"the ONNX exporter failed: {_first_line(error)}") from error
    pad_time_axis(proto, model.config)
    for key, value in export_metadata(recipe).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    progress("writing and checking the ONNX file" + (" with ONNX Runtime" if check else ""))
    with atomic_path(path) as temporary:
        onnx.save(proto, temporary)
        try:
            onnx.checker.check_model(temporary)
        except onnx.checker.ValidationError as error:
            raise ExportError(f"the exported ONNX model is invalid: {_first_line(error)}") from None
        return _check_onnx(temporary, model) if check else None


# -- checks ----------------------------------------------------------------------------------


def _check_inputs(model: DELModel) -> list[tuple[torch.Tensor, ...]]:
    """Inputs the trace never saw (it ran on two videos of `min_steps`): two videos one
    time multiple longer, the second half padding; and one video three multiples longer."""
    from delcli.export.graph import example_inputs, min_steps, time_multiple

    config = model.config
    longer = min_steps(config) + time_multiple(config)
    return [
        example_inputs(config, 2, longer),
        example_inputs(config, 1, longer + 2 * time_multiple(config)),
    ]


def _compare(expected: list, found: list, what: str) -> float:
    import numpy as np

    diff = max(float(np.abs(e - f).max()) for e, f in zip(expected, found, strict=True))
    scale = max(1.0, *(float(np.abs(e).max()) for e in expected))
    if not diff <= PARITY_TOLERANCE * scale:  # NaN fails too
        raise ExportError(
            f"{what} differs from the eager network by {diff:.3g} "
            f"(tolerance {PARITY_TOLERANCE * scale:.3g}); the export is not faithful"
        )
    return diff


def _check_onnx(path: str, model: DELModel) -> float:
    from delcli.export.runtime import ort_session

    session = ort_session(path)
    names = [i.name for i in session.get_inputs()]

    def run(inputs) -> list:
        try:
            return session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})
        except Exception as error:  # onnxruntime raises its own exception types
            message = f"ONNX Runtime cannot run the export: {_first_line(error)}"
            raise ExportError(message) from error

    return _check_against_eager(model, run, "ONNX Runtime's output")


def _check_pt2(program, model: DELModel) -> float:
    module = program.module()
    return _check_against_eager(
        model, lambda inputs: [t.numpy() for t in module(*inputs)], "the exported program's output"
    )


def _check_against_eager(model: DELModel, run, what: str) -> float:
    """Largest difference between `run(inputs)` and the eager network over `_check_inputs`;
    an `ExportError` past the tolerance."""
    import torch

    from delcli.export.graph import ExportGraph

    eager = ExportGraph(model)  # one copy of the network for every check input
    diffs = []
    with torch.no_grad():
        for inputs in _check_inputs(model):
            expected = [t.numpy() for t in eager(*inputs)]
            diffs.append(_compare(expected, run(inputs), what))
    return max(diffs)


# -- helpers ---------------------------------------------------------------------------------


def _summary(path: Path, fmt: str, recipe: Recipe, started: float, diff: float | None):
    from delcli.export.graph import OUTPUT_NAMES, input_names, time_multiple

    model = recipe.model
    dims = {"visual": model.visual_dim, "audio": model.audio_dim}
    inputs = [
        f"{name} (batch, time{', ' + str(dims[name]) if name in dims else ''})"
        for name in input_names(model)
    ]
    channels = {"cls_logits": model.num_classes, "offsets": 2}
    outputs = [f"{name} (batch, points, {channels[name]})" for name in OUTPUT_NAMES]
    return ExportSummary(
        path,
        fmt,
        path.stat().st_size,
        inputs,
        outputs,
        time_multiple(model),
        time.perf_counter() - started,
        diff,
    )


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {' and '.join(missing)}: {INSTALL_HINT}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
