"""Synthetic audio-visual features in UnAV-100's layout (`del data synth`).

The embedded benchmark for tests, benchmarks and demos: deterministic for a
seed, written as `annotations.json` + `features/<vid>_{rgb,flow,vggish}.npy`
on UnAV-100's grid (step i centred at 0.32·i + 0.48 s).

Signal model, per video and stream (`(T, D)` float32):

    x(t) = correlated noise(t) + scene style(t) + Σ_events evidence(t) + Σ_distractors burst(t)

- Classes differ in *evidence*: `audio` (a class pattern in the audio stream
  only), `visual` (visual only), `audio-visual` (a weaker class pattern in
  each stream, so combining them pays), and `conjunction` (a visual and an
  audio pattern from a shared pool; each appears in other conjunction classes
  and as a distractor, so only the pair names the class).
- Classes differ in *texture*, which is what makes temporal context matter:
  `steady` (soft ramps, slow wobble), `intermittent` (evidence comes in
  bursts with gaps inside the event, independently per stream), `boundary`
  (the class pattern is strong only near the onset and offset; in between, a
  generic "something is going on" pattern shared by all boundary classes).
- The audio of a two-stream event is shifted from the visual by up to ±3
  steps; onsets and offsets are sigmoid ramps; the flow stream responds to
  change of the visual evidence (motion at boundaries) as well as its level.
- Background: AR(1) noise in a fixed low-rank channel basis plus white noise,
  a slow scene factor shared by both modalities, a per-shot style offset that
  jumps at scene cuts, and single-stream distractor bursts of class patterns.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from delcli.data.annotations import Annotations, build_annotations
from delcli.data.formats import read_annotations, read_json
from delcli.data.synth_stats import (
    FPS,
    STRIDE,
    WINDOW,
    SynthStatistics,
    dataset_statistics,
    grid_length,
    seconds_to_steps,
)
from delcli.errors import ConfigError, DataError
from delcli.settings import from_dict

GENERATOR = "del-synth-1"
EVIDENCE_TYPES = ("audio-visual", "audio", "visual", "conjunction")
TEXTURES = ("steady", "intermittent", "boundary")
SPLIT_SHARES = {"train": 0.7, "validation": 0.15, "test": 0.15}

# Per-channel RMS of a class pattern at full strength, relative to unit background noise.
AMPLITUDE = {"visual": 0.5, "audio": 0.5}
# Strength of each stream's class pattern per evidence type (audio-visual: redundant, weaker).
STRENGTH = {"audio-visual": 0.7, "audio": 1.0, "visual": 1.0, "conjunction": 1.0}
MAX_LAG_STEPS = 3.0
GEOMETRIC_P = 0.3
OVERLAP_CHANCE = 0.45  # share of events placed without avoiding the others


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


def synth_config(
    size: str = "default",
    seed: int = 0,
    classes: int | None = None,
    like: str | Path | None = None,
    max_videos: int | None = None,
    dims: tuple[int, int, int] = (64, 64, 64),
) -> SynthConfig:
    """A validated `SynthConfig` from a size preset and the user's options."""
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}'; allowed: {', '.join(SIZES)}")
    if like is not None and classes is not None:
        raise ConfigError("--classes cannot be combined with --like (the file's classes are used)")
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes {classes}; must be >= 1")
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
    )


@dataclass(frozen=True)
class ClassDesign:
    name: str
    evidence: str
    texture: str
    visual: int | None  # row of the visual pattern bank, None = no visual evidence
    audio: int | None


@dataclass
class Design:
    """Classes and the fixed random geometry of a dataset (patterns, noise bases)."""

    classes: list[ClassDesign]
    visual_patterns: np.ndarray  # (P_v, D_v); the last row is the generic sustain pattern
    audio_patterns: np.ndarray  # (P_a, D_a); likewise
    conjunction_visual: list[int]  # pool rows, distractor sources
    conjunction_audio: list[int]
    noise_bases: dict[str, np.ndarray] = field(default_factory=dict)  # (D, r) per modality
    scene_bases: dict[str, np.ndarray] = field(default_factory=dict)  # (D, 4)

    def bank(self, modality: str) -> np.ndarray:
        return self.visual_patterns if modality == "visual" else self.audio_patterns


