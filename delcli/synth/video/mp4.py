"""A video plan encoded to mp4 (H.264 + AAC, with PyAV), and files written atomically.

x264 runs single-threaded, so a seed gives the same bytes on every machine. Every
file goes to a hidden temporary name and is renamed into place: an interrupted run
leaves no half-written file.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from delcli.files import atomic_path
from delcli.synth.video.render import Scene, render_audio
from delcli.synth.video.timeline import SynthVideoConfig, VideoPlan


def write_mp4(
    path: Path,
    scene: Scene | None,
    frame_times: list[float] | None,
    audio: np.ndarray | None,
    sample_rate: int,
    fps: float,
    rotation: int = 0,
    faststart: bool = True,
) -> None:
    """Encode frames `scene.frame(t)` at `frame_times` (H.264) and `audio` (AAC, mono)
    into the mp4 `path`, interleaved. Odd frame sizes use 4:4:4 chroma (4:2:0 needs
    even sizes). `rotation`: clockwise display rotation stored as metadata."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        video = sound = None
        if scene is not None:
            video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            video.width, video.height = scene.w, scene.h
            video.pix_fmt = "yuv420p" if scene.w % 2 == 0 and scene.h % 2 == 0 else "yuv444p"
            video.options = {"preset": "veryfast", "crf": "20"}
            video.codec_context.thread_count = 1  # same bytes on every machine
            video.codec_context.gop_size = max(1, round(2 * fps))
            video.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                video.set_display_rotation(-rotation)  # PyAV counts counter-clockwise
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
            sound.bit_rate = 64000
        done = 0  # audio samples encoded

        def encode_audio(until: float) -> None:
            nonlocal done
            stop = audio.size if until == math.inf else min(audio.size, round(until * sample_rate))
            if stop > done:
                frame = av.AudioFrame.from_ndarray(
                    audio[None, done:stop], format="flt", layout="mono"
                )
                frame.sample_rate, frame.pts = sample_rate, done
                container.mux(sound.encode(frame))
                done = stop

        for t in frame_times if video is not None else []:
            picture = av.VideoFrame.from_ndarray(scene.frame(t), format="rgb24")
            picture.pts, picture.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(video.encode(picture))
            if sound is not None:
                encode_audio(t + 1 / fps)
        if video is not None:
            container.mux(video.encode(None))
        if sound is not None:
            encode_audio(math.inf)
            container.mux(sound.encode(None))


def write_video(path: Path, plan: VideoPlan, config: SynthVideoConfig, **variant) -> None:
    """One video of `plan`, written atomically. `variant`: `video`/`audio` False to drop
    a stream, `frame_times` for variable frame rate, `rotation`, `size` (w, h),
    `faststart`."""
    width, height = variant.get("size", (config.width, config.height))
    scene = Scene(plan, width, height, config.seed) if variant.get("video", True) else None
    times = variant.get("frame_times") or [
        i / config.fps for i in range(round(plan.duration * config.fps))
    ]
    audio = (
        render_audio(plan, config.sample_rate, config.seed) if variant.get("audio", True) else None
    )
    with atomic_path(path) as temporary:
        write_mp4(
            Path(temporary), scene, times, audio, config.sample_rate, config.fps,
            rotation=variant.get("rotation", 0), faststart=variant.get("faststart", True),
        )  # fmt: skip
