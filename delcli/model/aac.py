"""Adaptive attention for cross-modal alignment (AAC, paper §3.2, Eq. 5–6; docs/model.md §2).

Pre-LN transformer blocks over `X = [CLS_V, V_1..V_T, CLS_A, A_1..A_T]` whose
attention is restricted by the structured mask M of Eq. (6): global attention
inside each modality, and across modalities only between the two tokens of the
same time step. A masked-out pair (m_ij = 0) is an additive −∞ before softmax.

Two exact implementations: the dense one builds M (B, N, N) with N = 2T + 2 and
makes one SDPA call; the factored one (the default, `FACTORED_ATTENTION`) runs
one SDPA call per modality over its own T + 1 tokens plus a single extra key
that carries the cross-modal token of the query's step, so it needs half the
attention memory and compute of the dense form.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from delcli.model.blocks import DropPath, FeedForward, MultiHeadAttention, attend, zero_padding
from delcli.model.config import ModelConfig

FACTORED_ATTENTION = True
"""Use the factored form of Eq. (6) (per-modality SDPA + one cross key); False = dense M."""

_CROSS_CHANNELS = 8
"""Channels appended to q/k/v for the cross key; 1 is used, the rest keep head dims 8-aligned."""


class AACOutput(NamedTuple):
    """Tokens after AAC. `visual`, `audio`: (B, T, d) or None for an absent modality;
    `cls_visual`, `cls_audio`: (B, d) or None."""

    visual: torch.Tensor | None
    audio: torch.Tensor | None
    cls_visual: torch.Tensor | None
    cls_audio: torch.Tensor | None


def token_validity(mask: torch.Tensor, n_streams: int) -> torch.Tensor:
    """(B, n_streams·(T + 1)) bool validity of `[CLS, X_1..X_T]` per stream; CLS is always valid."""
    per_stream = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
    return per_stream.repeat(1, n_streams)


def adaptive_attention_mask(mask: torch.Tensor, modalities: str, cross: bool) -> torch.Tensor:
    """The mask M of Eq. (6) as a boolean 'may attend' matrix.

    Args:
        mask: (B, T) bool, True on valid steps.
        modalities: "av" (token order `[CLS_V, V_1..V_T, CLS_A, A_1..A_T]`, N = 2T + 2),
            or "v" / "a" (`[CLS, X_1..X_T]`, N = T + 1).
        cross: allow visual_t ↔ audio_t at equal steps (AAC on); False keeps the modalities apart.
    Returns:
        allowed: (B, N, N) bool; rows are queries, columns keys. Padded tokens neither
        attend nor are attended; a CLS token sees only its own modality.
    """
    if modalities not in ("av", "a", "v"):
        raise ValueError(f"modalities={modalities!r}; allowed: av, a, v")
    n_streams, length = len(modalities), mask.shape[1]
    device = mask.device
    stream = torch.arange(n_streams, device=device).repeat_interleave(length + 1)
    step = torch.arange(-1, length, device=device).repeat(n_streams)  # −1 marks CLS
    structure = stream[:, None] == stream[None, :]
    if cross:
        structure = structure | ((step[:, None] == step[None, :]) & (step[:, None] >= 0))
    valid = token_validity(mask, n_streams)
    return structure & valid[:, :, None] & valid[:, None, :]


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, n_heads, c // n_heads).transpose(1, 2)


def attend_with_partner(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    partner_k: torch.Tensor,
    partner_v: torch.Tensor,
    allowed: torch.Tensor,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Attention of query i over the keys `k` plus one key of its own, `partner_k[i]`.

    Args:
        q, k, v, partner_k, partner_v: (B, H, L, Dh).
        allowed: (B, L, L + 1) bool; the last column says whether query i may see its partner.
    The partner becomes one extra key shared by all queries: an appended q channel carries
    the per-query logit q_i · partner_k[i], the extra key reads it through a unit vector,
    and its unit value returns the softmax weight p_i; the output adds p_i · partner_v[i].
    One stable SDPA softmax, exactly as if every query had its own extra key.
    """
    b, h, length, d_head = q.shape
    extra = q.new_zeros(b, h, length, _CROSS_CHANNELS)
    unit = q.new_zeros(b, h, 1, d_head + _CROSS_CHANNELS)
    unit[..., d_head] = 1.0
    partner_logit = (q.float() * partner_k.float()).sum(-1, keepdim=True).to(q.dtype)
    y = F.scaled_dot_product_attention(
        torch.cat([q, partner_logit, extra[..., 1:]], dim=-1),
        torch.cat([torch.cat([k, extra], dim=-1), unit], dim=2),
        torch.cat([torch.cat([v, extra], dim=-1), unit], dim=2),
        attn_mask=allowed.unsqueeze(1),
        dropout_p=dropout,
        scale=d_head**-0.5,
    )
    return y[..., :d_head] + y[..., d_head : d_head + 1] * partner_v


