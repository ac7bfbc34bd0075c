"""Per-modality temporal pyramid (docs/model.md §3): ActionFormer's convolutional transformer.

`n_stem` blocks at stride 1 give level 0; each of the `n_levels − 1` following
blocks halves the length (strided depthwise q/k/v convs in the attention and a
masked max-pool on the residual path). Attention is local — each query sees the
valid keys within ±window_size//2 steps — except where `window_size` is 0 or the
level (at `max_seq_len`) is shorter than the window, where it is global. That
choice is fixed per level from the config, never from the padded length, so
outputs do not depend on padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from delcli.model.blocks import (
    DropPath,
    FeedForward,
    MaskedConv1d,
    attend,
    downsample_mask,
    zero_padding,
)
from delcli.model.config import ModelConfig


def masked_max_pool(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-pool k=3, stride 2 over time of `x (B, T, C)`, padded steps counting as −∞.

    Returns `(B, ceil(T/2), C)` with padded steps zero, and the mask `mask[:, ::2]`.
    """
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    # max_pool2d with a (3, 1) kernel on (B, C, T, 1) is max_pool1d over time; unlike
    # max_pool1d it keeps a symbolic T symbolic under torch.export (del export)
    pooled = F.max_pool2d(
        filled.transpose(1, 2).unsqueeze(-1), kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)
    ).squeeze(-1)
    out_mask = downsample_mask(mask, 2)
    return pooled.transpose(1, 2).masked_fill(~out_mask.unsqueeze(-1), 0.0), out_mask


def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    window: int,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Sliding-window attention: query i attends to valid keys j with |i − j| ≤ window // 2.

    Args:
        q, k, v: (B, H, T, Dh).
        mask: (B, T) bool validity of the keys.
        window: odd window length w ≥ 3.
    Returns:
        (B, H, T, Dh); rows of queries with no valid key in reach are unspecified.

    Queries are cut into blocks of r = w // 2 steps; block n sees the keys of blocks
    n − 1, n, n + 1 (3r keys, a superset of its reach), so one SDPA call covers the
    whole sequence with O(T·w) memory instead of a T × T mask.
    """
    b, h, length, d_head = q.shape
    r = window // 2
    n_blocks = -(-length // r)
    tail = n_blocks * r - length

    def windows(padded: torch.Tensor, dim: int) -> torch.Tensor:
        # (…, (n_blocks + 2)·r, …) → (…, n_blocks, 3r, …): blocks n, n + 1, n + 2 side by
        # side. Slices and a concatenation rather than `unfold`, which the TorchScript
        # ONNX exporter cannot give a dynamic length (del export).
        blocks = padded.unflatten(dim, (n_blocks + 2, r))
        before = (slice(None),) * dim
        parts = [blocks[(*before, slice(shift, shift - 2 or None))] for shift in range(3)]
        return torch.cat(parts, dim=dim + 1)

    def key_blocks(t: torch.Tensor) -> torch.Tensor:
        padded = F.pad(t, (0, 0, r, r + tail))  # (B, H, (n_blocks + 2)·r, Dh)
        return windows(padded, 2).transpose(1, 2)  # (B, nb, H, 3r, Dh)

    queries = F.pad(q, (0, 0, 0, tail)).view(b, h, n_blocks, r, d_head).transpose(1, 2)
    key_valid = windows(F.pad(mask, (r, r + tail), value=False), 1)  # (B, nb, 3r)
    offset = torch.arange(r, device=q.device)[:, None] - torch.arange(3 * r, device=q.device)
    band = (offset + r).abs() <= r  # (r, 3r): query i = n·r + a, key j = (n − 1)·r + c
    allowed = band & key_valid.unsqueeze(2)  # (B, nb, r, 3r)
    y = attend(
        queries.reshape(b * n_blocks, h, r, d_head),
        key_blocks(k).reshape(b * n_blocks, h, 3 * r, d_head),
        key_blocks(v).reshape(b * n_blocks, h, 3 * r, d_head),
        allowed.reshape(b * n_blocks, r, 3 * r),
        dropout,
    )
    y = y.view(b, n_blocks, h, r, d_head).transpose(1, 2).reshape(b, h, n_blocks * r, d_head)
    return y[:, :, :length]


class ConvAttention(nn.Module):
    """ActionFormer's multi-head conv attention: q, k, v each from a depthwise masked
    conv (k=3, stride 1 or 2) + LayerNorm + linear; local or global masked attention."""

    def __init__(self, config: ModelConfig, stride: int, window: int) -> None:
        super().__init__()
        d = config.embed_dim
        self.n_heads = config.n_heads
        self.window = window
        self.convs = nn.ModuleList(
            [MaskedConv1d(d, d, 3, stride=stride, groups=d, bias=False) for _ in range(3)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(3)])
        self.projections = nn.ModuleList([nn.Linear(d, d) for _ in range(3)])
        self.out = nn.Linear(d, d)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x (B, T, d)`, `mask (B, T)` → `(B, T / stride, d)` and its mask."""
        heads = []
        for conv, norm, projection in zip(self.convs, self.norms, self.projections, strict=True):
            y, out_mask = conv(x, mask)
            y = projection(norm(y))
            b, t, c = y.shape
            heads.append(y.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2))
        q, k, v = heads
        if self.window:
            y = local_attention(q, k, v, out_mask, self.window)
        else:
            y = attend(q, k, v, out_mask[:, None, :])
        y = self.dropout(self.out(y.transpose(1, 2).reshape(b, t, c)))
        return zero_padding(y, out_mask), out_mask


