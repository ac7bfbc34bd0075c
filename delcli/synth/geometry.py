"""The benchmarks' feature geometry for `del data synth --geometry unav100`.

The signal model (`signal`) writes small, centred, unit-scale streams
(the `toy` geometry). Real benchmark features are not like that, and a model
that fuses toy features can still ignore a real visual stream. This module maps
a video's toy streams onto the statistics of UnAV-100's released features:

- visual: `rgb` and `flow`, 1024 channels each, like I3D's pooled activations —
  the class evidence (the toy stream's 64 channels) spread by a fixed random
  map into the 1024 channels, i.e. it lives in a 64-d subspace; correlated
  noise from a 16-d AR(1) process in a fixed channel basis plus white noise; a
  per-video offset in an 8-d basis (camera, scene, encoding); a large common
  per-channel mean (`VISUAL_MEAN_RATIO` × the channel's spread) and per-channel
  scales; clipped at zero (activations after a ReLU).
- audio: `vggish`, 128 channels like VGGish after PCA and 8-bit quantisation —
  the toy audio mixed by a fixed 64 → 128 map, per-channel gains and offsets,
  then `round(127.5 + 28·x)` clipped to 0…255.

The maps are fixed for a seed (`make_geometry`); the noise and offsets are drawn
per video. Class evidence stays linearly readable (the probe table of `del data
synth` shows it); what changes is everything around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from delcli.synth.config import BENCHMARK_DIMS
from delcli.synth.signal import ar1

VISUAL_MEAN_RATIO = 2.3  # common per-channel mean / per-channel spread (UnAV-100's I3D)
NOISE_RANK, OFFSET_RANK = 16, 8
AUDIO_SCALE = 28.0  # 8-bit levels per unit of the mixed audio


@dataclass
class StreamMap:
    """The fixed map of one toy stream into a benchmark stream."""

    mix: np.ndarray  # (latent, D)
    noise_basis: np.ndarray  # (NOISE_RANK, D)
    offset_basis: np.ndarray  # (OFFSET_RANK, D)
    scale: np.ndarray  # (D,)
    mean: np.ndarray  # (D,)


@dataclass
class Geometry:
    streams: dict[str, StreamMap]


def make_geometry(seed: int, latent: dict[str, int]) -> Geometry:
    """The fixed maps for a dataset with toy streams of `latent` channels per stream."""
    rng = np.random.default_rng([seed, 3])
    streams = {}
    for name, dim in BENCHMARK_DIMS.items():
        mix = rng.normal(size=(latent[name], dim)) / math.sqrt(latent[name])
        if name == "vggish":
            gains = rng.uniform(0.5, 1.5, size=dim)
            streams[name] = StreamMap(
                mix=mix * gains,
                noise_basis=np.zeros((NOISE_RANK, dim)),
                offset_basis=rng.normal(size=(OFFSET_RANK, dim)) * 0.3,
                scale=np.ones(dim),
                mean=rng.normal(size=dim) * 1.0,
            )
            continue
        spread = math.sqrt(1.0 + 0.7**2 + 0.5**2 + 0.6**2)  # evidence, correlated, white, offset
        streams[name] = StreamMap(
            mix=mix,
            noise_basis=rng.normal(size=(NOISE_RANK, dim)) / math.sqrt(NOISE_RANK),
            offset_basis=rng.normal(size=(OFFSET_RANK, dim)) / math.sqrt(OFFSET_RANK),
            scale=np.exp(rng.normal(np.log(0.3), 0.35, size=dim)),
            mean=VISUAL_MEAN_RATIO * spread * rng.uniform(0.8, 1.2, size=dim),
        )
    return Geometry(streams)


def to_benchmark_geometry(
    geometry: Geometry, streams: dict[str, np.ndarray], seed: int, index: int
) -> dict[str, np.ndarray]:
    """Video `index`'s toy streams (`rgb`, `flow`, `vggish`; (T, latent)) in the benchmark
    geometry: (T, 1024), (T, 1024), (T, 128) float32."""
    rng = np.random.default_rng([seed, 4, index])
    out = {}
    for name, x in streams.items():
        m = geometry.streams[name]
        length = x.shape[0]
        evidence = x.astype(np.float64) @ m.mix
        offset = rng.normal(size=OFFSET_RANK) @ m.offset_basis
        if name == "vggish":
            mixed = evidence + offset + m.mean
            out[name] = np.clip(np.round(127.5 + AUDIO_SCALE * mixed), 0, 255).astype(np.float32)
            continue
        noise = 0.7 * ar1(rng, length, NOISE_RANK, 0.9) @ m.noise_basis
        noise += 0.5 * rng.normal(size=(length, m.mix.shape[1]))
        value = m.scale * (m.mean + evidence + noise + 0.6 * offset)
        out[name] = np.maximum(value, 0.0).astype(np.float32)
    return out
