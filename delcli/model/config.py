"""Typed configuration of the DEL model, validated once.

Every module takes the whole `ModelConfig` and reads the fields it needs.
Defaults are the paper's / docs/model.md's UnAV-100 values; zoo recipes override
them per benchmark. Loading from YAML and dotted overrides live in
`delcli/settings.py` and `delcli/recipe.py`; this module only defines and validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from delcli.errors import ConfigError

Modalities = Literal["av", "a", "v"]
Normalize = Literal["none", "standard"]


def default_regression_ranges(n_levels: int) -> tuple[tuple[float, float], ...]:
    """ActionFormer's ranges in grid steps: (0,4), (4,8), … doubling, the last open-ended."""
    ranges = [(0.0, 4.0)] + [(4.0 * 2**i, 8.0 * 2**i) for i in range(n_levels - 1)]
    ranges = ranges[:n_levels]
    return (*ranges[:-1], (ranges[-1][0], float("inf")))


@dataclass
class LossConfig:
    """Eq. (14): L = λ1·L_inter + λ2·L_intra + λ3·L_score + λ4·L_cls + λ5·L_reg."""

    weights: tuple[float, float, float, float, float] = (0.1, 0.1, 0.5, 1.0, 1.0)
    # decided on the UnAV-geometry synthetic set, full schedule, 3 seeds (docs/benchmarks.md,
    # "Loss choices"): focal 42.0 ± 1.0 / 41.8 ± 1.1 vs the paper's cross-entropy 36.8 ± 1.3 /
    # 39.5 ± 0.3 (with DIoU / smooth-L1); DIoU 42.0 ± 1.0 vs smooth-L1 41.8 ± 1.1 is no
    # difference, so the paper's smooth-L1 (§3.5) is the default
    cls_loss: Literal["focal", "ce"] = "focal"
    reg_loss: Literal["diou", "smooth_l1"] = "smooth_l1"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    normalizer_momentum: float = 0.9
    normalizer_init: float = 100.0
    label_smoothing: float = 0.0
    # L_score's scale: "sum" adds both modalities' BCE + CE (Eq. 9 as written);
    # "balanced" averages the modalities and divides the CE by log(C), its value at chance
    score_scale: Literal["sum", "balanced"] = "sum"


