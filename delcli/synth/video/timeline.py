"""The classes of the synthetic videos, their settings, and each video's timeline.

Events last 1–6 s, 1–5 per video, at most two at a time, never two of one class at
once, on the frame grid. A video's plan depends only on the seed and its index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from delcli.errors import ConfigError

GENERATOR = "del-synth-video-1"


MAX_SECONDS = 3 * 3600.0  # per video; test videos, not films
MAX_SIDE = 3840  # 4K UHD


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
        if not 0.5 <= self.min_duration <= self.max_duration <= MAX_SECONDS:
            raise ConfigError(
                f"--duration-range {self.min_duration:g}:{self.max_duration:g}: "
                f"need 0.5 <= MIN <= MAX <= {MAX_SECONDS:g} seconds"
            )
        if min(self.width, self.height) < 16 or max(self.width, self.height) > MAX_SIDE:
            raise ConfigError(
                f"--size {self.width}x{self.height}: need 16x16 to {MAX_SIDE}x{MAX_SIDE}"
            )
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
