"""Synthetic audio-visual videos with a known timeline (`del data synth-video`).

Real mp4 files (H.264 + AAC, written with PyAV) for the end-to-end path
(decode → extract → predict) and the offline demo. Each class is a visual
pattern, an audio pattern or both, chosen to survive H.264 at 64–160 px and to
be told apart by weight-free statistics (hue, edges, motion; log-mel bands,
temporal rhythm):

| class | visual | audio |
|---|---|---|
| red-square+tone-440 | a still red square | a 440 Hz tone |
| blue-circle-moving | a blue disk crossing the frame | — |
| chirp | — | rising 500→3000 Hz sweeps, 2 per second |
| green-flash+clicks | a green rectangle flashing at 3 Hz | a click at each flash |
| noise-bursts | — | white-noise bursts at 4 Hz |
| yellow-stripes | scrolling yellow stripes | — |
| magenta-checker+alarm | a magenta checkerboard | 880/1320 Hz alternating at 4 Hz |
| hum-200 | — | a 200 Hz buzz (odd harmonics) |

Background: a dark gradient whose brightness drifts slowly, a grey disk that
wanders all the time (motion that is no event), and quiet brown noise. Events
last 1–6 s, 1–5 per video, at most two at a time, never two of one class at
once. Deterministic for a seed (x264 runs single-threaded for that); each video
depends only on the seed and its index. Files are written atomically, and a
rerun with the same settings skips the videos already there.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from delcli.errors import ConfigError, DataError

GENERATOR = "del-synth-video-1"
MANIFEST = "synth_video.json"


@dataclass(frozen=True)
class VideoClass:
    name: str
    visual: str | None  # a pattern drawn by `Scene`
    audio: str | None  # a pattern made by `audio_pattern`

    @property
    def evidence(self) -> str:
        return (
            "audio-visual" if self.visual and self.audio else "visual" if self.visual else "audio"
        )


CLASSES = (
    VideoClass("red-square+tone-440", "red_square", "tone_440"),
    VideoClass("blue-circle-moving", "blue_circle", None),
    VideoClass("chirp", None, "chirp"),
    VideoClass("green-flash+clicks", "green_flash", "clicks"),
    VideoClass("noise-bursts", None, "noise_bursts"),
    VideoClass("yellow-stripes", "yellow_stripes", None),
    VideoClass("magenta-checker+alarm", "magenta_checker", "alarm"),
    VideoClass("hum-200", None, "hum_200"),
)
COLOURS = {  # RGB of each visual pattern: distinct hues, far from the dark background
    "red_square": (220, 40, 40),
    "blue_circle": (40, 80, 235),
    "green_flash": (40, 220, 70),
    "yellow_stripes": (235, 215, 40),
    "magenta_checker": (215, 40, 205),
}
FLASH_HZ = 3.0  # green flashes and their clicks
MAX_CONCURRENT = 2
OVERLAP_CHANCE = 0.3  # share of events placed among the others rather than apart


@dataclass(frozen=True)
class SynthVideoConfig:
    """Everything that determines the videos (recorded in `synth_video.json`)."""

    videos: int = 100
    seed: int = 0
    min_duration: float = 8.0
    max_duration: float = 20.0
    width: int = 160
    height: int = 120
    fps: float = 25.0
    sample_rate: int = 16000

    def check(self) -> SynthVideoConfig:
        if self.videos < 1:
            raise ConfigError(f"--videos {self.videos}: need at least 1")
        if not 0.5 <= self.min_duration <= self.max_duration:
            raise ConfigError(
                f"--duration-range {self.min_duration:g}:{self.max_duration:g}: "
                "need 0.5 <= MIN <= MAX seconds"
            )
        if min(self.width, self.height) < 16:
            raise ConfigError(f"--size {self.width}x{self.height}: need at least 16x16")
        if not 1 <= self.fps <= 120:
            raise ConfigError(f"--fps {self.fps:g}: need 1 to 120")
        return self


@dataclass(frozen=True)
class Event:
    start: float
    end: float
    label: int
    x: float  # where the visual pattern sits (fractions of the free room), or starts
    y: float


@dataclass(frozen=True)
class VideoPlan:
    index: int  # seeds the video's pictures and sounds
    video_id: str
    subset: str
    duration: float
    events: tuple[Event, ...]


@dataclass
class SynthVideoResult:
    folder: Path
    plans: list[VideoPlan]
    written: int  # videos this run encoded
    skipped: bool  # complete with these settings: nothing written
    seconds: float  # wall time spent writing the videos (edge cases not counted)
    video_seconds: float  # duration of the videos this run wrote
    edge_cases: list[str] = field(default_factory=list)


# -- the timeline ----------------------------------------------------------------------------


def plan_videos(config: SynthVideoConfig) -> list[VideoPlan]:
    subsets = split_subsets(config.videos, np.random.default_rng([config.seed, 1 << 20]))
    return [plan_video(config, index, subsets[index]) for index in range(config.videos)]


def split_subsets(count: int, rng: np.random.Generator) -> list[str]:
    held_out = round(0.15 * count) if count >= 7 else int(count >= 3)
    names = ["validation"] * held_out + ["test"] * held_out
    names += ["train"] * (count - len(names))
    return [names[i] for i in rng.permutation(count)]


def plan_video(config: SynthVideoConfig, index: int, subset: str) -> VideoPlan:
    rng = np.random.default_rng([config.seed, index])
    frames = max(1, round(rng.uniform(config.min_duration, config.max_duration) * config.fps))
    duration = frames / config.fps
    wanted = int(np.clip(rng.poisson(0.6 + duration / 6), 1, 5))
    events: list[Event] = []
    for _ in range(wanted):
        overlap = rng.random() < OVERLAP_CHANCE
        for _ in range(30):  # tries to place it; an event that finds no room is dropped
            length = rng.uniform(1.0, max(1.0, min(6.0, 0.6 * duration)))
            start = snap(rng.uniform(0, max(0.0, duration - length)), config.fps)
            end = min(duration, snap(start + length, config.fps))
            label = int(rng.integers(len(CLASSES)))
            event = Event(start, end, label, float(rng.random()), float(rng.random()))
            if end > start and fits(event, events, overlap):
                events.append(event)
                break
    events.sort(key=lambda e: (e.start, e.label))
    return VideoPlan(index, f"synv_{index:05d}", subset, duration, tuple(events))


def snap(seconds: float, fps: float) -> float:
    return round(round(seconds * fps) / fps, 6)


def fits(event: Event, events: list[Event], overlap: bool) -> bool:
    """Apart from the others by 0.3 s, or with `overlap` among them: never beside an event
    of its class (0.5 s apart), at most `MAX_CONCURRENT` at a time."""
    if not overlap:
        return all(o.end + 0.3 <= event.start or event.end + 0.3 <= o.start for o in events)
    for other in events:
        if (
            other.label == event.label
            and other.start < event.end + 0.5
            and event.start < other.end + 0.5
        ):
            return False
    cuts = sorted({event.start} | {e.start for e in events if event.start < e.start < event.end})
    return all(sum(e.start <= t < e.end for e in events) < MAX_CONCURRENT for t in cuts)


# -- pictures --------------------------------------------------------------------------------


class Scene:
    """Draws frame t of a video: background, the wandering grey disk, active events."""

    def __init__(self, plan: VideoPlan, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 2, plan.index])
        self.plan, self.w, self.h = plan, width, height
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        base = np.array([25, 30, 40], np.float32) + ramp * np.array([20, 20, 22], np.float32)
        self.background = base + rng.normal(0, 2.5, (height, width, 1)).astype(np.float32)
        self.phase = rng.uniform(0, 2 * math.pi, 3)

    def frame(self, t: float) -> np.ndarray:
        drift = 6.0 * math.sin(2 * math.pi * t / 9.0 + self.phase[0])
        image = np.clip(self.background + drift, 0, 255).astype(np.uint8)
        cx = self.w * (0.5 + 0.4 * math.sin(2 * math.pi * t / 7.0 + self.phase[1]))
        cy = self.h * (0.5 + 0.35 * math.sin(2 * math.pi * t / 5.0 + self.phase[2]))
        self.disk(image, cx, cy, 0.07 * self.h, (105, 105, 110))
        for event in self.plan.events:
            pattern = CLASSES[event.label].visual
            if pattern and event.start <= t < event.end:
                getattr(self, pattern)(image, event, t - event.start)
        return image

    def box(self, event: Event, bw: int, bh: int) -> tuple[int, int]:
        return int(event.x * (self.w - bw)), int(event.y * (self.h - bh))

    def disk(self, image, cx, cy, radius, colour) -> None:
        x0, x1 = max(0, int(cx - radius)), min(self.w, int(cx + radius) + 1)
        y0, y1 = max(0, int(cy - radius)), min(self.h, int(cy + radius) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        inside = (self.xx[y0:y1, x0:x1] - cx) ** 2 + (self.yy[y0:y1, x0:x1] - cy) ** 2 <= radius**2
        image[y0:y1, x0:x1][inside] = colour

    def red_square(self, image, event, _elapsed) -> None:
        side = int(0.4 * self.h)
        x, y = self.box(event, side, side)
        image[y : y + side, x : x + side] = COLOURS["red_square"]

    def blue_circle(self, image, event, elapsed) -> None:
        radius = 0.2 * self.h
        progress = elapsed / max(event.end - event.start, 1e-6)
        if event.x >= 0.5:
            progress = 1 - progress  # half of them go right to left
        cx = -radius + progress * (self.w + 2 * radius)
        cy = radius + event.y * (self.h - 2 * radius)
        self.disk(image, cx, cy, radius, COLOURS["blue_circle"])

    def green_flash(self, image, event, elapsed) -> None:
        if (elapsed * FLASH_HZ) % 1.0 < 0.5:
            bw, bh = self.w // 2, self.h // 2
            x, y = self.box(event, bw, bh)
            image[y : y + bh, x : x + bw] = COLOURS["green_flash"]

    def yellow_stripes(self, image, event, elapsed) -> None:
        bh = int(0.45 * self.h)
        _, y = self.box(event, self.w, bh)
        shift = int(elapsed * 25)  # one pixel per 1/25 s, downwards
        rows = (np.arange(y, y + bh) - shift) % 10 < 5
        band = image[y : y + bh]
        band[rows] = COLOURS["yellow_stripes"]
        band[~rows] = (30, 25, 5)

    def magenta_checker(self, image, event, _elapsed) -> None:
        side = int(0.5 * self.h)
        x, y = self.box(event, side, side)
        cells = (
            (self.xx[y : y + side, x : x + side] // 8 + self.yy[y : y + side, x : x + side] // 8)
            % 2
        ) == 0
        patch = image[y : y + side, x : x + side]
        patch[cells] = COLOURS["magenta_checker"]
        patch[~cells] = (40, 10, 40)


# -- sounds ----------------------------------------------------------------------------------


def render_audio(plan: VideoPlan, sample_rate: int, seed: int) -> np.ndarray:
    """The soundtrack, `(round(duration·rate),)` float32 in [-1, 1]."""
    rng = np.random.default_rng([seed, 3, plan.index])
    count = round(plan.duration * sample_rate)
    brown = np.cumsum(rng.normal(0, 1, count)).astype(np.float32)
    brown -= np.convolve(brown, np.ones(801, np.float32) / 801, mode="same")  # no drift
    audio = 0.015 * brown / max(float(np.std(brown)), 1e-6)
    for event in plan.events:
        pattern = CLASSES[event.label].audio
        if not pattern:
            continue
        lo, hi = round(event.start * sample_rate), min(count, round(event.end * sample_rate))
        t = np.arange(hi - lo, dtype=np.float64) / sample_rate
        audio[lo:hi] += (audio_pattern(pattern, t, sample_rate, rng) * fade(t)).astype(np.float32)
    return np.clip(audio, -1, 1)


def audio_pattern(name: str, t: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern `name` at times `t` (seconds from the event's start)."""
    if name == "tone_440":
        return 0.3 * np.sin(2 * np.pi * 440 * t)
    if name == "chirp":  # 0.5 s linear sweeps 500 → 3000 Hz
        local = t % 0.5
        return 0.3 * np.sin(2 * np.pi * (500 * local + 2500 * local**2))
    if name == "clicks":  # one click at each flash onset
        local = t % (1 / FLASH_HZ)
        return 0.8 * np.exp(-local / 0.004) * np.sign(np.sin(2 * np.pi * 2000 * t))
    if name == "noise_bursts":
        return 0.25 * rng.standard_normal(t.size) * ((t % 0.25) < 0.12)
    if name == "alarm":
        frequency = np.where((t % 0.25) < 0.125, 880.0, 1320.0)
        return 0.25 * np.sin(2 * np.pi * np.cumsum(frequency) / rate)
    if name == "hum_200":
        return 0.2 * sum(np.sin(2 * np.pi * 200 * k * t) / k for k in (1, 3, 5, 7))
    raise ValueError(name)


