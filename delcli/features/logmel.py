"""The VGGish log-mel front end, in plain torch (no torchaudio, no librosa).

Audio at 16 kHz is cut into 25 ms frames every 10 ms (400 / 160 samples), each
multiplied by a periodic Hann window, its 512-point rfft magnitude mapped onto
64 triangular HTK-mel bands between 125 and 7500 Hz (the DC bin gets no weight)
and compressed with log(mel + 0.01). 96 consecutive frames (0.96 s) make one
VGGish example. These are the constants of the AudioSet VGGish release.

Examples are cut either every `hop_seconds` from the start (VGGish's own
framing: 0.96 s, or 0.32 s for UnAV-100) or one per step of a `FeatureGrid`,
centred on the step (`grid_example_starts`), which on UnAV-100's grid is the
same thing: example i starts at 0.32·i s, the start of step i's window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from delcli.features.base import FeatureGrid


@dataclass(frozen=True)
class LogMelSpec:
    """Front-end constants; the defaults are VGGish's."""

    sample_rate: int = 16000
    window: int = 400  # samples, 25 ms
    hop: int = 160  # samples, 10 ms
    fft: int = 512
    bands: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.01

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def num_frames(self, num_samples: int) -> int:
        return 0 if num_samples < self.window else 1 + (num_samples - self.window) // self.hop

    def samples_for(self, num_frames: int) -> int:
        """Samples needed for `num_frames` frames."""
        return 0 if num_frames <= 0 else (num_frames - 1) * self.hop + self.window


VGGISH = LogMelSpec()
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames: one VGGish example


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray | float:
    """HTK mel scale: 1127 · ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_band_edges(spec: LogMelSpec = VGGISH) -> np.ndarray:
    """(bands + 2,) band edges in Hz: band b rises from edge b, peaks at b+1, falls to b+2."""
    lo, hi = hertz_to_mel(spec.fmin), hertz_to_mel(spec.fmax)
    mels = np.linspace(lo, hi, spec.bands + 2)
    return 700.0 * np.expm1(mels / 1127.0)


@lru_cache(maxsize=8)
def _mel_matrix_numpy(spec: LogMelSpec) -> np.ndarray:
    bins = spec.fft // 2 + 1
    bin_mel = hertz_to_mel(np.linspace(0.0, spec.sample_rate / 2, bins))
    edge_mel = np.linspace(hertz_to_mel(spec.fmin), hertz_to_mel(spec.fmax), spec.bands + 2)
    lower, centre, upper = edge_mel[:-2], edge_mel[1:-1], edge_mel[2:]
    rising = (bin_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bin_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # HTK bands exclude the DC bin, as VGGish does
    weights.flags.writeable = False
    return weights


def mel_matrix(spec: LogMelSpec = VGGISH, dtype: torch.dtype = torch.float64) -> Tensor:
    """(fft/2 + 1, bands) triangular HTK-mel weights; row 0 (DC) is zero."""
    return torch.tensor(_mel_matrix_numpy(spec), dtype=dtype)


def periodic_hann(length: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """0.5 − 0.5·cos(2πn / length), n = 0 … length−1 (the 'periodic' Hann of VGGish)."""
    n = torch.arange(length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / length)).to(dtype)


FRAMES_PER_CHUNK = 4096
"""Log-mel frames computed at once (41 s of 16 kHz audio at a 10 ms hop)."""


def log_mel_frames(waveform: Tensor | np.ndarray, spec: LogMelSpec = VGGISH) -> Tensor:
    """(F, bands) log-mel frames of a mono waveform (N,) at `spec.sample_rate`.

    F = 1 + (N − window) // hop (0 when N < window); frame j covers samples
    [j·hop, j·hop + window). Float32 in → float32 out, float64 → float64.
    """
    x = torch.as_tensor(waveform)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel_frames wants a mono (N,) waveform, got shape {tuple(x.shape)}")
    if x.shape[0] < spec.window:
        return x.new_zeros((0, spec.bands))
    window = periodic_hann(spec.window, x.dtype).to(x.device)
    mel_weights = mel_matrix(spec, x.dtype).to(x.device)
    frames = x.unfold(0, spec.window, spec.hop)  # a view: no copy of the waveform
    out = x.new_empty((frames.shape[0], spec.bands))
    # In chunks: the windowed frames and their spectra of a whole long video would take
    # ~0.5 GB per 10 minutes; frames are independent, so chunking changes no number.
    for first in range(0, frames.shape[0], FRAMES_PER_CHUNK):
        chunk = frames[first : first + FRAMES_PER_CHUNK] * window
        magnitude = torch.fft.rfft(chunk, n=spec.fft).abs()
        torch.log(magnitude @ mel_weights + spec.log_offset, out=out[first : first + len(chunk)])
    return out


def frame_examples(frames: Tensor, starts: Tensor | np.ndarray, length: int = EXAMPLE_FRAMES):
    """(E, length, bands) examples; example e = frames[starts[e] : starts[e] + length].

    Every example must lie inside `frames` (pad the waveform first).
    """
    starts = torch.as_tensor(np.asarray(starts), dtype=torch.long)
    if len(starts) == 0:
        return frames.new_zeros((0, length, frames.shape[1]))
    if int(starts.min()) < 0 or int(starts.max()) + length > frames.shape[0]:
        raise ValueError("an example reaches outside the log-mel frames; pad the waveform")
    windows = frames.unfold(0, length, 1)  # (F − length + 1, bands, length), a view
    return windows[starts].transpose(1, 2)


def log_mel_examples(
    waveform: Tensor | np.ndarray, hop_seconds: float = 0.96, spec: LogMelSpec = VGGISH
) -> Tensor:
    """(E, 96, bands) VGGish examples every `hop_seconds`, the first at 0 s.

    E = 1 + (F − 96) // hop_frames whole examples (0 when shorter than 0.96 s), as
    VGGish frames them; hop 0.32 s gives UnAV-100's overlapping examples.
    """
    frames = log_mel_frames(waveform, spec)
    hop = max(1, round(hop_seconds * spec.frame_rate))
    count = 0 if frames.shape[0] < EXAMPLE_FRAMES else 1 + (frames.shape[0] - EXAMPLE_FRAMES) // hop
    return frame_examples(frames, torch.arange(count) * hop)


def grid_example_starts(grid: FeatureGrid, num_steps: int, spec: LogMelSpec = VGGISH):
    """(T,) int64 first log-mel frame of each step's 0.96 s example, centred on the step.

    Negative when a step's centre is less than 0.48 s from the start (a grid
    whose window is shorter than 0.96 s): the waveform is then padded in front.
    """
    half = EXAMPLE_FRAMES / spec.frame_rate / 2
    return np.rint((grid.step_centres(num_steps) - half) * spec.frame_rate).astype(np.int64)


def pad_for_examples(
    waveform: np.ndarray, starts: np.ndarray, spec: LogMelSpec = VGGISH
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad `waveform` so that every example of `starts` is inside it.

    Returns the padded waveform and the starts shifted by the frames added in front.
    """
    front = max(0, -int(starts.min())) if len(starts) else 0
    needed = spec.samples_for(int(starts.max()) + front + EXAMPLE_FRAMES) if len(starts) else 0
    have = len(waveform) + front * spec.hop
    padded = np.pad(waveform, (front * spec.hop, max(0, needed - have)))
    return padded, starts + front