@dataclass
class VideoLayout:
    video_id: str
    subset: str
    duration: float
    events: list[tuple[float, float, int]]  # (start s, end s, class index)


def evidence_of(index: int) -> tuple[str, str]:
    """Evidence type and texture of class `index`: every type meets every texture."""
    return EVIDENCE_TYPES[index % 4], TEXTURES[(index + index // 4) % 3]


def make_design(config: SynthConfig, class_names: list[str] | None = None) -> Design:
    rng = np.random.default_rng([config.seed, 0])
    count = len(class_names) if class_names is not None else config.classes
    kinds = [evidence_of(i) for i in range(count)]
    n_conjunction = sum(kind == "conjunction" for kind, _ in kinds)
    pool = math.ceil(math.sqrt(n_conjunction)) if n_conjunction else 0
    visual_rows = audio_rows = pool  # rows 0..pool-1: the shared conjunction pool
    classes, conjunctions = [], 0
    for index, (kind, texture) in enumerate(kinds):
        visual = audio = None
        if kind == "conjunction":
            # distinct (visual, audio) pairs; each pool pattern serves several classes
            r, i = divmod(conjunctions, pool)
            visual, audio = i, (i + r) % pool
            conjunctions += 1
        if kind in ("audio-visual", "visual"):
            visual, visual_rows = visual_rows, visual_rows + 1
        if kind in ("audio-visual", "audio"):
            audio, audio_rows = audio_rows, audio_rows + 1
        name = class_names[index] if class_names is not None else f"{index:02d}-{kind}-{texture}"
        classes.append(ClassDesign(name, kind, texture, visual, audio))
    dims = {"visual": config.rgb_dim + config.flow_dim, "audio": config.audio_dim}
    banks = {
        "visual": patterns(rng, visual_rows + 1, dims["visual"]),
        "audio": patterns(rng, audio_rows + 1, dims["audio"]),
    }
    return Design(
        classes=classes,
        visual_patterns=banks["visual"],
        audio_patterns=banks["audio"],
        conjunction_visual=list(range(pool)),
        conjunction_audio=list(range(pool)),
        noise_bases={
            m: rng.normal(size=(d, max(1, d // 4))) / math.sqrt(max(1, d // 4))
            for m, d in dims.items()
        },
        scene_bases={m: rng.normal(size=(d, 4)) / 2.0 for m, d in dims.items()},
    )


def patterns(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """(rows, dim) random directions with unit per-channel RMS."""
    bank = rng.normal(size=(rows, dim))
    return bank / np.sqrt((bank**2).mean(axis=1, keepdims=True))


def sample_layouts(config: SynthConfig) -> list[VideoLayout]:
    """Durations, splits and events of the generated videos."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.videos
    subsets = []
    for split, share in SPLIT_SHARES.items():
        subsets += [split] * round(share * n)
    subsets = (subsets + ["train"] * n)[:n]
    subsets = [subsets[i] for i in rng.permutation(n)]
    deck: list[int] = []
    layouts = []
    for index in range(n):
        duration = round(float(rng.uniform(config.min_duration, config.max_duration)), 2)
        events: list[tuple[float, float, int]] = []
        count = min(int(rng.geometric(GEOMETRIC_P)), 8)
        for _ in range(count):
            if not deck:  # classes drawn from shuffled decks: balanced counts
                deck = list(rng.permutation(config.classes))
            label = int(deck.pop())
            may_overlap = rng.random() < OVERLAP_CHANCE
            for _attempt in range(20):
                start, end = sample_segment(rng, duration, count)
                clashes = [c for s, e, c in events if s < end and start < e]
                if label not in clashes and (may_overlap or not clashes):
                    events.append((start, end, label))
                    break
        layouts.append(VideoLayout(f"synth_{index:05d}", subsets[index], duration, sorted(events)))
    return layouts


def sample_segment(rng: np.random.Generator, duration: float, count: int) -> tuple[float, float]:
    """An event from about 1 s to the whole video, roughly as in UnAV-100: a lone event
    often spans the video; with `count` events per video, long ones get rarer."""
    draw = rng.random()
    if draw < (0.5 if count == 1 else 0.1):
        return 0.0, duration
    if draw < (0.8 if count == 1 else 0.3):
        length = duration * rng.uniform(0.4, 0.95)
    else:
        length = math.exp(rng.uniform(0.0, math.log(max(1.0, 0.4 * duration))))
    start = rng.uniform(0.0, max(0.0, duration - length))
    return round(start, 2), round(min(duration, start + length), 2)


def layouts_like(path: str, max_videos: int | None) -> tuple[list[VideoLayout], list[str]]:
    """Videos, events and classes of a real annotation file (the first `max_videos`)."""
    annotations = read_annotations(path)
    count = (
        annotations.num_videos if max_videos is None else min(max_videos, annotations.num_videos)
    )
    if count == 0:
        raise DataError(f"{path}: no videos to imitate")
    layouts = []
    for index in range(count):
        events = annotations.event_video == index
        segments, labels = annotations.segments[events], annotations.labels[events]
        duration = float(annotations.durations[index])
        if not math.isfinite(duration):  # no duration in the file: up to the last event
            duration = float(segments[:, 1].max()) + 1.0 if len(labels) else 10.0
        layouts.append(
            VideoLayout(
                annotations.video_ids[index],
                annotations.subsets[index],
                duration,
                [(float(s), float(e), int(c)) for (s, e), c in zip(segments, labels, strict=True)],
            )
        )
    return layouts, list(annotations.classes)


def synthesize_video(
    design: Design, config: SynthConfig, layout: VideoLayout, index: int
) -> dict[str, np.ndarray]:
    """The `rgb`, `flow` and `vggish` arrays (T, D) float32 of one video."""
    rng = np.random.default_rng([config.seed, 2, index])
    length = grid_length(layout.duration)
    t = np.arange(length, dtype=np.float64)
    scene = ar1(rng, length, 4, 0.95)
    signal = Signal(
        level={m: background(rng, design, m, length, scene) for m in ("visual", "audio")},
        motion=np.zeros((length, design.visual_patterns.shape[1])),
    )
    gain = rng.uniform(0.8, 1.2)
    for start, end, label in layout.events:
        cls = design.classes[label]
        s, e = seconds_to_steps(start), seconds_to_steps(end)
        tau = rng.uniform(0.4, 1.2)
        strength = gain * rng.uniform(0.8, 1.2) * STRENGTH[cls.evidence]
        two_streams = cls.visual is not None and cls.audio is not None
        lag = rng.uniform(-MAX_LAG_STEPS, MAX_LAG_STEPS) if two_streams else 0.0
        for modality, row in (("visual", cls.visual), ("audio", cls.audio)):
            if row is None:
                continue
            shift = lag if modality == "audio" else 0.0
            own, generic = texture_envelopes(rng, cls.texture, t - shift, s, e, tau)
            amplitude = AMPLITUDE[modality] * strength
            signal.add(modality, own * amplitude, design.bank(modality)[row])
            signal.add(modality, generic * amplitude, design.bank(modality)[-1])
    add_distractors(rng, design, signal, t, gain)
    visual, split = signal.level["visual"], config.rgb_dim
    return {
        "rgb": visual[:, :split].astype(np.float32),
        "flow": (0.5 * visual[:, split:] + 1.5 * signal.motion[:, split:]).astype(np.float32),
        "vggish": signal.level["audio"].astype(np.float32),
    }


@dataclass
class Signal:
    """A video's streams under construction: `level` per modality (T, D); `motion` (T, D_v)
    is the visual change the flow stream sees."""

    level: dict[str, np.ndarray]
    motion: np.ndarray

    def add(self, modality: str, envelope: np.ndarray, pattern: np.ndarray) -> None:
        """Add `envelope (T,) ⊗ pattern (D,)`; visual patterns also move by |d envelope / dt|."""
        if not envelope.any():
            return
        self.level[modality] += np.outer(envelope, pattern)
        if modality == "visual":
            self.motion += np.outer(
                np.abs(np.gradient(envelope)) if len(envelope) > 1 else np.zeros(1), pattern
            )


def ar1(rng: np.random.Generator, length: int, dim: int, rho: float) -> np.ndarray:
    """(length, dim) stationary AR(1) noise with unit variance."""
    shocks = rng.normal(size=(length, dim)) * math.sqrt(1.0 - rho**2)
    out = np.empty((length, dim))
    out[0] = rng.normal(size=dim)
    for step in range(1, length):
        out[step] = rho * out[step - 1] + shocks[step]
    return out


def background(
    rng: np.random.Generator, design: Design, modality: str, length: int, scene: np.ndarray
) -> np.ndarray:
    """Correlated noise, the shared scene factor, and a style offset that jumps at cuts."""
    basis = design.noise_bases[modality]
    dim = basis.shape[0]
    noise = 0.8 * ar1(rng, length, basis.shape[1], 0.85) @ basis.T
    noise += 0.5 * rng.normal(size=(length, dim))
    noise += scene @ design.scene_bases[modality].T
    cuts = np.sort(rng.integers(0, length, size=rng.poisson(length / 80.0)))
    shots = np.searchsorted(cuts, np.arange(length), side="right")
    styles = 0.4 * rng.normal(size=(len(cuts) + 1, dim))
    return noise + styles[shots]


def ramp(t: np.ndarray, start: float, end: float, tau: float) -> np.ndarray:
    """Soft box: sigmoid onset at `start`, sigmoid offset at `end` (steps)."""
    return sigmoid((t - start) / tau) * sigmoid((end - t) / tau)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))


def texture_envelopes(
    rng: np.random.Generator, texture: str, t: np.ndarray, s: float, e: float, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """(own, generic): amplitude over time of the class pattern and of the sustain pattern."""
    base = ramp(t, s, e, tau)
    if texture == "steady":
        wobble = 1.0 + 0.2 * ar1(rng, len(t), 1, 0.9)[:, 0]
        return base * wobble, np.zeros_like(base)
    if texture == "intermittent":
        gate, position, on = np.zeros_like(base), s, True
        while position < e:
            run = rng.uniform(2.0, 5.0) if on else rng.uniform(1.0, 4.0)
            if on:
                gate += ramp(t, position, position + run, 0.5)
            position, on = position + run, not on
        return base * np.minimum(gate, 1.0) * 1.2, np.zeros_like(base)
    # boundary: the class shows itself at onset and offset; a shared pattern in between
    markers = np.exp(-0.5 * (t - s) ** 2) + np.exp(-0.5 * (t - e) ** 2)
    return 0.25 * base + 1.3 * markers, 0.9 * base


def add_distractors(
    rng: np.random.Generator, design: Design, signal: Signal, t: np.ndarray, gain: float
) -> None:
    """Single-stream bursts of class patterns that belong to no event."""
    pools = {"visual": design.conjunction_visual, "audio": design.conjunction_audio}
    for _ in range(rng.poisson(len(t) / 30.0)):
        modality = "visual" if rng.random() < 0.5 else "audio"
        if pools[modality] and rng.random() < 0.4:  # conjunction patterns, longer
            row, length = rng.choice(pools[modality]), rng.uniform(3.0, 12.0)
        else:
            row, length = rng.integers(0, len(design.bank(modality)) - 1), rng.uniform(1.0, 6.0)
        centre = rng.uniform(0, len(t))
        envelope = ramp(t, centre - length / 2, centre + length / 2, 0.5)
        amplitude = AMPLITUDE[modality] * gain * rng.uniform(0.5, 1.0)
        signal.add(modality, envelope * amplitude, design.bank(modality)[row])


# ---------------------------------------------------------------------------------------------
# The folder: annotations.json, features/, synth.json — each written atomically.


@dataclass
class SynthResult:
    folder: Path
    statistics: SynthStatistics
    classes: list[ClassDesign]
    written: int  # videos whose features this run wrote
    skipped: bool  # the folder was complete with these settings: nothing written


def write_synth_dataset(
    out: str | Path,
    config: SynthConfig,
    force: bool = False,
    probe: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> SynthResult:
    """Generate the dataset of `config` into folder `out` and measure it.

    A rerun with the same settings resumes an interrupted run (videos whose
    three files exist are kept) or, when complete, returns at once. Other
    settings, or a non-empty folder not written by this generator, are refused
    unless `force`. `probe=False` skips the linear probes (statistics without
    accuracies). `progress(stage, done, total)` reports each video written
    (stage `videos`) and each probe fitted (stage `probe`).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; give a folder for the synthetic dataset")
    manifest_path = out / "synth.json"
    settings = asdict(config)
    previous = read_manifest(manifest_path)
    same = previous is not None and (previous.get("generator"), previous.get("settings")) == (
        GENERATOR,
        settings,
    )
    if previous is not None and not same:
        if not force:
            raise ConfigError(
                f"{out} holds a synthetic dataset made with other settings "
                f"({settings_difference(previous.get('settings') or {}, settings)}); "
                "use --force to replace it, or choose another folder"
            )
        remove_features(out / "features")
    elif previous is None and out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} is not empty and was not written by 'del data synth' (no synth.json); "
            "choose a new folder or use --force"
        )
    if config.like is not None:
        layouts, class_names = layouts_like(config.like, config.max_videos)
    else:
        layouts, class_names = sample_layouts(config), None
    design = make_design(config, class_names)
    features = out / "features"
    complete = same and previous.get("complete") and (out / "annotations.json").exists()
    if complete and not force and all_features_exist(features, layouts):
        statistics = from_dict(SynthStatistics, previous["statistics"])
        return SynthResult(out, statistics, design.classes, written=0, skipped=True)
    features.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": GENERATOR, "settings": settings, "complete": False}
    write_json_atomic(manifest_path, manifest)
    written = 0
    for index, layout in enumerate(layouts):
        if force or not all_features_exist(features, [layout]):
            for stream, array in synthesize_video(design, config, layout, index).items():
                save_npy_atomic(features / f"{layout.video_id}_{stream}.npy", array)
            written += 1
        if progress is not None:
            progress("videos", index + 1, len(layouts))
    write_json_atomic(out / "annotations.json", annotation_json(layouts, design))
    statistics = dataset_statistics(
        layout_annotations(layouts, design, source=str(out / "annotations.json")),
        features,
        evidence=[c.evidence for c in design.classes],
        probe=probe,
        progress=None if progress is None else lambda done, total: progress("probe", done, total),
    )
    manifest.update(
        complete=True,
        grid={"fps": FPS, "stride": STRIDE, "window": WINDOW},
        dims={"rgb": config.rgb_dim, "flow": config.flow_dim, "vggish": config.audio_dim},
        classes=[asdict(c) for c in design.classes],
        statistics=asdict(statistics),
    )
    write_json_atomic(manifest_path, manifest)
    return SynthResult(out, statistics, design.classes, written=written, skipped=False)


def annotation_json(layouts: list[VideoLayout], design: Design) -> dict:
    """UnAV-100 / ActivityNet form: `{"version", "database": {vid: {...}}}`."""
    database = {}
    for layout in layouts:
        database[layout.video_id] = {
            "subset": layout.subset,
            "duration": layout.duration,
            "fps": FPS,
            "annotations": [
                {
                    "segment": [start, end],
                    "label": design.classes[label].name,
                    "label_id": label,
                }
                for start, end, label in layout.events
            ],
        }
    return {"version": GENERATOR, "database": database}


def layout_annotations(layouts: list[VideoLayout], design: Design, source: str) -> Annotations:
    """The written ground truth with the full class list (reading the file back would
    drop classes that have no event)."""
    return build_annotations(
        [(layout.video_id, layout.duration, layout.subset) for layout in layouts],
        [
            (index, start, end, design.classes[label].name)
            for index, layout in enumerate(layouts)
            for start, end, label in layout.events
        ],
        [c.name for c in design.classes],
        source,
    )


def read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not str(data.get("generator", "")).startswith("del-synth"):
        raise DataError(f"{path}: not written by 'del data synth'; choose another folder")
    return data


def settings_difference(old: dict, new: dict) -> str:
    changed = [f"{key} {old.get(key)!r} → {new[key]!r}" for key in new if old.get(key) != new[key]]
    return ", ".join(changed) or f"an older generator; this is {GENERATOR}"


def all_features_exist(folder: Path, layouts: list[VideoLayout]) -> bool:
    return all(
        (folder / f"{layout.video_id}_{stream}.npy").exists()
        for layout in layouts
        for stream in ("rgb", "flow", "vggish")
    )


def remove_features(folder: Path) -> None:
    """Delete the generator's feature files from an earlier run (nothing else)."""
    if folder.is_dir():
        for path in folder.glob("*.npy"):
            if path.name.endswith(("_rgb.npy", "_flow.npy", "_vggish.npy")):
                path.unlink()


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, array)
    os.replace(temporary, path)


def write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
