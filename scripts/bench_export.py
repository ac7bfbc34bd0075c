"""Benchmark `del export`: eager torch vs ONNX Runtime, one video per forward pass, on CPU.

For each geometry a full-size DEL (the zoo recipe's model, random weights) is
exported to ONNX in a temporary folder; then, in a fresh process, the network
runs on one video of the recipe's `max_seq_len` steps, eager (`DELModel`,
no_grad) and through `OnnxNetwork` (padding to the time multiple and splitting
the levels included), with the same number of threads. Times are the median of
`--repeats` runs after one warm-up, eager and ONNX Runtime taken in turn (a
change of machine load touches both). Prints one table: export time, file size,
time per video, speed-up, and max |Δ| of the logits on valid steps. Target:
ONNX Runtime ≥ 1.3× eager.

    python scripts/bench_export.py [--threads 2] [--repeats 5] [--geometries unav100,thumos14]
        [--work DIR] [--provider cpu|cuda]

`--provider cuda` runs ONNX Runtime's CUDA provider (onnxruntime-gpu) against eager
torch on the GPU; without that provider installed it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from fresh_process import run_worker  # scripts/fresh_process.py


def build(name: str):
    """The recipe and its full-size network with seed-0 random weights."""
    import torch

    from delcli.model.del_model import DELModel
    from delcli.recipe import load_recipe

    recipe = load_recipe(name)
    torch.manual_seed(0)
    return recipe, DELModel(recipe.model).eval()


def export_worker(job: dict) -> dict:
    import logging
    import warnings

    from delcli.export.writers import export_model

    warnings.simplefilter("ignore")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    recipe, model = build(job["geometry"])
    began = time.perf_counter()
    export_model(model, recipe, job["path"], "onnx")
    return {"export_s": time.perf_counter() - began}


def median_seconds(runs: list, repeats: int) -> list[float]:
    """Median time of each of `runs`, taken in turn; one warm-up each."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, taken in zip(runs, times, strict=True):
            began = time.perf_counter()
            run()
            taken.append(time.perf_counter() - began)
    return [statistics.median(taken) for taken in times]


def time_worker(job: dict) -> dict:
    import torch

    from delcli.export.graph import padded_length, time_multiple
    from delcli.export.runtime import OnnxNetwork

    recipe, model = build(job["geometry"])
    config = recipe.model
    length = config.max_seq_len
    generator = torch.Generator().manual_seed(1)
    visual = torch.randn(1, length, config.visual_dim, generator=generator)
    audio = torch.randn(1, length, config.audio_dim, generator=generator)
    mask = torch.ones(1, length, dtype=torch.bool)
    network = OnnxNetwork(job["path"], threads=job["threads"])
    if job.get("provider") == "cuda":
        import onnxruntime as ort

        options = network.session.get_session_options()
        network.session = ort.InferenceSession(job["path"], options, providers=CUDA_PROVIDERS)
        model, visual, audio, mask = (t.cuda() for t in (model, visual, audio, mask))

    def eager():
        with torch.no_grad():
            out = model(visual, audio, mask)
        if visual.is_cuda:
            torch.cuda.synchronize()
        return out

    expected, found = eager(), network(visual, audio, mask)
    diff = max(
        float((e - f)[m].abs().max())
        for e, f, m in zip(expected.cls_logits, found.cls_logits, expected.masks, strict=True)
    )
    eager_s, ort_s = median_seconds([eager, lambda: network(visual, audio, mask)], job["repeats"])
    return {
        "shape": f"1×{length} (ORT {padded_length(length, config)})",
        "multiple": time_multiple(config),
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "eager_ms": 1e3 * eager_s,
        "ort_ms": 1e3 * ort_s,
        "speedup": eager_s / ort_s,
        "diff": diff,
    }


CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def run_job(job: dict) -> dict:
    """`job` in a fresh process with `threads` threads for torch, OpenMP and ONNX Runtime."""
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"])}
    return run_worker(__file__, job, str(job), env)


COLUMNS = {
    "geometry": "geometry",
    "shape": "B×T",
    "multiple": "time multiple",
    "params": "params M",
    "export_s": "export s",
    "size_mb": "ONNX MB",
    "eager_ms": "eager ms/video",
    "ort_ms": "ORT ms/video",
    "speedup": "ORT speed-up",
    "diff": "max |Δ logits|",
}
FORMATS = {"params": "{:.1f}", "export_s": "{:.0f}", "size_mb": "{:.1f}", "eager_ms": "{:.0f}",
           "ort_ms": "{:.0f}", "speedup": "{:.2f}×", "diff": "{:.1e}"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--geometries", default="unav100,thumos14", help="zoo recipes")
    parser.add_argument(
        "--work", type=Path, help="keep the exports here and reuse them (default: a temp folder)"
    )
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        import torch

        torch.set_num_threads(job["threads"])
        worker = export_worker if job["mode"] == "export" else time_worker
        print(json.dumps(worker(job)))
        return

    import onnxruntime
    import torch
    from rich.console import Console

    if (
        args.provider == "cuda"
        and "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    ):
        print(
            "ONNX Runtime's CUDA provider is not installed (pip install onnxruntime-gpu): skipped"
        )
        return
    from rich.table import Table

    rows = []
    with tempfile.TemporaryDirectory(prefix="del-bench-export-") as temporary:
        folder = args.work or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.geometries.split(","):
            job = {"geometry": name, "threads": args.threads, "repeats": args.repeats,
                   "provider": args.provider}  # fmt: skip
            job["path"] = str(folder / f"{name}.onnx")
            row = {"geometry": name, "export_s": None}
            if not Path(job["path"]).is_file():  # a --work folder keeps earlier exports
                row.update(run_job({**job, "mode": "export"}))
            row["size_mb"] = Path(job["path"]).stat().st_size / 1e6
            row.update(run_job({**job, "mode": "time"}))
            rows.append(row)
    table = Table(
        title=f"del export · eager torch {torch.__version__} vs ONNX Runtime "
        f"{onnxruntime.__version__} · {args.provider.upper()}, {args.threads} thread(s), "
        f"median of {args.repeats}"
    )
    for key, title in COLUMNS.items():
        table.add_column(title, justify="left" if key == "geometry" else "right")
    for row in rows:
        cells = [
            "reused" if row[key] is None else FORMATS.get(key, "{}").format(row[key])
            for key in COLUMNS
        ]
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
