"""The synthetic benchmark's ablation table: DEL's modules on and off, one row each.

Makes the default synthetic dataset (`del data synth`) unless --data holds one,
trains every row × seed with `del train synth` (the zoo recipe, the data's
feature sizes from its synth.json, the row's overrides, `train.seed`),
evaluates each run's best weights on the test split with `del eval`, and
prints one table of mAP (%) — UnAV-100's protocol, average over tIoU 0.1:0.9 —
as mean ± std over the seeds, with the average per evidence type of the
classes (audio-only, visual-only, both, conjunction). Not part of CI: on 2 CPU
cores a run takes about ten minutes.

    python scripts/bench_synth.py [--data data/synth] [--out runs/bench-synth]
                                  [--jobs 2] [--seeds 0,1,2]
                                  [--rows "full DEL,aac off"] [--set key=value ...]

`--jobs N` trains N runs at once with one torch thread each (two threads per
process on a loaded 2-core machine make torch spin; keep jobs × threads ≤ cores).
Runs already evaluated in --out are reused.
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
    "data.visual.dim={concat}", "model.visual_dim={concat}", "data.audio=null",
    "model.modalities=v", "model.aac=false", "model.n_aac=0", "model.scl=false", "model.pan=false",
]  # fmt: skip
EVIDENCE = ("audio", "visual", "audio-visual", "conjunction")  # the table's column order
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
    # the studies of docs/benchmarks.md
    "normalize none": ["model.normalize=none"],
    "negatives prediction": ["model.hard_negatives=prediction"],
    "score balanced": ["model.loss.score_scale=balanced"],
    "modality dropout": ["model.modality_dropout=0.3"],
    "unimodal heads 0.5": ["model.unimodal_heads=0.5"],
    "unimodal heads 1": ["model.unimodal_heads=1.0"],
    "ce + diou": ["model.loss.cls_loss=ce"],
    "focal + smooth_l1": ["model.loss.reg_loss=smooth_l1"],
    "ce + smooth_l1": ["model.loss.cls_loss=ce", "model.loss.reg_loss=smooth_l1"],
    "pan 64": ["model.pan_dim=64"],  # the PAN at half of zoo/synth.yaml's d = 128
}


def data_overrides(data: Path) -> list[str]:
    """The recipe keys that give `del train synth` the feature sizes of the dataset in `data`."""
    dims = json.loads((data / "synth.json").read_text())["dims"]
    visual, audio = dims["rgb"] + dims["flow"], dims["vggish"]
    return [f"data.visual.dim={visual}", f"model.visual_dim={visual}",
            f"data.audio.dim={audio}", f"model.audio_dim={audio}"]  # fmt: skip


def row_overrides(row: str, data: Path) -> list[str]:
    dims = json.loads((data / "synth.json").read_text())["dims"]
    concat = str(dims["rgb"] + dims["flow"] + dims["vggish"])
    return [item.replace("{concat}", concat) for item in ROWS[row]]


def slug(row: str) -> str:
    return row.replace(" ", "-")


def run(command: list[str], log: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=handle, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")


def run_name(row: str, seed: int) -> str:
    return f"{slug(row)}-s{seed}"


def train_and_evaluate(row: str, seed: int, args: argparse.Namespace, threads: int) -> dict:
    folder = args.out / run_name(row, seed)
    result_file = folder / "test_eval.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{run_name(row, seed)}.log"
    paths = ["--features", str(args.data / "features"),
             "--annotations", str(args.data / "annotations.json")]  # fmt: skip
    keys = data_overrides(args.data) + row_overrides(row, args.data) + args.set
    keys.append(f"train.seed={seed}")
    overrides = [item for key in keys for item in ("--set", key)]
    resume = ["--resume"] if (folder / "checkpoint").exists() else []
    run([args.del_, "train", "synth", *paths, "--out", str(folder), *resume, *overrides], log,
        threads)  # fmt: skip
    evaluation = folder / "test_eval.tmp"
    with open(evaluation, "w") as handle:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        command = [args.del_, "eval", "--weights", str(folder), *paths, "--split", "test",
                   "--format", "json", "--per-class"]  # fmt: skip
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


def evidence_maps(report: dict, data: Path) -> dict[str, float]:
    """Per evidence type: the mean over its classes (those with test events) of the class's
    AP averaged over the report's average tIoUs."""
    manifest = json.loads((data / "synth.json").read_text())
    kinds = {c["name"]: c["evidence"] for c in manifest["classes"]}
    annotations = json.loads((data / "annotations.json").read_text())["database"]
    tested = {a["label"] for v in annotations.values() if v["subset"] == "test"
              for a in v["annotations"]}  # fmt: skip
    tious = [f"{t:g}" for t in report["average_tious"]]
    found: dict[str, list[float]] = {}
    for name, row in report["per_class"].items():
        if name in tested:
            found.setdefault(kinds[name], []).append(sum(row[t] for t in tious) / len(tious))
    return {kind: sum(v) / len(v) for kind, v in found.items()}


def mean_std(values: list[float]) -> str:
    import statistics

    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-synth"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seeds", default="0", help="comma-separated train.seed values")
    parser.add_argument("--rows", default=",".join(list(ROWS)[:9]))
    parser.add_argument("--threads", type=int, help="torch threads per run (default cores/jobs)")
    parser.add_argument("--set", action="append", default=[], help="override for every row")
    parser.add_argument("--del", dest="del_", default=str(Path(sys.executable).with_name("del")))
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    if not (args.data / "annotations.json").exists():
        subprocess.run([args.del_, "data", "synth", str(args.data)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)

    def attempt(job: tuple[str, int]) -> dict:
        try:
            return train_and_evaluate(*job, args, threads)
        except (RuntimeError, subprocess.CalledProcessError) as error:  # one run, not the table
            print(f"{job}: {error}", file=sys.stderr)
            return {"error": str(error)}

    jobs = [(row, seed) for seed in seeds for row in rows]  # every row's first seed first
    with ThreadPoolExecutor(args.jobs) as pool:
        reports = dict(zip(jobs, pool.map(attempt, jobs), strict=True))

    from rich.console import Console
    from rich.table import Table

    columns = ["0.1", "0.5", "0.9"]
    table = Table(title=f"Synthetic benchmark ({args.data}), test split, mAP (%), "
                  f"mean ± std over seeds {args.seeds}")  # fmt: skip
    names = ("row", *columns, "avg 0.1:0.9", *(f"{k} cls" for k in EVIDENCE), "avg per seed",
             "weights M", "s/epoch")  # fmt: skip
    for name in names:
        table.add_column(name, justify="left" if name == "row" else "right")
    for row in rows:
        done = [(seed, reports[row, seed]) for seed in seeds if "error" not in reports[row, seed]]
        if not done:
            table.add_row(row, "failed")
            continue
        cells = [mean_std([100 * r["map"][c] for _, r in done]) for c in columns]
        cells.append(mean_std([100 * r["average_map"] for _, r in done]))
        kinds = [evidence_maps(r, args.data) for _, r in done]
        cells += [mean_std([100 * k[e] for k in kinds if e in k]) for e in EVIDENCE]
        figures = [run_figures(args.out / run_name(row, seed)) for seed, _ in done]
        cells += [" / ".join(f"{100 * r['average_map']:.1f}" for _, r in done),
                  f"{figures[0][0] / 1e6:.2f}",
                  f"{sorted(f[1] for f in figures)[len(figures) // 2]:.0f}"]  # fmt: skip
        table.add_row(row, *cells)
    Console(width=180).print(table)


if __name__ == "__main__":
    main()
