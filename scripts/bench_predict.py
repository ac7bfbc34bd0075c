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

Two more uses (scripts/gpu_check.sh calls them):

    python scripts/bench_predict.py --make-video out.mp4 [--seconds 300] [--size 640x360]
                                    [--fps 30]      # H.264 + AAC test video, made with PyAV
    python scripts/bench_predict.py --rate VIDEO STEP [--device cuda]
        # STEP: an extractor name (basic, vggish, i3d) or `predict` (the demo model):
        # one run, its last line `STEP: N× real time (W s for D s of video)`
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


def make_video(path: Path, seconds: float, width: int, height: int, fps: int) -> None:
    """A `seconds`-long H.264 (yuv420p) + AAC (44.1 kHz stereo) mp4 made with PyAV, with
    moving colour gradients, a moving block, a static texture and tones that change every
    few seconds: content a codec must work on, made without the project's own generator."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.integers(0, 6, (height, width, 1), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast" if width * height <= 640 * 360 else "ultrafast",
                         "crf": "26"}  # fmt: skip
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        cycle = 4 * fps  # frames are drawn for 4 s and repeat with a moving block on top
        base = []
        for i in range(cycle):
            t = i / fps
            image = np.empty((height, width, 3), np.uint8)
            image[..., 0] = (128 + 100 * np.sin(xx / 40 + t * 2)).astype(np.uint8)
            image[..., 1] = (128 + 100 * np.sin(yy / 30 - t * 2)).astype(np.uint8)
            image[..., 2] = ((xx + yy + 60 * t) % 256).astype(np.uint8)
            base.append(image + texture)
        side = max(8, height // 9)
        for i in range(round(seconds * fps)):
            t = i / fps
            image = base[i % cycle].copy()
            x = int((width - side) / 2 * (1 + np.sin(t)))
            y = int((height - side) / 2 * (1 + np.cos(0.7 * t)))
            image[y : y + side, x : x + side] = (255, 255, 255) if (t // 10) % 2 else (20, 200, 40)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        rate, block = 44100, 1024
        for start in range(0, round(seconds * rate), block):
            k = np.arange(start, min(start + block, round(seconds * rate))) / rate
            freq = 220 * (1 + (k // 7) % 5)
            on = ((k * 2) % 3) < 1.5
            wave = 0.3 * np.sin(2 * np.pi * freq * k) * on + 0.02 * rng.standard_normal(k.size)
            frame = av.AudioFrame.from_ndarray(
                np.stack([wave, wave]).astype(np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def rate(video: str, step: str, device: str) -> str:
    """One extraction (or `del predict` with the demo model) of `video`: × real time."""
    from delcli.io import probe

    info = probe(video)
    started = time.perf_counter()
    if step == "predict":
        from delcli.features.pipeline import recipe_extractors
        from delcli.inference.video import predict_video
        from delcli.weights import load_model

        model, recipe = load_model("demo")
        extractors = recipe_extractors(recipe, device=device)
        predict_video(video, model, recipe, extractors, info=info, device=device)
    else:
        from delcli.features import GRID_PRESETS, get_extractor
        from delcli.features.pipeline import extract_video

        grid = GRID_PRESETS.get(step, GRID_PRESETS["unav100"])
        extract_video(video, [get_extractor(step, grid, device=device)], info)
    seconds = time.perf_counter() - started
    return (
        f"{step} on {device}: {info.duration / seconds:.3g}× real time "
        f"({seconds:.1f} s for {info.duration:.0f} s of video)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-video", type=Path, help="write a test video here and stop")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of --make-video")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--rate", nargs=2, metavar=("VIDEO", "STEP"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", default="150,600", help="video lengths in seconds")
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; the median counts")
    parser.add_argument("--work", type=Path, default=Path("data/bench-predict"))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_video:
        width, height = (int(x) for x in args.size.lower().split("x"))
        make_video(args.make_video, args.seconds, width, height, args.fps)
        print(f"wrote {args.make_video}: {args.seconds:g} s, {width}x{height}, {args.fps} fps")
        return
    if args.rate:
        print(rate(*args.rate, args.device))
        return
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