@dataclass
class ModelConfig:
    """Architecture, assignment and decoding settings of one DEL model.

    Tensors use one layout everywhere: features `(B, T, C)`, masks `(B, T)` bool.
    """

    # inputs
    visual_dim: int = 2048
    audio_dim: int = 128
    num_classes: int = 100
    modalities: Modalities = "av"
    max_seq_len: int = 224
    # input normalisation (§0): per-channel training-split statistics, stored with the weights
    normalize: Normalize = "standard"
    # training only: drop a whole stream (zeroed after normalisation) for this share of
    # videos, half each, so neither stream can carry the model alone (docs/model.md §0)
    modality_dropout: float = 0.0
    # training only: weight of a detection loss on each modality's own pyramid, through
    # heads of its own that inference does not use (docs/model.md §5); 0 = off
    unimodal_heads: float = 0.0
    # embedding (docs/model.md §1)
    embed_dim: int = 512
    position_encoding: bool = False
    # AAC (§2)
    aac: bool = True
    n_aac: int = 2
    n_heads: int = 8
    # per-modality pyramid (§3)
    n_stem: int = 2
    n_levels: int = 6
    window_size: int = 9  # local attention window (odd); 0 = global attention everywhere
    mlp_ratio: int = 4
    dropout: float = 0.0
    drop_path: float = 0.1
    # PAN (§4)
    pan: bool = True
    adapter_heads: int = 8
    pool_tokens: int = 4
    # width of the PAN's paths, adapters and pooling; None = embed_dim. Narrower, the
    # pyramids enter through a linear map to it and the fused output maps back to embed_dim
    pan_dim: int | None = None
    # heads and assignment (§5)
    head_dim: int = 512
    head_layers: int = 3
    head_kernel: int = 3
    prior_prob: float = 0.01
    regression_ranges: tuple[tuple[float, float], ...] | None = None  # None → default for n_levels
    center_sample_radius: float = 1.5
    # SCL (§6)
    scl: bool = True
    projection_dim: int = 128
    temperature_init: float = 0.07
    max_negatives: int = 64
    # intra-sample negatives: "prediction" is the paper's literal rule (every confident,
    # mispredicted step; 32.2 ± 0.5 vs 31.1 ± 0.5 avg mAP, docs/benchmarks.md);
    # "ground_truth" excludes the anchor's own class and time step
    hard_negatives: Literal["ground_truth", "prediction"] = "prediction"
    # decoding (§9)
    pre_nms_thresh: float = 0.001
    pre_nms_topk: int = 2000
    min_duration: float = 0.05
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.regression_ranges is None:
            self.regression_ranges = default_regression_ranges(self.n_levels)
        self.regression_ranges = tuple(tuple(map(float, r)) for r in self.regression_ranges)
        validate(self)

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride of each pyramid level on the input grid: 1, 2, 4, …"""
        return tuple(2**level for level in range(self.n_levels))

    @property
    def uses_visual(self) -> bool:
        return self.modalities in ("av", "v")

    @property
    def uses_audio(self) -> bool:
        return self.modalities in ("av", "a")

    @property
    def pan_width(self) -> int:
        """Channels inside the PAN (`pan_dim`, or `embed_dim` when unset or PAN is off)."""
        return self.pan_dim if self.pan and self.pan_dim is not None else self.embed_dim

    @property
    def length_divisor(self) -> int:
        """Padded sequence lengths must be multiples of this (the coarsest stride)."""
        return self.strides[-1]


def nearest_valid_lengths(length: int, divisor: int) -> tuple[int, int]:
    """The valid lengths just below and just above `length` (multiples of `divisor`)."""
    below = max(divisor, length // divisor * divisor)
    above = -(-length // divisor) * divisor
    return below, above


def validate(config: ModelConfig) -> None:
    """Raise `ConfigError` naming the key and the allowed values for the first problem."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"model.{message}")

    need(
        config.modalities in ("av", "a", "v"),
        f"modalities={config.modalities!r}; allowed: av, a, v",
    )
    need(
        config.normalize in ("none", "standard"),
        f"normalize={config.normalize!r}; allowed: none, standard",
    )
    need(
        config.hard_negatives in ("ground_truth", "prediction"),
        f"hard_negatives={config.hard_negatives!r}; allowed: ground_truth, prediction",
    )
    need(
        0.0 <= config.modality_dropout < 1.0,
        f"modality_dropout={config.modality_dropout}; must lie in [0, 1)",
    )
    need(
        config.unimodal_heads >= 0.0,
        f"unimodal_heads={config.unimodal_heads}; must be >= 0",
    )
    need(config.num_classes >= 1, f"num_classes={config.num_classes}; must be >= 1")
    if config.uses_visual:
        need(config.visual_dim >= 1, f"visual_dim={config.visual_dim}; must be >= 1")
    if config.uses_audio:
        need(config.audio_dim >= 1, f"audio_dim={config.audio_dim}; must be >= 1")
    need(1 <= config.n_levels <= 8, f"n_levels={config.n_levels}; allowed: 1…8")
    for key in ("n_heads", "adapter_heads"):
        heads = getattr(config, key)
        need(
            heads >= 1 and config.embed_dim % heads == 0,
            f"{key}={heads}; must divide embed_dim={config.embed_dim}",
        )
    if config.pan_dim is not None:
        need(config.pan_dim >= 1, f"pan_dim={config.pan_dim}; must be >= 1 (or null)")
    need(
        config.pan_width % config.adapter_heads == 0,
        f"adapter_heads={config.adapter_heads}; must divide pan_dim={config.pan_width}",
    )
    need(
        config.window_size == 0 or (config.window_size >= 3 and config.window_size % 2 == 1),
        f"window_size={config.window_size}; must be 0 (global) or an odd number >= 3",
    )
    for key in ("embed_dim", "head_dim", "projection_dim", "mlp_ratio", "max_negatives"):
        need(getattr(config, key) >= 1, f"{key}={getattr(config, key)}; must be >= 1")
    need(
        config.head_kernel >= 1 and config.head_kernel % 2 == 1,
        f"head_kernel={config.head_kernel}; must be an odd number >= 1",
    )
    for key in ("dropout", "drop_path"):
        need(0.0 <= getattr(config, key) < 1.0, f"{key}={getattr(config, key)}; must lie in [0, 1)")
    need(
        config.center_sample_radius >= 0.0,
        f"center_sample_radius={config.center_sample_radius}; must be >= 0",
    )
    need(
        0.0 <= config.pre_nms_thresh <= 1.0,
        f"pre_nms_thresh={config.pre_nms_thresh}; must lie in [0, 1]",
    )
    need(config.pre_nms_topk >= 1, f"pre_nms_topk={config.pre_nms_topk}; must be >= 1")
    need(config.n_aac >= 0 and config.n_stem >= 0, "n_aac and n_stem must be >= 0")
    need(config.pool_tokens >= 1, f"pool_tokens={config.pool_tokens}; must be >= 1")
    need(config.head_layers >= 1, f"head_layers={config.head_layers}; must be >= 1")
    need(
        len(config.regression_ranges) == config.n_levels,
        f"regression_ranges has {len(config.regression_ranges)} entries; "
        f"n_levels={config.n_levels} needs one per level",
    )
    need(0.0 < config.prior_prob < 1.0, f"prior_prob={config.prior_prob}; must lie in (0, 1)")
    need(0.0 < config.temperature_init <= 1.0, "temperature_init must lie in (0, 1]")
    divisor = config.length_divisor
    need(
        config.max_seq_len >= 1,
        f"max_seq_len={config.max_seq_len}; must be a positive multiple of {divisor}",
    )
    if config.max_seq_len % divisor:
        below, above = nearest_valid_lengths(config.max_seq_len, divisor)
        raise ConfigError(
            f"model.max_seq_len={config.max_seq_len} is not divisible by {divisor} "
            f"(the stride of level {config.n_levels}); nearest valid: {below} or {above}"
        )
    weights = config.loss.weights
    need(
        len(weights) == 5 and all(0 <= w < math.inf for w in weights),
        f"loss.weights={weights}; five finite non-negative numbers (inter, intra, score, cls, reg)",
    )
    need(
        config.loss.cls_loss in ("focal", "ce"),
        f"loss.cls_loss={config.loss.cls_loss!r}; allowed: focal, ce",
    )
    need(
        config.loss.score_scale in ("sum", "balanced"),
        f"loss.score_scale={config.loss.score_scale!r}; allowed: sum, balanced",
    )
    need(
        config.loss.reg_loss in ("diou", "smooth_l1"),
        f"loss.reg_loss={config.loss.reg_loss!r}; allowed: diou, smooth_l1",
    )
    loss = config.loss
    for key, low, high in (
        ("focal_alpha", 0.0, 1.0),
        ("normalizer_momentum", 0.0, 1.0),
        ("label_smoothing", 0.0, 1.0),
    ):
        value = getattr(loss, key)
        need(low <= value <= high, f"loss.{key}={value}; must lie in [{low:g}, {high:g}]")
    need(0.0 <= loss.focal_gamma < math.inf, f"loss.focal_gamma={loss.focal_gamma}; must be >= 0")
    need(
        0.0 < loss.normalizer_init < math.inf,
        f"loss.normalizer_init={loss.normalizer_init}; must be > 0",
    )
