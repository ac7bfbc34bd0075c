"""`del export`: a model as a file other programs run (ONNX, `.pt2`) or plain weights."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path

import typer

from delcli.cli.output import note, stderr_console

EXAMPLES = """
Examples:

  del export --model demo -o demo.onnx

  del export --model runs/unav100 -o unav100.pt2

  del predict --demo --backend onnxruntime --weights demo.onnx
"""


class ExportFormat(str, enum.Enum):
    onnx = "onnx"
    pt2 = "pt2"
    safetensors = "safetensors"


def register(app: typer.Typer) -> None:
    app.command(
        "export",
        help="Export a model's network without decoding and NMS: ONNX (runs in ONNX Runtime, "
        "del predict/eval --backend onnxruntime), a torch.export program (.pt2), or its "
        "weights (.safetensors). Dynamic batch and time axes; the recipe, class list and "
        "feature geometry travel in the file's metadata. Needs pip install "
        "'del-av\\[export]' for ONNX.\n\n" + EXAMPLES,
    )(export_command)


def export_command(
    model: str = typer.Option(
        ...,
        "--model",
        "--weights",
        "-m",
        "-w",
        help="A run directory (best.safetensors, else last), a .safetensors file, or a zoo name.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The file to write (atomically): .onnx, .pt2, .safetensors."
    ),
    output_format: ExportFormat | None = typer.Option(
        None, "--format", "-f", help="onnx, pt2 or safetensors (default: from -o's suffix)."
    ),
    check: bool = typer.Option(
        True,
        "--check/--no-check",
        help="Run the exported graph once and compare it with the eager network.",
    ),
) -> int:
    from delcli.export.writers import export_format, export_model
    from delcli.weights import load_model, resolve_weights

    fmt = export_format(output, output_format.value if output_format else None)
    source = resolve_weights(model)
    network, recipe = load_model(str(source))
    with _quiet_exporter():
        summary = export_model(network, recipe, output, fmt, check=check, progress=_stages(fmt))
    _print_summary(summary, source)
    return 0


def _time_axis(summary) -> str:
    if summary.format == "onnx":
        return f"any length; the graph pads it to a multiple of {summary.time_multiple} itself"
    return f"a multiple of {summary.time_multiple} (pad with mask False)"


def _stages(fmt: str):
    """`progress` for `export_model`: one line on stderr per stage, with the time so far,
    so a long export (minutes on a busy machine) shows where it is."""
    import time

    started = time.perf_counter()
    steps = {"onnx": 2, "pt2": 3, "safetensors": 1}[fmt]
    done = 0

    def stage(text: str) -> None:
        nonlocal done
        done += 1
        note(f"export {min(done, steps)}/{steps}: {text} ({time.perf_counter() - started:.0f} s)")

    return stage


def _print_summary(summary, source: Path) -> None:
    from rich.table import Table

    table = Table(title=f"del export · {summary.format}", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("file", str(summary.path))
    table.add_row("size", f"{summary.size / 1e6:.2f} MB")
    table.add_row("from", str(source))
    if summary.inputs:
        table.add_row("inputs", "; ".join(summary.inputs))
        table.add_row("outputs", "; ".join(summary.outputs))
        table.add_row("time", _time_axis(summary))
    if summary.max_abs_diff is not None:
        table.add_row("check", f"max |Δ| vs eager {summary.max_abs_diff:.2g}")
    table.add_row("took", f"{summary.seconds:.1f} s")
    stderr_console().print(table)
    if summary.format == "onnx":
        note(f"run it: del predict VIDEO --backend onnxruntime --weights {summary.path}")


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporters' warnings and log lines (torchvision missing, deprecations)."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
