"""MERT-v1 music/audio features (Li et al. 2023) pooled per grid step: the `mert` extractor.

MERT-v1 (`m-a-p/MERT-v1-95M`, `-330M`) is a HuBERT: a strided 1-D convolution
front end on the raw 24 kHz waveform (one frame per 320 samples: 75 Hz), a
convolutional position embedding and a post-norm Transformer. Its authors
publish it with their own model code (`trust_remote_code`), which del never
runs; with the v1 configuration (no CQT branch, no DeepNorm, no attention
relaxation) that code computes exactly `transformers`' `HubertModel`, which
loads the published tensor names — the weight-normed position convolution's
`weight_g`/`weight_v` included — so `HubertModel` is built from the folder's
`config.json`. A configuration that uses one of those extras is refused.

Per video: the audio track resampled to the model's rate (config `sample_rate`,
24 kHz), cut into `chunk_seconds` pieces (5 s: MERT's pre-training context),
each normalised to zero mean and unit variance as the authors' feature
extractor does; per frame, the mean of the Transformer layers' outputs
(`layers: mean`, all L layers with equal weight: the MERT authors probe
downstream tasks with a learned weighted average of the layers, and equal
weights are that average before any training; or chosen layers by number);
per grid step, the mean of the frames whose centre lies in the step's window.
Output: hidden size (768 for 95M, 1024 for 330M). bf16 autocast on CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from delcli.errors import ConfigError, WeightsError
from delcli.features.base import FeatureGrid, StreamOutput
from delcli.features.hub_model import (
    HUB_MODEL_OPTIONS,
    HubModelExtractor,
    load_pretrained,
    open_model,
    random_model,
)
from delcli.features.pooling import WindowMean

if TYPE_CHECKING:
    from delcli.io import MediaInfo

DEFAULT_SAMPLE_RATE = 24000
MODEL_TYPES = ("mert_model", "hubert")
NOT_HUBERT_KEYS = ("model_type", "auto_map", "architectures", "transformers_version")
MIN_CHUNK_SECONDS = 1.0  # a shorter tail is joined to the chunk before it
NORM_EPS = 1e-7  # as the authors' feature extractor (Wav2Vec2FeatureExtractor)
HOW_TO_GET_WEIGHTS = (
    "weights=m-a-p/MERT-v1-95M (or -330M; downloaded into the Hugging Face cache when "
    "online), hf://ORG/NAME[@REVISION], or a folder with config.json and model.safetensors"
)


def unsupported_extras(config: dict[str, Any]) -> list[str]:
    """The MERT options `HubertModel` does not compute (the v1 checkpoints use none)."""
    extras = []
    if config.get("feature_extractor_cqt"):
        extras.append("feature_extractor_cqt")
    if config.get("deepnorm"):
        extras.append("deepnorm")
    if float(config.get("attention_relax", -1.0) or -1.0) > 0:
        extras.append("attention_relax")
    return extras


def build_mert(weights: str | None, random_init: bool, seed: int = 0) -> tuple[Any, int]:
    """(eval-mode `HubertModel`, its sample rate) from a weights spec, or a randomly
    initialised HuBERT-base (the MERT-v1-95M shape; benchmarks only)."""
    transformers, folder, values = open_model("mert", weights, random_init, HOW_TO_GET_WEIGHTS)
    if folder is None:
        model = random_model(transformers.HubertModel, transformers.HubertConfig(), seed)
        return model, DEFAULT_SAMPLE_RATE
    kind = values.get("model_type")
    if kind not in MODEL_TYPES:
        raise WeightsError(
            f"{weights}: a {kind!r} model, not MERT (model_type {' or '.join(MODEL_TYPES)})"
        )
    extras = unsupported_extras(values)
    if extras:
        raise WeightsError(
            f"{weights}: uses {', '.join(extras)}, which the mert extractor does not compute "
            "(it supports the MERT-v1 configuration)"
        )
    config = transformers.HubertConfig(
        **{key: value for key, value in values.items() if key not in NOT_HUBERT_KEYS}
    )
    model = load_pretrained(transformers.HubertModel, config, folder, weights)
    return model, int(values.get("sample_rate") or DEFAULT_SAMPLE_RATE)


def frame_geometry(config: Any) -> tuple[int, int]:
    """(receptive field, hop) in samples of the convolutional front end (400, 320)."""
    field, hop = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        field += (kernel - 1) * hop
        hop *= stride
    return field, hop


def chunk_bounds(total: int, chunk: int, minimum: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of `chunk` samples; a tail under `minimum` joins the last."""
    bounds = [(start, min(start + chunk, total)) for start in range(0, total, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < minimum:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def parse_layers(layers: Any, num_layers: int) -> list[int]:
    """Hidden-state indices to average: "mean" → 1 … L; else ints in 0 … L (0: the
    Transformer's input)."""
    if layers == "mean":
        return list(range(1, num_layers + 1))
    chosen = [layers] if isinstance(layers, int) else layers
    if (
        not isinstance(chosen, list | tuple)
        or not chosen
        or not all(isinstance(i, int) and 0 <= i <= num_layers for i in chosen)
    ):
        raise ConfigError(
            f"extractor 'mert': layers={layers!r}: 'mean' or layer numbers in 0…{num_layers}"
        )
    return list(chosen)


class MERTExtractor(HubModelExtractor):
    """`mert`: one hidden-size row per grid step, the mean of its MERT frames.

    Options: `layers` ("mean": every Transformer layer with equal weight; or a
    layer number or list), `chunk_seconds` (5), `batch_size` (chunks per
    forward pass), `dtype` (auto: bf16 autocast on CUDA), `random_init` (no
    weights: a random HuBERT-base; benchmarks only), `seed`.
    """

    name = "mert"
    version = "1"
    option_defaults: ClassVar[dict[str, Any]] = {
        "layers": "mean",
        "chunk_seconds": 5.0,
        "batch_size": 8,
        **HUB_MODEL_OPTIONS,
    }

    def __init__(
        self, grid: FeatureGrid, weights: str | None = None, device: str = "cpu", **options: Any
    ) -> None:
        super().__init__(grid, weights, device, **options)
        if not float(self.options["chunk_seconds"]) >= MIN_CHUNK_SECONDS:
            raise ConfigError(
                f"extractor 'mert': chunk_seconds={self.options['chunk_seconds']!r} must be "
                f"≥ {MIN_CHUNK_SECONDS:g}"
            )
        model, self.sample_rate = build_mert(
            weights, bool(self.options["random_init"]), int(self.options["seed"])
        )
        self.model = model.to(device)
        config = self.model.config
        self.layers = parse_layers(self.options["layers"], int(config.num_hidden_layers))
        self.field, self.hop = frame_geometry(config)
        self.dim = int(config.hidden_size)

    @property
    def outputs(self) -> list[StreamOutput]:
        return [StreamOutput("mert", "audio", self.dim)]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        from delcli.io import read_audio

        num_steps = self.grid.num_steps(info.duration)
        waveform = None if info.audio is None else read_audio(path, self.sample_rate)
        if waveform is None:
            return {"mert": self.zeros(num_steps, self.outputs[0])}
        return {"mert": self.embed_waveform(waveform, num_steps)}

    def embed_waveform(self, waveform: np.ndarray, num_steps: int) -> np.ndarray:
        """(T, hidden) float32 rows of a mono waveform at `sample_rate`, one per grid step."""
        pool = WindowMean(self.grid, num_steps, self.dim)
        waveform = np.asarray(waveform, dtype=np.float32)
        needed = min(len(waveform), round(pool.end_seconds * self.sample_rate))
        if needed < self.field:  # shorter than one frame: zero-pad to one
            waveform = np.pad(waveform[:needed], (0, self.field - needed))
            needed = self.field
        chunk = round(float(self.options["chunk_seconds"]) * self.sample_rate)
        shortest = max(self.field, round(MIN_CHUNK_SECONDS * self.sample_rate))
        bounds = chunk_bounds(needed, chunk, shortest)
        batch = max(1, int(self.options["batch_size"]))
        groups: dict[int, list[int]] = {}  # equal lengths share a forward pass
        for start, stop in bounds:
            groups.setdefault(stop - start, []).append(start)
        for length, starts in groups.items():
            for first in range(0, len(starts), batch):
                part = starts[first : first + batch]
                pieces = np.stack([waveform[s : s + length] for s in part])
                frames = self.embed_chunks(pieces)  # (B, F, hidden)
                centres = np.arange(frames.shape[1]) * self.hop + self.field / 2
                for start, rows in zip(part, frames, strict=True):
                    pool.add((start + centres) / self.sample_rate, rows)
        return pool.means()

    @torch.inference_mode()
    def embed_chunks(self, pieces: np.ndarray) -> np.ndarray:
        """(B, N) waveform chunks → (B, F, hidden) float32 frame features (layer mean)."""
        x = torch.from_numpy(pieces).to(self.device)
        mean = x.mean(dim=1, keepdim=True)
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(variance + NORM_EPS)
        with self.autocast():
            states = self.model(input_values=x, output_hidden_states=True).hidden_states
        chosen = torch.stack([states[i].float() for i in self.layers]).mean(dim=0)
        return chosen.cpu().numpy()
