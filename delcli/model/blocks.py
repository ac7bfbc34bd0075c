"""Masked building blocks shared by every DEL module.

The contract: a time-mixing block takes `x (B, T, C)` and `mask (B, T) bool`
and returns features whose padded steps are exactly zero (and, when it
changes the length, the new mask). Attention goes through
`torch.nn.functional.scaled_dot_product_attention` with a boolean "may
attend" mask (True = allowed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x (B, T, C)` with the steps where `mask (B, T)` is False set to zero."""
    return x * mask.unsqueeze(-1).to(x.dtype)


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Validity of a stride-`stride` output: the steps 0, s, 2s, … of `mask (B, T)`."""
    return mask[:, ::stride] if stride > 1 else mask


class MaskedConv1d(nn.Module):
    """Conv over time on `(B, T, C)`, 'same' padding; padded steps zero in and out.

    With stride s the output has ceil(T / s) steps and mask `mask[:, ::s]`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd so the output stays centred")
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bias,
        )
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = zero_padding(x, mask)
        if torch.onnx.is_in_onnx_export():  # the plain Conv1d node for ONNX Runtime
            y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        else:
            # (B, T, C) in memory is (B, C, 1, T) in channels-last layout: a 2-D
            # convolution reads and writes it in place of the copies that Conv1d makes
            # to and from (B, C, T), forward and backward (the same weights)
            y = F.conv2d(
                x.transpose(1, 2).unsqueeze(2),
                self.conv.weight.unsqueeze(2),
                self.conv.bias,
                stride=(1, self.stride),
                padding=(0, self.conv.padding[0]),
                groups=self.conv.groups,
            )
            y = y.squeeze(2).transpose(1, 2)
        out_mask = downsample_mask(mask, self.stride)
        return zero_padding(y, out_mask), out_mask


class ConvNormAct(nn.Module):
    """Masked conv (k=3) → LayerNorm → ReLU; the unit of the embedding and the heads."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = MaskedConv1d(in_channels, out_channels, kernel_size, bias=False)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y, _ = self.conv(x, mask)
        return zero_padding(F.relu(self.norm(y)), mask)


class ResidualConvBlock(nn.Module):
    """`x + ReLU(LN(conv_k3(x)))`, masked: the refinement step of PAN's Fuse."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = ConvNormAct(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return zero_padding(x + self.body(x, mask), mask)


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(C → r·C) → GELU → dropout → Linear(r·C → C) → dropout."""

    def __init__(self, channels: int, ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(channels, ratio * channels),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ratio * channels, channels),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DropPath(nn.Module):
    """Stochastic depth on a residual branch, with a learnable per-channel scale
    (LayerScale, init 1e-4), as ActionFormer's AffineDropPath."""

    def __init__(self, channels: int, drop_prob: float = 0.0, init_scale: float = 1e-4) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale = nn.Parameter(torch.full((channels,), init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(keep) / keep


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention with a boolean 'may attend' mask.

    Args:
        q: (B, H, Tq, Dh); k, v: (B, H, Tk, Dh).
        allowed: (B, Tq, Tk) or (B, H, Tq, Tk) bool, True where attention is allowed.
    Rows with nothing allowed (padded queries) would be NaN under softmax; they
    attend uniformly instead and the caller zeroes them with its query mask.
    """
    if allowed.dim() == 3:
        allowed = allowed.unsqueeze(1)
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    if torch.compiler.is_exporting():
        # ONNX Runtime's Attention kernel does not broadcast a key-only mask over queries
        allowed = allowed.expand(*allowed.shape[:-2], q.shape[-2], allowed.shape[-1])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over `(B, T, C)` tokens with a boolean allowed-mask (SDPA)."""

    def __init__(self, channels: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels={channels} not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.query = nn.Linear(channels, channels)
        # a key bias shifts every score of a query equally; softmax ignores it
        self.key = nn.Linear(channels, channels, bias=False)
        self.value = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor
    ) -> torch.Tensor:
        """`query (B, Tq, C)` attends to `context (B, Tk, C)` where `allowed (B, Tq, Tk)`."""
        q, k, v = (
            self._split(self.query(query)),
            self._split(self.key(context)),
            self._split(self.value(context)),
        )
        y = attend(q, k, v, allowed, self.dropout if self.training else 0.0)
        b, _, tq, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, tq, -1))


def sinusoidal_position_encoding(length: int, channels: int) -> torch.Tensor:
    """(length, channels) fixed sinusoidal table (Vaswani et al.), scaled by 1/sqrt(channels)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels)
    )
    table = torch.zeros(length, channels)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: channels // 2])
    return table / math.sqrt(channels)
