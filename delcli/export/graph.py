"""The DEL network as a graph with fixed tensor inputs and outputs, for export.

`ExportGraph` wraps a `DELModel` for `torch.export` (and through it ONNX and
`.pt2`): the network without decoding or NMS, which stay in Python
(`delcli.model.decode`, `delcli.inference`).

Inputs, in this order (a single-modality model takes only its own stream):

    visual (B, T, visual_dim) float32
    audio  (B, T, audio_dim)  float32
    mask   (B, T)             bool, True on valid steps

Outputs, every pyramid level concatenated along time (finest first):

    cls_logits (B, P, C) float32
    offsets    (B, P, 2) float32, (δ_s, δ_e) in units of the level's stride

Level l has stride 2^l and `T_l = T / 2^l` points, so `P = Σ_l T / 2^l` and
level l occupies `[Σ_{m<l} T_m, Σ_{m≤l} T_m)` of the point axis; its mask is
`mask[:, ::2^l]` (`split_levels` rebuilds the per-level lists `DELModel.forward`
returns). Padded points hold zeros.

Time axis. B and T are dynamic; T must be a multiple of `time_multiple(config)`,
which is the model's `length_divisor` made a multiple of every local-attention
level's block: the blocked local attention reshapes level l into blocks of
`window_size // 2` steps, an exact reshape only when the block divides `T_l`.
`torch.export` cannot prove the ceil-and-pad of other lengths correct (it
either refuses or bakes the traced length in), so the graph takes lengths where
no rounding happens and the caller pads the rest (mask False) — exact, since the
network ignores padded steps. `delcli.export.runtime` pads; the ONNX file
carries the padding in front of the graph (`delcli.export.onnx_pad`), so a raw
ONNX consumer feeds any T ≥ 1; a `.pt2` consumer reads `time_multiple` from the
metadata. E.g. UnAV-100 (6 levels, window 9): 64;
THUMOS14 (window 19): 288. T is also at least `MIN_BLOCKS` multiples: traced at
two or more blocks per level, the graph is not valid for one.

Models with an absolute position encoding (`position_encoding`, ActivityNet)
take at most `max_seq_len` valid steps: past it the eager model stretches its
table to the padded length, which a fixed graph cannot reproduce.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from delcli.model.pyramid import level_window

if TYPE_CHECKING:
    from delcli.model.config import ModelConfig
    from delcli.model.del_model import DELModel

OUTPUT_NAMES = ("cls_logits", "offsets")
MAX_STEPS = 1 << 16
"""Longest time axis declared to the exporter (≈ 2.4 h of THUMOS14's 7.5 steps/s)."""
MIN_BLOCKS = 2
"""Shortest time axis, in time multiples. `torch.export` specialises sizes 0 and 1, so
a graph traced at two or more blocks per level holds a guard against one block."""


def input_names(config: ModelConfig) -> tuple[str, ...]:
    """The graph's inputs: the streams the model uses, then the mask."""
    streams = (("visual",) if config.uses_visual else ()) + (
        ("audio",) if config.uses_audio else ()
    )
    return (*streams, "mask")


def time_multiple(config: ModelConfig) -> int:
    """T of the graph must be a multiple of this: the coarsest stride, and at every level
    with local attention `2^l · (window // 2)` (the block size on the input grid)."""
    multiple = config.length_divisor
    for level in range(config.n_levels):
        window = level_window(config, level)
        if window:
            multiple = math.lcm(multiple, 2**level * (window // 2))
    return multiple


def min_steps(config: ModelConfig) -> int:
    """Shortest padded T the graph takes: `MIN_BLOCKS` time multiples."""
    return MIN_BLOCKS * time_multiple(config)


def max_steps(config: ModelConfig) -> int:
    """Longest padded T the graph takes (a multiple of `time_multiple`)."""
    multiple = time_multiple(config)
    if config.position_encoding:
        blocks = -(-config.max_seq_len // multiple)
    else:
        blocks = MAX_STEPS // multiple
    return max(MIN_BLOCKS, blocks) * multiple


def padded_length(length: int, config: ModelConfig) -> int:
    """The graph length that holds `length` steps: rounded up to `time_multiple`, and at
    least `MIN_BLOCKS` of them."""
    multiple = time_multiple(config)
    return max(MIN_BLOCKS, -(-length // multiple)) * multiple


def level_lengths(length: int, n_levels: int) -> list[int]:
    """Points per level for a (padded) input of `length` steps: `length / 2^l`."""
    return [-(-length // 2**level) for level in range(n_levels)]


def split_levels(flat: torch.Tensor, length: int, n_levels: int) -> list[torch.Tensor]:
    """`(B, P, K)` concatenated levels of a `length`-step input → per level `(B, T_l, K)`."""
    return list(flat.split(level_lengths(length, n_levels), dim=1))


class ExportGraph(nn.Module):
    """`forward(*streams, mask) -> (cls_logits (B, P, C), offsets (B, P, 2))`, see the module
    docstring. Holds its own copy of the network in eval mode; the caller's is untouched."""

    def __init__(self, model: DELModel) -> None:
        super().__init__()
        self.network = copy.deepcopy(model).cpu().float().eval()
        self.config = model.config
        self.names = input_names(model.config)
        for embedding in (self.network.embed_visual, self.network.embed_audio):
            if embedding is not None and embedding.position is not None:
                _fixed_position_table(embedding, max_steps(self.config))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        given = dict(zip(self.names, inputs, strict=True))
        output = self.network(given.get("visual"), given.get("audio"), given["mask"])
        return torch.cat(output.cls_logits, dim=1), torch.cat(output.offsets, dim=1)


def _fixed_position_table(embedding: nn.Module, rows: int) -> None:
    """Let `embedding` slice its position table for any T ≤ `rows` without a branch on T.

    For T ≤ `max_seq_len` the rows used are the eager model's `table[:T]`; rows past
    `max_seq_len` only meet padded steps (which the graph's caller guarantees, see
    `max_steps`) and are zeroed by the mask.
    """
    table = embedding.position
    extended = torch.zeros(max(rows, table.shape[0]), table.shape[1], dtype=table.dtype)
    extended[: table.shape[0]] = table
    embedding.position = extended  # the non-persistent buffer, longer
    embedding.position_table = lambda length: embedding.position[:length]


def example_inputs(config: ModelConfig, batch: int = 2, length: int | None = None):
    """Random inputs of the graph's signature: `batch` videos of `length` padded steps
    (default: two time multiples), the last video half padding."""
    length = length or 2 * time_multiple(config)
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[-1, length // 2 + 1 :] = False
    tensors = []
    for name in input_names(config)[:-1]:
        dim = config.visual_dim if name == "visual" else config.audio_dim
        tensors.append(torch.randn(batch, length, dim, generator=generator))
    return (*tensors, mask)


def dynamic_shapes(config: ModelConfig) -> tuple[dict[int, object], ...]:
    """Dynamic B and T (`time_multiple · T_blocks`) for every input of the graph."""
    from torch.export import Dim

    multiple = time_multiple(config)
    batch = Dim("B", min=1, max=1024)
    blocks = Dim("T_blocks", min=MIN_BLOCKS, max=max_steps(config) // multiple)
    length = multiple * blocks
    return tuple({0: batch, 1: length} for _ in input_names(config))


def export_program(model: DELModel, batch: int = 2, length: int | None = None):
    """`torch.export.ExportedProgram` of `ExportGraph(model)` with dynamic B and T."""
    graph = ExportGraph(model)
    inputs = example_inputs(model.config, batch, length)
    with torch.no_grad():
        # forward(*inputs): the varargs tuple is the one top-level argument
        shapes = (dynamic_shapes(model.config),)
        return torch.export.export(graph, inputs, dynamic_shapes=shapes)
