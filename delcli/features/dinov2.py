"""DINOv2 image features (Oquab et al. 2023) pooled per grid step: the `dinov2` extractor.

The network is `transformers`' `Dinov2Model`, loaded from the folder the
authors publish on the Hub (`facebook/dinov2-small|base|large|giant`:
`config.json` + `model.safetensors`; see `delcli.features.hub_model`).

Per frame: the frame resized so its short side is 256 (FFmpeg bilinear) and
centre-cropped to 224, scaled to [0, 1] and normalised with the ImageNet mean
and standard deviation (the preprocessing of the DINOv2 evaluations; the Hub's
image processor resizes bicubically); the feature is the final-layer-normed
CLS token concatenated with the mean of the patch tokens — the input of
DINOv2's own linear evaluation, so one row carries the global summary and the
spatial average (2 × hidden size: 768 small, 1536 base, 2048 large, 3072
giant). Per grid step: the mean over the frames of its window (frames sampled
at `sample_fps`, by default the grid's fps: UnAV-100's 0.96 s window = 24
frames), which keeps the step's whole window in view as the I3D clip it
replaces does. bf16 autocast on CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HOW_TO_GET_WEIGHTS = (
    "weights=facebook/dinov2-base (or -small, -large, -giant; downloaded into the Hugging "
    "Face cache when online), hf://ORG/NAME[@REVISION], or a folder with config.json and "
    "model.safetensors"
)


def build_dinov2(weights: str | None, random_init: bool, seed: int = 0) -> Any:
    """An eval-mode `Dinov2Model` from a weights spec, or a randomly initialised ViT-B/14
    (`Dinov2Config()`'s defaults; benchmarks only)."""
    transformers, folder, values = open_model("dinov2", weights, random_init, HOW_TO_GET_WEIGHTS)
    if folder is None:
        return random_model(transformers.Dinov2Model, transformers.Dinov2Config(), seed)
    kind = values.get("model_type")
    if kind != "dinov2":
        raise WeightsError(f"{weights}: a {kind!r} model, not DINOv2 (model_type 'dinov2')")
    config = transformers.Dinov2Config.from_pretrained(str(folder))
    return load_pretrained(transformers.Dinov2Model, config, folder, weights)


def cls_and_mean_patch(tokens: Tensor) -> Tensor:
    """(B, 1 + P, H) final tokens → (B, 2H): CLS ‖ mean of the P patch tokens."""
    return torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1)


def normalise(frames: np.ndarray) -> Tensor:
    """(B, H, W, 3) uint8 RGB → (B, 3, H, W) float32, ImageNet-normalised."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class DINOv2Extractor(HubModelExtractor):
    """`dinov2`: one (2 × hidden)-d row per grid step, the mean of its frames' CLS ‖ mean patch.

    Options: `sample_fps` (frames per second the network sees; None: the grid's
    fps), `size` (short side, 256) and `crop` (centre square, 224), `batch_size`
    (frames per forward pass), `dtype` (auto: bf16 autocast on CUDA, float32 on
    CPU), `random_init` (no weights: a random ViT-B/14; benchmarks only), `seed`.
    """

    name = "dinov2"
    version = "1"
    option_defaults: ClassVar[dict[str, Any]] = {
        "sample_fps": None,
        "size": 256,
        "crop": 224,
        "batch_size": 32,
        **HUB_MODEL_OPTIONS,
    }

    def __init__(
        self, grid: FeatureGrid, weights: str | None = None, device: str = "cpu", **options: Any
    ) -> None:
        super().__init__(grid, weights, device, **options)
        sample_fps = self.options["sample_fps"]
        self.sample_fps = float(grid.fps if sample_fps is None else sample_fps)
        if not self.sample_fps > 0:
            raise ConfigError(f"extractor 'dinov2': sample_fps={sample_fps!r} must be > 0")
        self.model = build_dinov2(
            weights, bool(self.options["random_init"]), int(self.options["seed"])
        ).to(device)
        self.dim = 2 * int(self.model.config.hidden_size)

    @property
    def outputs(self) -> list[StreamOutput]:
        return [StreamOutput("dinov2", "visual", self.dim)]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        from delcli.io import frame_batches

        num_steps = self.grid.num_steps(info.duration)
        if info.video is None:
            return {"dinov2": self.zeros(num_steps, self.outputs[0])}
        pool = WindowMean(self.grid, num_steps, self.dim)
        end = min(info.duration, pool.end_seconds)
        seen = 0
        for frames in frame_batches(
            path,
            self.sample_fps,
            size=int(self.options["size"]),
            crop=int(self.options["crop"]),
            batch=max(1, int(self.options["batch_size"])),
            end=end,
        ):
            times = (seen + np.arange(len(frames))) / self.sample_fps
            pool.add(times, self.embed_frames(frames))
            seen += len(frames)
        return {"dinov2": pool.means()}

    @torch.inference_mode()
    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB frames, already resized and cropped → (B, 2·hidden) float32."""
        pixels = normalise(frames).to(self.device)
        with self.autocast():
            tokens = self.model(pixel_values=pixels).last_hidden_state
        return cls_and_mean_patch(tokens.float()).cpu().numpy()
