"""The settings of `del data synth`: `SynthConfig`, the size presets, the geometries.

Its own module, below the generator's parts: the timelines (`layout`), the
signal model (`signal`) and the benchmark geometry (`geometry`) all read a
`SynthConfig`, and `features` (which writes the folder) imports them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from delcli.errors import ConfigError

GEOMETRIES = ("toy", "unav100")
BENCHMARK_DIMS = {"rgb": 1024, "flow": 1024, "vggish": 128}  # UnAV-100's released streams


@dataclass(frozen=True)
class SizePreset:
    videos: int
    classes: int
    min_duration: float
    max_duration: float


SIZES = {
    "tiny": SizePreset(videos=32, classes=8, min_duration=6.0, max_duration=20.0),
    "default": SizePreset(videos=400, classes=16, min_duration=10.0, max_duration=60.0),
    "large": SizePreset(videos=3000, classes=32, min_duration=10.0, max_duration=60.0),
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated files (recorded in `synth.json`)."""

    size: str = "default"
    seed: int = 0
    videos: int = 400
    classes: int = 16
    min_duration: float = 10.0
    max_duration: float = 60.0
    rgb_dim: int = 64
    flow_dim: int = 64
    audio_dim: int = 64
    like: str | None = None  # take videos, events and classes from this annotation file
    max_videos: int | None = None
    geometry: str = "toy"  # or "unav100": the dims above are then the latent streams'

    @property
    def output_dims(self) -> dict[str, int]:
        if self.geometry == "unav100":
            return dict(BENCHMARK_DIMS)
        return {"rgb": self.rgb_dim, "flow": self.flow_dim, "vggish": self.audio_dim}

    def settings(self) -> dict:
        """What synth.json records; `geometry` only when not the original toy one, so
        folders written before the option existed still match."""
        settings = asdict(self)
        if settings["geometry"] == "toy":
            del settings["geometry"]
        return settings


MAX_CLASSES = 1000  # the largest benchmark (EPIC-Kitchens nouns) has 300


def synth_config(
    size: str = "default",
    seed: int = 0,
    classes: int | None = None,
    like: str | Path | None = None,
    max_videos: int | None = None,
    dims: tuple[int, int, int] = (64, 64, 64),
    geometry: str = "toy",
) -> SynthConfig:
    """A validated `SynthConfig` from a size preset and the user's options."""
    if geometry not in GEOMETRIES:
        raise ConfigError(f"unknown geometry '{geometry}'; allowed: {', '.join(GEOMETRIES)}")
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}'; allowed: {', '.join(SIZES)}")
    if like is not None and classes is not None:
        raise ConfigError("--classes cannot be combined with --like (the file's classes are used)")
    if classes is not None and not 1 <= classes <= MAX_CLASSES:
        raise ConfigError(f"--classes {classes}; must lie in 1…{MAX_CLASSES}")
    if max_videos is not None and max_videos < 1:
        raise ConfigError(f"--max-videos {max_videos}; must be >= 1")
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"dims {dims}; three positive sizes (rgb, flow, vggish)")
    preset = SIZES[size]
    videos = preset.videos if max_videos is None else min(preset.videos, max_videos)
    return SynthConfig(
        size=size,
        seed=seed,
        videos=videos if like is None else 0,
        classes=(classes or preset.classes) if like is None else 0,
        min_duration=preset.min_duration,
        max_duration=preset.max_duration,
        rgb_dim=dims[0],
        flow_dim=dims[1],
        audio_dim=dims[2],
        like=None if like is None else str(Path(like).resolve()),
        max_videos=max_videos,
        geometry=geometry,
    )
