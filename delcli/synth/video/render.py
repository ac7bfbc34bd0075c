"""A video plan's pictures and soundtrack, drawn with numpy.

Each class's visual pattern is drawn while its event lasts, its audio pattern
mixed in with short fades. Background: a dark gradient whose brightness drifts
slowly, a grey disk that wanders all the time (motion that is no event), and
quiet brown noise. Deterministic for the seed and the video's index.
"""

from __future__ import annotations

import math

import numpy as np

from delcli.synth.video.timeline import CLASSES, Event, VideoPlan

COLOURS = {  # RGB of each visual pattern: distinct hues, far from the dark background
    "red_square": (220, 40, 40),
    "blue_circle": (40, 80, 235),
    "green_flash": (40, 220, 70),
    "yellow_stripes": (235, 215, 40),
    "magenta_checker": (215, 40, 205),
}
FLASH_HZ = 3.0  # green flashes and their clicks


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
