"""Awkward video files, for tests of the decoders and of bad-input handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from delcli.files import write_bytes_atomic, write_json_atomic
from delcli.synth.video.mp4 import write_video
from delcli.synth.video.timeline import GENERATOR, Event, SynthVideoConfig, VideoPlan

EDGE_CASES = {
    "no_audio.mp4": "H.264 only; read_audio gives None",
    "audio_only.mp4": "AAC only; iter_frames raises 'no video stream'",
    "variable_frame_rate.mp4": "frame durations cycle 20, 40, 60 ms",
    "odd_size.mp4": "161x97 frames (H.264 4:4:4)",
    "very_short.mp4": "0.6 s",
    "rotated.mp4": "coded 160x120, rotation metadata 90 degrees clockwise (shown 120x160)",
    "truncated.mp4": "the last 60 % of the bytes cut off; the index (at the front) survives",
    "truncated_no_index.mp4": "the last 40 % of the bytes cut off, with the index (at the end)",
    "broken_audio.mp4": "AAC packets after 1.6 s overwritten with random bytes",
}


def edge_plan(duration: float) -> VideoPlan:
    """A red square with its tone, a moving blue disk and a chirp, cut to `duration`."""
    events = (Event(0.4, 2.0, 0, 0.1, 0.2), Event(1.6, 3.6, 1, 0.3, 0.6), Event(2.4, 3.6, 2, 0, 0))
    kept = [e for e in events if e.start < duration]
    kept = [Event(e.start, min(e.end, duration), e.label, e.x, e.y) for e in kept]
    return VideoPlan(1 << 30, "synv_edge", "test", duration, tuple(kept))


def write_edge_cases(folder: Path, config: SynthVideoConfig, force: bool = False) -> list[str]:
    """The `EDGE_CASES` files (4 s each unless said), and `edge_cases.json` describing
    them; files already there are kept unless `force`."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = edge_plan(4.0)
    variable = list(np.cumsum([0.0] + [0.02, 0.04, 0.06] * 33)[:-1])
    variants = {
        "no_audio.mp4": {"audio": False},
        "audio_only.mp4": {"video": False},
        "variable_frame_rate.mp4": {"frame_times": [round(float(t), 3) for t in variable]},
        "odd_size.mp4": {"size": (161, 97)},
        "rotated.mp4": {"size": (160, 120), "rotation": 90},
        "truncated.mp4": {},  # mp4 index at the front: the cut leaves it
        "truncated_no_index.mp4": {"faststart": False},  # index at the end: the cut takes it
        "broken_audio.mp4": {},
    }
    for name in EDGE_CASES:
        path = folder / name
        if path.exists() and not force:
            continue
        if name == "very_short.mp4":
            write_video(path, edge_plan(0.6), config)
        elif name in ("truncated.mp4", "truncated_no_index.mp4", "broken_audio.mp4"):
            intact = folder / f".{name}.intact.mp4"  # damaged, then renamed: resumable
            write_video(intact, plan, config, **variants[name])
            data = intact.read_bytes()
            if name == "broken_audio.mp4":
                data = break_audio(intact, data, after=1.6, seed=config.seed)
            else:
                data = data[: int(len(data) * (0.4 if name == "truncated.mp4" else 0.6))]
            write_bytes_atomic(path, data)
            intact.unlink()
        else:
            write_video(path, plan, config, **variants[name])
    describe = {name: {"what": what} for name, what in EDGE_CASES.items()}
    write_json_atomic(folder / "edge_cases.json", {"version": GENERATOR, "files": describe})
    return list(EDGE_CASES)


def break_audio(path: Path, data: bytes, after: float, seed: int) -> bytes:
    """`data` (the bytes of `path`) with the payload of every audio packet from `after`
    seconds on overwritten with noise."""
    import av

    with av.open(str(path)) as container:
        packets = [
            (p.pos, p.size)
            for p in container.demux(audio=0)
            if p.size and p.pos is not None and p.pts is not None and p.pts * p.time_base >= after
        ]
    broken = bytearray(data)
    rng = np.random.default_rng([seed, 4])
    for position, size in packets:
        broken[position : position + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return bytes(broken)
