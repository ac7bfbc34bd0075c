"""VGGish audio embeddings (AudioSet VGG, 128-d), as in UnAV-100's released features.

The network is VGGish's: four conv blocks (64, 128, 256×2, 512×2 channels, 3×3
convolutions, ReLU, 2×2 max-pooling) over a (96 frames × 64 bands) log-mel
example, then three fully connected layers 12288 → 4096 → 4096 → 128, each
followed by a ReLU (the embedding too, as in the torchvggish port). Its state
dict uses torchvggish's names — `features.{0,3,6,8,11,13}.*`,
`embeddings.{0,2,4}.*` — so that port's `vggish-10086976.pth`, converted to
safetensors by `scripts/convert_vggish.py`, loads unchanged.

Post-processing (on by default when the weights carry `pca_eigen_vectors` and
`pca_means`): PCA whitening, clipping to [−2, 2] and 8-bit quantisation, giving
values in [0, 255] like the released UnAV-100 `*_vggish.npy` files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from delcli.errors import ConfigError, WeightsError
from delcli.features.base import Extractor, FeatureGrid, StreamOutput
from delcli.features.logmel import (
    VGGISH,
    frame_examples,
    grid_example_starts,
    log_mel_frames,
    pad_for_examples,
)

if TYPE_CHECKING:
    from delcli.io import MediaInfo

EMBEDDING_SIZE = 128
CONV_CHANNELS = (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool")
PCA_KEYS = ("pca_eigen_vectors", "pca_means")
QUANTIZE_RANGE = (-2.0, 2.0)
HOW_TO_GET_WEIGHTS = (
    "convert torchvggish's vggish-10086976.pth (and vggish_pca_params-970ea276.pth for "
    "PCA + quantisation) with scripts/convert_vggish.py and pass weights=PATH.safetensors "
    "or weights=hf://ORG/NAME/FILE"
)


class VGGish(nn.Module):
    """VGGish: (B, 96, 64) log-mel examples → (B, 128) embeddings.

    With `pca=True` the module also holds the PCA parameters (float64 buffers
    `pca_eigen_vectors` (128, 128) and `pca_means` (128,)) and `forward` returns
    the whitened, quantised embedding in [0, 255].
    """

    def __init__(self, pca: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for spec in CONV_CHANNELS:
            if spec == "pool":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, spec, kernel_size=3, padding=1), nn.ReLU()]
                channels = spec
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, EMBEDDING_SIZE),
            nn.ReLU(),
        )
        self.pca = pca
        if pca:
            size = EMBEDDING_SIZE
            self.register_buffer("pca_eigen_vectors", torch.eye(size, dtype=torch.float64))
            self.register_buffer("pca_means", torch.zeros(size, dtype=torch.float64))

    def embed(self, examples: Tensor) -> Tensor:
        """(B, 96, 64) → (B, 128) raw embeddings."""
        x = self.features(examples.unsqueeze(1))  # (B, 512, 6, 4)
        # Flatten channels-last, the order of the TensorFlow original's fc1 weights.
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)

    def postprocess(self, embeddings: Tensor) -> Tensor:
        """PCA whitening, clip to [−2, 2], quantise to 0 … 255 (float64, integral values)."""
        centred = embeddings.to(torch.float64) - self.pca_means
        whitened = centred @ self.pca_eigen_vectors.T
        low, high = QUANTIZE_RANGE
        clipped = whitened.clamp(low, high)
        return torch.round((clipped - low) * (255.0 / (high - low)))

    def forward(self, examples: Tensor) -> Tensor:
        embeddings = self.embed(examples)
        return self.postprocess(embeddings) if self.pca else embeddings


def check_vggish_state_dict(expected: dict[str, Tensor], found: dict[str, Tensor], source: str):
    """`WeightsError` naming missing, unexpected or misshapen tensors (all of them, briefly)."""

    def listed(names: list[str]) -> str:
        return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")

    problems = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshapen = [
        f"{k} {tuple(found[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    if missing:
        problems.append(f"missing {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {listed(unexpected)}")
    if misshapen:
        problems.append(f"wrong shape {listed(misshapen)}")
    if problems:
        raise WeightsError(f"{source}: not VGGish weights: {'; '.join(problems)}")


def build_vggish(
    weights: str | None, postprocess: bool | None, random_init: bool, seed: int = 0
) -> VGGish:
    """The network filled from a weights spec, or randomly initialised (tests, benchmarks)."""
    if random_init:
        if weights is not None:
            raise ConfigError("extractor 'vggish': give weights= or random_init=True, not both")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = VGGish(pca=bool(postprocess))
            if postprocess:
                model.pca_eigen_vectors.copy_(torch.linalg.qr(torch.randn(128, 128).double())[0])
        return model.eval()
    if weights is None:
        raise WeightsError(f"the vggish extractor needs weights: {HOW_TO_GET_WEIGHTS}")

    from delcli.features.weights import load_extractor_weights

    tensors = load_extractor_weights(weights)
    has_pca = all(k in tensors for k in PCA_KEYS)
    if postprocess and not has_pca:
        raise WeightsError(
            f"{weights}: no PCA parameters ({', '.join(PCA_KEYS)}) for postprocess=True; "
            "convert with the PCA file too: scripts/convert_vggish.py MODEL.pth PCA.pth"
        )
    use_pca = has_pca if postprocess is None else postprocess
    if not use_pca:
        tensors = {k: v for k, v in tensors.items() if k not in PCA_KEYS}
    model = VGGish(pca=use_pca)
    check_vggish_state_dict(model.state_dict(), tensors, weights)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


class VGGishExtractor(Extractor):
    """`vggish`: one 128-d VGGish embedding per grid step (0.96 s example centred on the step).

    Options: `postprocess` (None: PCA + quantisation when the weights have PCA
    parameters), `random_init` (no weights; tests and benchmarks only),
    `batch_size` (examples per forward pass), `seed` (for `random_init`).
    """

    name = "vggish"
    version = "1"
    option_defaults: ClassVar[dict[str, Any]] = {
        "postprocess": None,
        "random_init": False,
        "batch_size": 64,
        "seed": 0,
    }

    def __init__(
        self, grid: FeatureGrid, weights: str | None = None, device: str = "cpu", **options: Any
    ) -> None:
        super().__init__(grid, weights, device, **options)
        self.model = build_vggish(
            weights,
            self.options["postprocess"],
            bool(self.options["random_init"]),
            int(self.options["seed"]),
        ).to(device)

    @property
    def outputs(self) -> list[StreamOutput]:
        return [StreamOutput("vggish", "audio", EMBEDDING_SIZE)]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        from delcli.io import read_audio

        num_steps = self.grid.num_steps(info.duration)
        waveform = None if info.audio is None else read_audio(path, VGGISH.sample_rate)
        if waveform is None:
            return {"vggish": self.zeros(num_steps, self.outputs[0])}
        return {"vggish": self.embed_waveform(waveform, num_steps)}

    @torch.inference_mode()
    def embed_waveform(self, waveform: np.ndarray, num_steps: int) -> np.ndarray:
        """(T, 128) float32 embeddings of a 16 kHz mono waveform, one per grid step.

        The waveform is zero-padded so that every step, the last included, has a
        whole 0.96 s example.
        """
        starts = grid_example_starts(self.grid, num_steps)
        padded, starts = pad_for_examples(np.asarray(waveform, dtype=np.float32), starts)
        frames = log_mel_frames(torch.from_numpy(padded))
        batch = max(1, int(self.options["batch_size"]))
        rows = []
        for first in range(0, num_steps, batch):
            examples = frame_examples(frames, starts[first : first + batch]).contiguous()
            rows.append(self.model(examples.to(self.device)).float().cpu())
        return torch.cat(rows).numpy()
