"""Benchmark: the vectorised mAP scorer vs the literal per-class loop.

Generated predictions over the real ground truth (ActivityNet-1.3 validation,
UnAV-100 test, THUMOS14 test): a share of detections near real events, the rest
anywhere in the video, labels mostly right, scores rounded to 4 decimals as
OpenTAD writes them (so ties occur). Prints one table.

    python scripts/bench_eval.py [--per-video 100] [--repeats 3] [--skip-loop] [--whole-process]

--whole-process adds a column: `del eval --dataset … --predictions FILE` run as a
user runs it (a new process: import, read, align, score, print), median of --repeats.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as the target says

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from delcli.data.benchmarks import BENCHMARKS
from delcli.data.formats import read_annotations
from delcli.evaluation.detection_map import align_predictions, detection_map
from delcli.evaluation.map_oracle import reference_average_precision
from delcli.evaluation.predictions import read_predictions
from delcli.resources import resource_path


def generate(gt, per_video: int, seed: int) -> dict:
    """ActivityNet results dict: `per_video` detections for every video of `gt`."""
    rng = np.random.default_rng(seed)
    results = {}
    for video, video_id in enumerate(gt.video_ids):
        events = np.flatnonzero(gt.event_video == video)
        duration = gt.durations[video] if np.isfinite(gt.durations[video]) else 100.0
        near = rng.random(per_video) < 0.3
        picked = rng.choice(events, per_video) if len(events) else np.zeros(per_video, int)
        segments = np.sort(rng.uniform(0, duration, (per_video, 2)), axis=1)
        if len(events):
            base = gt.segments[picked]
            length = np.maximum(base[:, 1] - base[:, 0], 0.5)[:, None]
            jittered = np.sort(base + rng.normal(0, 0.2, (per_video, 2)) * length, axis=1)
            segments[near] = np.clip(jittered[near], 0, duration)
        labels = rng.integers(len(gt.classes), size=per_video)
        if len(events):
            right = rng.random(per_video) < 0.7
            labels[right] = gt.labels[picked[right]]
        scores = np.round(rng.random(per_video), 4)
        results[video_id] = [
            {"label": gt.classes[lab], "score": float(sc), "segment": [float(s), float(e)]}
            for lab, sc, (s, e) in zip(labels, scores, segments, strict=True)
        ]
    return {"version": "bench", "results": results, "external_data": {}}


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-video", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-loop", action="store_true", help="do not run the slow loop")
    parser.add_argument(
        "--whole-process", action="store_true", help="also time `del eval` as a command"
    )
    args = parser.parse_args()
    command = str(Path(sys.executable).with_name("del"))

    table = Table(title=f"mAP scorer, {args.per_video} predictions per video, one core")
    for column in (
        "ground truth",
        "videos",
        "predictions",
        "classes",
        "tIoUs",
        "read JSON s",
        "vectorised s",
        "loop s",
        "ratio",
        "max |ΔAP|",
        *(["del eval s"] if args.whole_process else []),
    ):
        table.add_column(column, justify="left" if column == "ground truth" else "right")

    for name, split in (("anet13", "validation"), ("unav100", "test"), ("thumos14", "test")):
        benchmark = BENCHMARKS[name]
        gt = read_annotations(resource_path(benchmark.annotation_file)).select_split(split)
        tious = np.array(benchmark.tious)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "predictions.json"
            path.write_text(json.dumps(generate(gt, args.per_video, seed=0)))
            read_s, predictions = best_of(1, partial(read_predictions, path))
            process_s = None
            if args.whole_process:
                run = [command, "eval", "-d", name, "-s", split, "-p", str(path)]
                whole = partial(subprocess.run, run, check=True, capture_output=True)
                process_s = best_of(args.repeats, whole)[0]
        aligned = align_predictions(gt, predictions)
        fast_s, fast = best_of(args.repeats, partial(detection_map, gt, aligned, tious))
        if args.skip_loop:
            loop_cell = ratio_cell = delta_cell = "-"
        else:
            loop_s, slow = best_of(1, partial(reference_average_precision, gt, aligned, tious))
            expected = np.array([slow[gt.class_index()[c]] for c in fast.classes])
            loop_cell, ratio_cell = f"{loop_s:.2f}", f"{loop_s / fast_s:.0f}×"
            delta_cell = f"{np.abs(expected - fast.ap).max():.1e}"
        table.add_row(
            f"{benchmark.title} {split}",
            f"{gt.num_videos:,}",
            f"{len(aligned.scores):,}",
            str(len(fast.classes)),
            str(len(tious)),
            f"{read_s:.2f}",
            f"{fast_s:.3f}",
            loop_cell,
            ratio_cell,
            delta_cell,
            *([f"{process_s:.2f}"] if args.whole_process else []),
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