class ConvTransformerBlock(nn.Module):
    """Pre-LN block: skip(x) + DropPath(attn(LN(x))), then + DropPath(MLP(LN(·)));
    the skip is identity, or the masked max-pool when the block halves the length."""

    def __init__(self, config: ModelConfig, stride: int, window: int) -> None:
        super().__init__()
        d = config.embed_dim
        self.stride = stride
        self.norm_attn = nn.LayerNorm(d)
        self.attn = ConvAttention(config, stride, window)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = FeedForward(d, config.mlp_ratio, config.dropout)
        self.drop_attn = DropPath(d, config.drop_path)
        self.drop_mlp = DropPath(d, config.drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x (B, T, d)`, `mask (B, T)` → `(B, T / stride, d)` and its mask."""
        y, out_mask = self.attn(self.norm_attn(x), mask)
        skip = masked_max_pool(x, mask)[0] if self.stride > 1 else x
        x = skip + self.drop_attn(y)
        x = x + self.drop_mlp(self.mlp(self.norm_mlp(x)))
        return zero_padding(x, out_mask), out_mask


def level_window(config: ModelConfig, level: int) -> int:
    """Attention window at pyramid `level`; 0 = global (no window, or the level at
    `max_seq_len` is shorter than the window)."""
    window = config.window_size
    if window == 0 or config.max_seq_len // 2**level < window:
        return 0
    return window


class TemporalPyramid(nn.Module):
    """One modality's pyramid: `forward(x, mask)` → `[(x_l (B, T/2^l, d), mask_l (B, T/2^l))]`
    for l = 0 … n_levels − 1; level 0 is the stem output."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stem = nn.ModuleList(
            [ConvTransformerBlock(config, 1, level_window(config, 0)) for _ in range(config.n_stem)]
        )
        self.branch = nn.ModuleList(
            [
                ConvTransformerBlock(config, 2, level_window(config, level))
                for level in range(1, config.n_levels)
            ]
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x = zero_padding(x, mask)
        for block in self.stem:
            x, mask = block(x, mask)
        levels = [(x, mask)]
        for block in self.branch:
            x, mask = block(x, mask)
            levels.append((x, mask))
        return levels