def factored_adaptive_attention(
    attn: MultiHeadAttention,
    x: torch.Tensor,
    mask: torch.Tensor,
    n_streams: int,
    cross: bool,
) -> torch.Tensor:
    """Self-attention of `x (B, N, C)` under Eq. (6)'s mask, without building M.

    Each query sees the valid tokens of its own stream (T + 1 keys) and, for a regular
    token with `cross`, the other stream's token at the same step (`attend_with_partner`).
    `attn` supplies the projections. Padded rows are unspecified; the caller zeroes them.
    """
    b, n, c = x.shape
    dropout = attn.dropout if attn.training else 0.0
    q, k, v = (_heads(proj(x), attn.n_heads) for proj in (attn.query, attn.key, attn.value))
    length = n // n_streams
    # slices, not split(): split of a symbolic length does not export (del export)
    qs, ks, vs = (
        [t[:, :, s * length : (s + 1) * length] for s in range(n_streams)] for t in (q, k, v)
    )
    valid = token_validity(mask, 1)  # (B, T + 1) of one stream
    cross = cross and n_streams == 2
    if cross:
        has_partner = valid.clone()
        has_partner[:, 0] = False  # CLS never sees the other modality
        allowed = torch.cat([valid[:, None, :].expand(-1, length, -1), has_partner[..., None]], 2)
    outputs = []
    for s in range(n_streams):
        if cross:  # Eq. (6): the only cross-modal pair of step t is (V_t, A_t)
            other = 1 - s
            y = attend_with_partner(qs[s], ks[s], vs[s], ks[other], vs[other], allowed, dropout)
        else:
            y = attend(qs[s], ks[s], vs[s], valid[:, None, :], dropout)
        outputs.append(y)
    y = torch.cat(outputs, dim=2).transpose(1, 2).reshape(b, n, c)
    return attn.out(y)


class AACBlock(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)) under M, then x + FFN(LN(x)); padding kept zero."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.norm_attn = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, config.n_heads, config.dropout)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = FeedForward(d, config.mlp_ratio, config.dropout)
        # stochastic depth without LayerScale damping (scale starts at 1): a standard block
        self.drop_attn = DropPath(d, config.drop_path, init_scale=1.0)
        self.drop_mlp = DropPath(d, config.drop_path, init_scale=1.0)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        mask: torch.Tensor,
        n_streams: int,
        cross: bool,
        allowed: torch.Tensor | None,
    ) -> torch.Tensor:
        """`x (B, N, d)`, token `valid (B, N)`, step `mask (B, T)`; dense M `allowed (B, N, N)`
        or None for the factored form."""
        y = self.norm_attn(x)
        if allowed is None:
            y = factored_adaptive_attention(self.attn, y, mask, n_streams, cross)
        else:
            y = self.attn(y, y, allowed)
        x = zero_padding(x + self.drop_attn(y), valid)
        x = x + self.drop_mlp(self.mlp(self.norm_mlp(x)))
        return zero_padding(x, valid)


class AdaptiveAttention(nn.Module):
    """AAC: `config.n_aac` blocks over the CLS-prefixed streams of the used modalities.

    `config.aac` False drops the cross diagonal (the "w/o AAC" ablation); with one
    modality this is plain masked self-attention.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.modalities = config.modalities
        self.cross = config.aac
        d = config.embed_dim
        self.cls_visual = nn.Parameter(torch.randn(d) * 0.02) if config.uses_visual else None
        self.cls_audio = nn.Parameter(torch.randn(d) * 0.02) if config.uses_audio else None
        self.blocks = nn.ModuleList([AACBlock(config) for _ in range(config.n_aac)])

    def forward(
        self,
        visual: torch.Tensor | None,
        audio: torch.Tensor | None,
        mask: torch.Tensor,
    ) -> AACOutput:
        """`visual`, `audio` (B, T, d) — None for a modality the config does not use —
        and `mask (B, T)` bool → `AACOutput`."""
        streams = []
        for name, x, cls in (("visual", visual, self.cls_visual), ("audio", audio, self.cls_audio)):
            if cls is None:
                continue
            if x is None:
                raise ValueError(f"modalities={self.modalities!r} needs {name} tokens")
            cls = cls.to(x.dtype).expand(x.shape[0], 1, -1)
            streams.append(torch.cat([cls, zero_padding(x, mask)], dim=1))
        n_streams = len(streams)
        tokens = torch.cat(streams, dim=1)
        valid = token_validity(mask, n_streams)
        allowed = None
        if not FACTORED_ATTENTION and self.blocks:
            allowed = adaptive_attention_mask(mask, self.modalities, self.cross)
        for block in self.blocks:
            tokens = block(tokens, valid, mask, n_streams, self.cross, allowed)
        per_stream = mask.shape[1] + 1
        outputs = iter(tokens[:, s * per_stream : (s + 1) * per_stream] for s in range(n_streams))
        visual_tokens = next(outputs) if self.cls_visual is not None else None
        audio_tokens = next(outputs) if self.cls_audio is not None else None
        return AACOutput(
            visual=visual_tokens[:, 1:] if visual_tokens is not None else None,
            audio=audio_tokens[:, 1:] if audio_tokens is not None else None,
            cls_visual=visual_tokens[:, 0] if visual_tokens is not None else None,
            cls_audio=audio_tokens[:, 0] if audio_tokens is not None else None,
        )
