"""Benchmark `del train`'s loop: videos/s, where a step's time goes, peak memory.

Runs the training loop of `delcli.train.engine.fit` (the code `del train` runs) on a
features folder for a few optimizer steps, in a fresh process per row and round
(rounds alternate the rows, so a drift of the machine hits every row alike), and
prints one table. A step's time is split by timers around the loop's own calls:
forward (network + every loss term), backward, gradient clipping, optimizer step
(AdamW, schedule, EMA); "data + rest" is what remains (loading and collating the
batch, logging). Peak RSS is the process's, setup included, validation excluded
(the run stops before it).

    del data synth DATA --like delcli/resources/annotations/unav100/unav100_annotations.json.gz \\
        --geometry unav100 --max-videos 1000
    python scripts/bench_train.py --data DATA [--recipe unav100] [--threads 2] \\
        [--steps 30] [--skip 5] [--rounds 2] [--rows "default,activation checkpointing"] \\
        [--set model.embed_dim=128 --set train.batch_size=8]

The defaults are the issue's training setting: the UnAV-100 recipe at d = 128, batch 8.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from fresh_process import run_worker  # scripts/fresh_process.py

ROWS: dict[str, list[str]] = {
    "default": [],
    "activation checkpointing": ["train.activation_checkpointing=true"],
    "per-tensor AdamW": [],  # torch's default AdamW loop instead of the fused kernel
}
DEFAULT_SET = ["model.embed_dim=128", "train.batch_size=8"]
PIECES = ("forward", "backward", "clip", "optimizer")


def worker(job: dict) -> dict:
    import resource

    import torch

    from delcli.recipe import load_recipe, with_data_paths
    from delcli.train import engine, state

    torch.set_num_threads(job["threads"])
    data = Path(job["data"])
    annotations = next(p for p in (data / "annotations.json", data / "annotations.json.gz"))
    recipe = load_recipe(job["recipe"], job["overrides"])
    recipe = with_data_paths(recipe, data / "features", annotations, absolute=True)
    spent: dict[str, list[float]] = {piece: [] for piece in PIECES}

    def sync() -> None:  # CUDA runs asynchronously: time what the GPU did
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def timed(piece: str, function):
        def wrapper(*args, **kwargs):
            sync()
            began = time.perf_counter()
            out = function(*args, **kwargs)
            sync()
            spent[piece].append(time.perf_counter() - began)
            return out

        return wrapper

    engine.TrainingObjective.forward = timed("forward", engine.TrainingObjective.forward)
    torch.Tensor.backward = timed("backward", torch.Tensor.backward)
    torch.nn.utils.clip_grad_norm_ = timed("clip", torch.nn.utils.clip_grad_norm_)
    state.TrainingState.optimizer_step = timed("optimizer", state.TrainingState.optimizer_step)
    if job["row"] == "per-tensor AdamW":
        original = state.make_optimizer

        def per_tensor(model, config):
            optimizer = original(model, config)
            for group in optimizer.param_groups:
                group["fused"] = False
            optimizer.defaults["fused"] = False
            return optimizer

        state.make_optimizer = per_tensor

    stamps: list[float] = []

    class Enough(Exception):
        """Raised from the step event: the run stops before it validates or saves."""

    def on_event(event: dict) -> None:
        if event["event"] == "step":
            stamps.append(time.perf_counter())
            if len(stamps) == job["steps"]:
                raise Enough

    with tempfile.TemporaryDirectory() as folder, contextlib.suppress(Enough):
        engine.fit(recipe, Path(folder) / "run", on_event=on_event)
    skip = job["skip"]
    steps = [b - a for a, b in zip(stamps[skip:], stamps[skip + 1 :], strict=False)]
    # the step that ends at stamps[i] ran its pieces as call i (0-based)
    window = slice(skip + 1, skip + 1 + len(steps))
    return {
        "step_s": statistics.median(steps),
        "pieces_s": {p: statistics.median(spent[p][window]) for p in PIECES},
        "batch": recipe.train.batch_size,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a folder of `del data synth` (required)")
    parser.add_argument("--recipe", default="unav100")
    parser.add_argument("--set", action="append", default=None, help="recipe override")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--skip", type=int, default=5, help="first steps not timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", default="default,activation checkpointing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if not args.data:
        parser.error("--data is required")
    if args.steps < args.skip + 3:
        parser.error("--steps must exceed --skip by at least 3")
    rows = args.rows.split(",")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")

    from rich.console import Console
    from rich.table import Table

    overrides = args.set if args.set is not None else DEFAULT_SET
    results: dict[str, list[dict]] = {row: [] for row in rows}
    for _ in range(args.rounds):
        for row in rows:
            job = {
                "row": row,
                "data": args.data,
                "recipe": args.recipe,
                "overrides": [*overrides, *ROWS[row]],
                "threads": args.threads,
                "steps": args.steps,
                "skip": args.skip,
            }
            results[row].append(run_worker(__file__, job, row))

    title = (
        f"del train loop: {args.recipe} {' '.join(overrides)}, {args.threads} thread(s), "
        f"steps {args.skip + 1}–{args.steps} of {args.rounds} alternating run(s) per row"
    )
    table = Table(title=title)
    for column in ("row", "videos/s", "step ms", *(f"{p} ms" for p in PIECES)):
        table.add_column(column, justify="left" if column == "row" else "right")
    table.add_column("data + rest ms", justify="right")
    table.add_column("peak RSS MiB", justify="right")
    for row, runs in results.items():

        def cells(value, runs=runs) -> str:
            return ", ".join(value(run) for run in runs)

        table.add_row(
            row,
            cells(lambda r: f"{r['batch'] / r['step_s']:.2f}"),
            cells(lambda r: f"{r['step_s'] * 1000:.0f}"),
            *(cells(lambda r, p=p: f"{r['pieces_s'][p] * 1000:.0f}") for p in PIECES),
            cells(lambda r: f"{(r['step_s'] - sum(r['pieces_s'].values())) * 1000:.0f}"),
            cells(lambda r: f"{r['peak_mib']:,.0f}"),
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
