"""Per-modality embedding (docs/model.md §1): features of any width → `d` channels on the grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from delcli.model.blocks import ConvNormAct, sinusoidal_position_encoding, zero_padding
from delcli.model.config import ModelConfig


class ModalityEmbedding(nn.Module):
    """2 × [masked conv k=3 → LayerNorm → ReLU] to `config.embed_dim`, plus an optional
    sinusoidal absolute position encoding (`config.position_encoding`).

    The position table has `config.max_seq_len` rows; a longer input gets the table
    linearly interpolated to its length (as ActionFormer), so positions are relative to
    the padded length there and padding invariance holds only up to `max_seq_len`.
    """

    def __init__(self, in_dim: int, config: ModelConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.convs = nn.ModuleList([ConvNormAct(in_dim, d), ConvNormAct(d, d)])
        self.position: torch.Tensor | None
        if config.position_encoding:
            table = sinusoidal_position_encoding(config.max_seq_len, d)
            self.register_buffer("position", table, persistent=False)
        else:
            self.position = None

    def position_table(self, length: int) -> torch.Tensor:
        """(length, d) absolute position encoding for a sequence of `length` steps."""
        table = self.position
        if length <= table.shape[0]:
            return table[:length]
        stretched = F.interpolate(table.T.unsqueeze(0), size=length, mode="linear")
        return stretched.squeeze(0).T

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`x (B, T, D_in)`, `mask (B, T)` bool → `(B, T, d)`, padded steps zero."""
        for conv in self.convs:
            x = conv(x, mask)
        if self.position is not None:
            x = zero_padding(x + self.position_table(x.shape[1]).to(x.dtype), mask)
        return x