def fade(t: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    """Raised-cosine ramps at both ends (no clicks at event boundaries)."""
    if t.size == 0:
        return t
    edge = np.minimum(t, t[-1] - t) / seconds
    return np.where(edge >= 1, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0, 1)))


# -- files -----------------------------------------------------------------------------------


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
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write_mp4(
            temporary, scene, times, audio, config.sample_rate, config.fps,
            rotation=variant.get("rotation", 0), faststart=variant.get("faststart", True),
        )  # fmt: skip
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_synth_videos(
    out: str | Path,
    config: SynthVideoConfig,
    force: bool = False,
    edge_cases: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthVideoResult:
    """Write `config.videos` videos to `out/videos/`, their ground truth to
    `out/annotations.json` and, with `edge_cases`, the test variants to
    `out/edge_cases/`. Same settings: resumes (existing videos are complete,
    being written atomically) or returns at once. Other settings, or a non-empty
    folder not written here, are refused unless `force`."""
    out = Path(out)
    config.check()
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; give a folder for the synthetic videos")
    manifest_path, videos = out / MANIFEST, out / "videos"
    settings = asdict(config)
    previous = read_manifest(manifest_path)
    same = previous is not None and previous.get("settings") == settings
    same = same and previous.get("generator") == GENERATOR
    if previous is not None and not same:
        if not force:
            raise ConfigError(
                f"{out} holds synthetic videos made with other settings "
                f"({settings_difference(previous, settings)}); "
                "use --force to replace them, or choose another folder"
            )
        for old in videos.glob("synv_*.mp4"):
            old.unlink()
    elif previous is None and out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} is not empty and was not written by 'del data synth-video' (no {MANIFEST}); "
            "choose a new folder or use --force"
        )
    plans = plan_videos(config)
    exists = [(videos / f"{p.video_id}.mp4").exists() for p in plans]
    edges_done = not edge_cases or all((out / "edge_cases" / name).exists() for name in EDGE_CASES)
    if same and previous.get("complete") and all(exists) and edges_done and not force:
        return SynthVideoResult(
            out, plans, 0, True, 0.0, 0.0, list(EDGE_CASES) if edge_cases else []
        )
    videos.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": GENERATOR, "settings": settings, "complete": False}
    write_json_atomic(manifest_path, manifest)
    clock, written, seconds = time.perf_counter(), 0, 0.0
    for index, plan in enumerate(plans):
        if force or not exists[index]:
            write_video(videos / f"{plan.video_id}.mp4", plan, config)
            written, seconds = written + 1, seconds + plan.duration
        if progress is not None:
            progress(index + 1, len(plans))
    seconds_taken = time.perf_counter() - clock
    write_json_atomic(out / "annotations.json", annotation_json(plans, config))
    written_edges = write_edge_cases(out / "edge_cases", config, force) if edge_cases else []
    manifest.update(
        complete=True,
        classes=[dict(asdict(c), evidence=c.evidence, label_id=i) for i, c in enumerate(CLASSES)],
    )
    write_json_atomic(manifest_path, manifest)
    return SynthVideoResult(out, plans, written, False, seconds_taken, seconds, written_edges)


def annotation_json(plans: list[VideoPlan], config: SynthVideoConfig) -> dict:
    """ActivityNet / UnAV form: `{"version", "database": {vid: {...}}}`."""
    return {
        "version": GENERATOR,
        "database": {
            plan.video_id: {
                "subset": plan.subset,
                "duration": plan.duration,
                "fps": config.fps,
                "annotations": [
                    {
                        "segment": [e.start, e.end],
                        "label": CLASSES[e.label].name,
                        "label_id": e.label,
                    }
                    for e in plan.events
                ],
            }
            for plan in plans
        },
    }


# -- edge cases (for tests of the decoders and of bad-input handling) ------------------------

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


def settings_difference(previous: dict, settings: dict) -> str:
    old = previous.get("settings") or {}
    changed = [f"{k} {old.get(k)!r} → {v!r}" for k, v in settings.items() if old.get(k) != v]
    return ", ".join(changed) or f"an older generator; this is {GENERATOR}"


def read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if not isinstance(data, dict) or not str(data.get("generator", "")).startswith(
        "del-synth-video"
    ):
        raise DataError(f"{path}: not written by 'del data synth-video'; choose another folder")
    return data


def write_json_atomic(path: Path, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
