"""The signal model of `del data synth`: a video's timeline made into feature streams.

Per video and stream (`(T, D)` float32):

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

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from delcli.synth.stats import grid_length, seconds_to_steps

if TYPE_CHECKING:
    from delcli.synth.config import SynthConfig
    from delcli.synth.layout import VideoLayout

EVIDENCE_TYPES = ("audio-visual", "audio", "visual", "conjunction")
TEXTURES = ("steady", "intermittent", "boundary")

# Per-channel RMS of a class pattern at full strength, relative to unit background noise.
AMPLITUDE = {"visual": 0.5, "audio": 0.5}
# Strength of each stream's class pattern per evidence type (audio-visual: redundant, weaker).
STRENGTH = {"audio-visual": 0.7, "audio": 1.0, "visual": 1.0, "conjunction": 1.0}
MAX_LAG_STEPS = 3.0


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
