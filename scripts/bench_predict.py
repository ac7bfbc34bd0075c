"""Benchmark video in → events out: decode only vs `basic` extraction vs full predict.

Synthetic videos (`del data synth-video`, 160×120, 25 fps, H.264 + AAC) of
several lengths; each measurement runs in a fresh process so its peak memory
(max RSS) is its own. Prints one table: video-seconds per wall-second (× real
time) and peak RSS, to show that speed holds and memory stays flat as videos
grow. Targets: predict with `basic` ≥ 20× real time on 2 cores, within 1.5× of
decode-only, memory flat in video length.

    python scripts/bench_predict.py [--lengths 150,600] [--weights demo] [--repeats 3]
                                    [--work data/bench-predict]

Each cell is the median wall time of `--repeats` fresh processes and the largest
peak RSS among them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODES = ("decode", "extract", "predict")


def worker(mode: str, video: str, weights: str) -> dict:
    import resource

    from delcli.io import audio_blocks, frame_batches, probe

    info = probe(video)
    started = time.perf_counter()
    if mode == "decode":  # what `basic` decodes: frames at its grid's fps and size, 16 kHz audio
        from delcli.features import GRID_PRESETS
        from delcli.features.basic import BasicExtractor

        grid = GRID_PRESETS["basic"]
        size = BasicExtractor.option_defaults["size"]
        for _ in frame_batches(video, grid.fps, size=size):
            pass
        for _ in audio_blocks(video, 16000):
            pass
    elif mode == "extract":
        from delcli.features.pipeline import extract_video, recipe_extractors
        from delcli.weights import load_model

        _, recipe = load_model(weights)
        extract_video(video, recipe_extractors(recipe), info)
    else:
        from delcli.features.pipeline import recipe_extractors
        from delcli.inference.video import predict_video
        from delcli.weights import load_model

        model, recipe = load_model(weights)
        predict_video(video, model, recipe, recipe_extractors(recipe), info=info)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"duration": info.duration, "seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="150,600", help="video lengths in seconds")
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; the median counts")
    parser.add_argument("--work", type=Path, default=Path("data/bench-predict"))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    from rich.console import Console
    from rich.table import Table

    tool = str(Path(sys.executable).with_name("del"))
    table = Table(title=f"video → events, weights {args.weights}, 160×120 H.264 + AAC")
    for column in ("video", "step", "wall s", "× real time", "vs decode", "peak RSS MiB"):
        table.add_column(column, justify="left" if column in ("video", "step") else "right")
    for length in (int(x) for x in args.lengths.split(",")):
        folder = args.work / f"{length}s"
        make = [tool, "data", "synth-video", str(folder), "--videos", "1",
                "--duration-range", f"{length}:{length}", "--seed", "7"]  # fmt: skip
        subprocess.run(make, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        video = str(next((folder / "videos").glob("*.mp4")))
        decode_seconds = None
        for mode in MODES:
            runs = []
            for _ in range(args.repeats):
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", mode, video, args.weights],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            result = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            result["peak_mib"] = max(r["peak_mib"] for r in runs)
            if mode == "decode":
                decode_seconds = result["seconds"]
            table.add_row(
                f"{result['duration']:.0f} s", mode, f"{result['seconds']:.2f}",
                f"{result['duration'] / result['seconds']:.0f}×",
                f"{result['seconds'] / decode_seconds:.2f}×", f"{result['peak_mib']:.0f}",
            )  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
