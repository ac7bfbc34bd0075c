"""Benchmark feature extraction: seconds of video per wall-second, per extractor.

One synthetic H.264 + AAC video (`del data synth-video`, 160×120, 25 fps);
each extractor runs in a fresh process on it, the network built first (not
timed), then `extract` timed: decoding, preprocessing, the network, pooling
onto the grid. Networks are randomly initialised at their published size —
the speed of a network does not depend on its weights, and the published
ones cannot be downloaded here: vggish (VGGish), i3d (Inception-I3D, RGB
only: flow needs OpenCV and is timed apart by nobody here), dinov2
(`Dinov2Config()` = ViT-B/14 at 224 px, every frame at the grid's 25 fps),
mert (`HubertConfig()` = the HuBERT-base shape of MERT-v1-95M, 24 kHz).
`basic` is weight-free. The extractors other than basic run on the UnAV-100
grid (0.32 s steps, 0.96 s windows), basic on its own.

    python scripts/bench_extract.py [--length 10] [--extractors basic,vggish,i3d,dinov2,mert]
                                    [--threads 2] [--device cpu] [--repeats 1]

Prints one table; each cell is the median of `--repeats` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

EXTRACTORS = ("basic", "vggish", "i3d", "dinov2", "mert")
OPTIONS = {  # what makes each a published-size network without weights
    "basic": {},
    "vggish": {"random_init": True},
    "i3d": {"random_init": True, "streams": ["rgb"]},
    "dinov2": {"random_init": True},
    "mert": {"random_init": True},
}


def worker(name: str, video: str, threads: int, device: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from delcli.features import GRID_PRESETS, get_extractor
    from delcli.io import probe

    grid = GRID_PRESETS["basic" if name == "basic" else "unav100"]
    info = probe(video)
    started = time.perf_counter()
    extractor = get_extractor(name, grid, device=device, **OPTIONS[name])
    built = time.perf_counter() - started
    started = time.perf_counter()
    outputs = extractor.extract(video, info)
    seconds = time.perf_counter() - started
    shapes = {key: list(value.shape) for key, value in outputs.items()}
    return {"duration": info.duration, "build": built, "seconds": seconds, "shapes": shapes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=float, default=10.0, help="video seconds")
    parser.add_argument("--extractors", default=",".join(EXTRACTORS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the median counts")
    parser.add_argument("--work", type=Path, default=Path("data/bench-extract"))
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, video, threads, device = args.worker
        print(json.dumps(worker(name, video, int(threads), device)))
        return

    from rich.console import Console
    from rich.table import Table

    folder = args.work / f"{args.length:g}s"
    make = [sys.executable, "-m", "delcli.cli.app", "data", "synth-video", str(folder),
            "--videos", "1", "--duration-range", f"{args.length:g}:{args.length:g}",
            "--seed", "7"]  # fmt: skip
    if not list((folder / "videos").glob("*.mp4")):
        subprocess.run(make, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    video = str(next((folder / "videos").glob("*.mp4")))
    table = Table(
        title=f"feature extraction, {args.length:g} s 160×120 video, {args.device}, "
        f"{args.threads} threads"
    )
    for column in ("extractor", "output (T × D)", "build s", "extract s", "video s / s"):
        table.add_column(column, justify="left" if column == "extractor" else "right")
    for name in args.extractors.split(","):
        runs = []
        for _ in range(args.repeats):
            done = subprocess.run(
                [sys.executable, __file__, "--worker", name, video, str(args.threads),
                 args.device],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        result = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        print(json.dumps({"extractor": name, **result}), file=sys.stderr, flush=True)
        shapes = ", ".join(f"{k} {t}×{d}" for k, (t, d) in result["shapes"].items())
        table.add_row(
            name, shapes, f"{result['build']:.1f}", f"{result['seconds']:.1f}",
            f"{result['duration'] / result['seconds']:.2f}",
        )  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
