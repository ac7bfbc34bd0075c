"""Write `examples/unav100_test_predictions.json.gz`: detections that look like a
model's, made by perturbing the real UnAV-100 test ground truth.

Not a model's output: every ground-truth event gets a few detections with
boundary noise that grows with the event's length, scores that fall with the
noise, some confused labels; every video gets low-scored false alarms. The
file exists so that `del eval` has something real-shaped to score before a
trained model ships. Deterministic for a seed.

    python scripts/make_example_predictions.py [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

from delcli.data.benchmarks import get_benchmark
from delcli.data.formats import read_annotations
from delcli.resources import resource_path


def make_predictions(seed: int) -> dict:
    benchmark = get_benchmark("unav100")
    annotations = read_annotations(resource_path(benchmark.annotation_file))
    test = annotations.select_split(benchmark.default_split)
    rng = np.random.default_rng(seed)
    num_classes = len(test.classes)
    results: dict[str, list[dict]] = {video: [] for video in test.video_ids}

    for row in range(test.num_events):
        video = test.event_video[row]
        duration = test.durations[video]
        start, end = test.segments[row]
        length = max(end - start, 0.5)
        for _ in range(rng.integers(1, 4)):
            noise = rng.normal(0.0, 0.12, size=2) * length
            s, e = np.clip(np.sort([start + noise[0], end + noise[1]]), 0.0, duration)
            quality = np.exp(-np.abs(noise).sum() / length)
            label = test.labels[row]
            if rng.random() < 0.15:
                label = rng.integers(num_classes)
            score = float(np.clip(quality * rng.uniform(0.5, 1.0), 0.01, 0.99))
            results[test.video_ids[video]].append(_detection(test.classes[label], score, s, e))

    for video, video_id in enumerate(test.video_ids):
        duration = test.durations[video]
        for _ in range(rng.integers(2, 8)):
            s, e = np.sort(rng.uniform(0.0, duration, size=2))
            label = test.classes[rng.integers(num_classes)]
            results[video_id].append(_detection(label, float(rng.uniform(0.01, 0.4)), s, e))
    return {
        "version": "UnAV-100 example (perturbed ground truth, not a model)",
        "results": results,
        "external_data": {"used": False, "details": "made by scripts/make_example_predictions.py"},
    }


def _detection(label: str, score: float, start: float, end: float) -> dict:
    return {"label": label, "score": round(score, 4), "segment": [round(start, 2), round(end, 2)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("examples/unav100_test_predictions.json.gz")
    )
    args = parser.parse_args()
    payload = json.dumps(make_predictions(args.seed), separators=(",", ":")).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    with open(temporary, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(payload)
    temporary.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
