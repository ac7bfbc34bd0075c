"""The synthetic benchmark's ablation table: DEL's modules on and off, one row each.

Makes the default synthetic dataset (`del data synth`), trains every row with
`del train synth` (the zoo recipe plus the row's overrides), evaluates each
run's best weights on the test split with `del eval`, and prints one table of
mAP (%) — UnAV-100's protocol, average over tIoU 0.1:0.9. Not part of CI: on 2
CPU cores a row takes about ten minutes.

    python scripts/bench_synth.py [--data data/synth] [--out runs/bench-synth]
                                  [--jobs 2] [--rows "full DEL,aac off"] [--set key=value ...]

`--jobs N` trains N rows at once with one torch thread each (two threads per
process on a loaded 2-core machine make torch spin; keep jobs × threads ≤ cores).
Rows already evaluated in --out are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CONCAT_BASELINE = [
    'data.visual.files=["{video}_rgb.npy","{video}_flow.npy","{video}_vggish.npy"]',
    "data.visual.dim=192", "model.visual_dim=192", "data.audio=null",
    "model.modalities=v", "model.aac=false", "model.n_aac=0", "model.scl=false", "model.pan=false",
]  # fmt: skip
ROWS: dict[str, list[str]] = {
    "full DEL": [],
    "aac off": ["model.aac=false"],
    "scl off": ["model.scl=false"],
    "pan off": ["model.pan=false"],
    "modalities a": ["model.modalities=a"],
    "modalities v": ["model.modalities=v"],
    "n_levels 2": ["model.n_levels=2"],
    "n_levels 4": ["model.n_levels=4"],
    "concat baseline": CONCAT_BASELINE,
}


def slug(row: str) -> str:
    return row.replace(" ", "-")


def run(command: list[str], log: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=handle, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")


def train_and_evaluate(row: str, args: argparse.Namespace, threads: int) -> dict:
    folder = args.out / slug(row)
    result_file = folder / "test_eval.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{slug(row)}.log"
    paths = [
        "--features",
        str(args.data / "features"),
        "--annotations",
        str(args.data / "annotations.json"),
    ]
    overrides = [item for key in ROWS[row] + args.set for item in ("--set", key)]
    resume = ["--resume"] if (folder / "checkpoint").exists() else []
    run([args.del_, "train", "synth", *paths, "--out", str(folder), *resume, *overrides], log,
        threads)  # fmt: skip
    evaluation = folder / "test_eval.tmp"
    with open(evaluation, "w") as handle:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        command = [args.del_, "eval", "--weights", str(folder), *paths, "--split", "test",
                   "--format", "json"]  # fmt: skip
        subprocess.run(command, stdout=handle, stderr=subprocess.DEVNULL, env=env, check=True)
    report = json.loads(evaluation.read_text())
    result_file.write_text(json.dumps(report))
    evaluation.unlink()
    return report


def run_figures(folder: Path) -> tuple[int, float, int]:
    """(numbers in best.safetensors, median training seconds per epoch, best epoch) of a run.

    Seconds per epoch come from metrics.jsonl, so a resumed run counts every epoch once;
    they depend on what else the machine ran (see --jobs)."""
    import math
    import statistics

    from safetensors import safe_open

    with safe_open(folder / "best.safetensors", "pt") as weights:
        size = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())  # noqa: SIM118 (safe_open is not iterable)
    events = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    seconds = statistics.median(e["seconds"] for e in events if e["event"] == "epoch")
    best = max((e for e in events if e["event"] == "eval"), key=lambda e: e["step"])["best_epoch"]
    return size, seconds, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-synth"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--threads", type=int, help="torch threads per row (default cores/jobs)")
    parser.add_argument("--set", action="append", default=[], help="override for every row")
    parser.add_argument("--del", dest="del_", default=str(Path(sys.executable).with_name("del")))
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    if not (args.data / "annotations.json").exists():
        subprocess.run([args.del_, "data", "synth", str(args.data)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)

    def attempt(row: str) -> dict:
        try:
            return train_and_evaluate(row, args, threads)
        except (RuntimeError, subprocess.CalledProcessError) as error:  # one row, not the table
            print(f"{row}: {error}", file=sys.stderr)
            return {"error": str(error)}

    with ThreadPoolExecutor(args.jobs) as pool:
        reports = dict(zip(rows, pool.map(attempt, rows), strict=True))

    from rich.console import Console
    from rich.table import Table

    columns = ["0.1", "0.3", "0.5", "0.7", "0.9"]
    table = Table(title=f"Synthetic benchmark ({args.data}), test split, mAP (%)")
    for name in ("row", *columns, "avg 0.1:0.9", "Δ vs full", "weights M", "s/epoch", "best ep"):
        table.add_column(name, justify="left" if name == "row" else "right")
    full = reports.get("full DEL", {}).get("average_map")  # None when that row failed
    for row, report in reports.items():
        if "error" in report:
            table.add_row(row, *["failed"] + [""] * (len(columns) + 4))
            continue
        average = 100 * report["average_map"]
        delta = f"{average - 100 * full:+.1f}" if full is not None and row != "full DEL" else ""
        size, seconds, best = run_figures(args.out / slug(row))
        table.add_row(row, *(f"{100 * report['map'][c]:.1f}" for c in columns), f"{average:.1f}",
                      delta, f"{size / 1e6:.2f}", f"{seconds:.0f}", str(best))  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
