"""Score-based contrastive learning (SCL, paper §3.3, Eq. 7–10; docs/model.md §6).

Token heads on the AAC outputs predict whether a step lies inside an event
(s_t, Eq. 9) and its class (c_t): L_score. Their confident predictions pick the
intra-sample pairs (Fig. 3) without gradient; Eq. (10) pulls each positive
towards its counterpart in the other modality and away from that modality's
hard negatives (`delcli.model.intra_sample`), Eq. (7) aligns a video's two CLS
tokens against the other videos of the global batch (here, with the gather
across DDP ranks). Gradients flow through the projection heads and τ; the loss
arithmetic runs in float32, also under bf16 autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from delcli.errors import DataError
from delcli.model.config import ModelConfig
from delcli.model.intra_sample import intra_sample_loss, select_pairs

TEMPERATURE_RANGE = (0.01, 1.0)


def token_targets(
    segments: list[torch.Tensor],
    labels: list[torch.Tensor],
    mask: torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step targets of the token heads (Eq. 9).

    Args:
        segments: per video (N_b, 2) start, end in grid steps; step t lies inside
            an event when start <= t <= end.
        labels: per video (N_b,) class indices in [0, num_classes).
        mask: (B, T) bool, True on valid steps.

    Returns:
        in_event (B, T) bool: a valid step inside some event.
        token_label (B, T) long: the label of the shortest covering event (ties →
        the lower event index), −1 on background and padding.
    """
    batch, length = mask.shape
    if len(segments) != batch or len(labels) != batch:
        raise DataError(
            f"token_targets got {len(segments)} segment and {len(labels)} label tensors "
            f"for a batch of {batch} videos"
        )
    device = mask.device
    all_labels = torch.cat([lab.reshape(-1) for lab in labels]).to(device)
    outside = (all_labels < 0) | (all_labels >= num_classes)
    if bool(outside.any()):
        bad = all_labels[outside].unique().tolist()
        raise DataError(f"event labels must lie in [0, {num_classes}); got {bad}")
    steps = torch.arange(length, device=device, dtype=torch.float32)
    token_label = torch.full((batch, length), -1, dtype=torch.long, device=device)
    for b, (seg, lab) in enumerate(zip(segments, labels, strict=True)):
        if seg.numel() == 0:
            continue
        seg = seg.to(device=device, dtype=torch.float32).reshape(-1, 2)
        inside = (seg[:, :1] <= steps) & (steps <= seg[:, 1:])  # (N, T)
        duration = (seg[:, 1] - seg[:, 0]).unsqueeze(1).expand_as(inside)
        # argmin returns the first minimum, so equal durations go to the lower index.
        shortest = duration.masked_fill(~inside, math.inf).argmin(dim=0)  # (T,)
        covered = inside.any(dim=0) & mask[b]
        token_label[b] = torch.where(covered, lab.to(device)[shortest], -1)
    return token_label >= 0, token_label


def _gather_with_gradient(*tensors: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    """Under DDP: each tensor concatenated over ranks (autograd flows back to every
    rank) and the offset of this rank's rows. Every rank must hold the same batch
    size (DistributedSampler guarantees it)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(tensors), 0
    gathered = [_AllGatherRows.apply(t) for t in tensors]
    return gathered, dist.get_rank() * tensors[0].shape[0]


class _AllGatherRows(torch.autograd.Function):
    """Rows of every rank concatenated; the backward sums each rank's gradient for
    this rank's rows (every rank's loss reads them). Public collectives only: the
    autograd-aware ones in torch.distributed.nn are deprecated."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def inter_sample_loss(
    z_visual: torch.Tensor, z_audio: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Eq. (7–8): symmetric InfoNCE between matched CLS projections, the other
    videos of the global batch as negatives.

    Args:
        z_visual, z_audio: (B, P) normalised CLS_V / CLS_A projections of this rank.

    Returns:
        visual→audio plus audio→visual cross-entropy, each a mean over this rank's
        anchors (log B each when all projections are equal).
    """
    z_visual, z_audio = z_visual.float(), z_audio.float()
    (all_visual, all_audio), offset = _gather_with_gradient(z_visual, z_audio)
    targets = torch.arange(z_visual.shape[0], device=z_visual.device) + offset
    visual_to_audio = z_visual @ all_audio.T / temperature
    audio_to_visual = z_audio @ all_visual.T / temperature
    return F.cross_entropy(visual_to_audio, targets) + F.cross_entropy(audio_to_visual, targets)


def token_score_loss(
    score_logits: torch.Tensor,
    category_logits: torch.Tensor,
    in_event: torch.Tensor,
    token_label: torch.Tensor,
    mask: torch.Tensor,
    ce_scale: float = 1.0,
) -> torch.Tensor:
    """L_score of one modality: BCE of s_t against in_event, mean over valid steps,
    plus `ce_scale` × cross-entropy of c_t against the label, mean over in-event steps
    (0 if none). score_logits (B, T); category_logits (B, T, C); the rest (B, T)."""
    bce = F.binary_cross_entropy_with_logits(
        score_logits.float(), in_event.to(torch.float32), reduction="none"
    )
    bce = torch.where(mask, bce, 0.0).sum() / mask.sum().clamp(min=1)
    target = token_label.masked_fill(~in_event, -1)
    ce = F.cross_entropy(
        category_logits.float().flatten(0, 1), target.flatten(), ignore_index=-1, reduction="sum"
    )
    return bce + ce_scale * ce / in_event.sum().clamp(min=1)


class TokenHeads(nn.Module):
    """Score head s_t (d → 1), category head c_t (d → C) and, when both modalities are
    used, the projection head (d → d → projection_dim, L2-normalised)."""

    def __init__(self, config: ModelConfig, projection: bool) -> None:
        super().__init__()
        d = config.embed_dim
        self.score = nn.Linear(d, 1)
        self.category = nn.Linear(d, config.num_classes)
        self.projection = (
            nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, config.projection_dim))
            if projection
            else None
        )

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x (B, T, d)` → score logits (B, T) and category logits (B, T, C)."""
        return self.score(x).squeeze(-1), self.category(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """`x (..., d)` → unit vectors (..., projection_dim)."""
        return F.normalize(self.projection(x).float(), dim=-1)


class ScoreContrastive(nn.Module):
    """SCL: token heads, L_score, and the inter/intra-sample contrastive losses.

    With one modality only the token heads exist (no projection heads, no τ, so
    DDP sees no unused parameters) and `inter`, `intra` are zero.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        paired = config.modalities == "av"
        names = [
            n for n, used in (("visual", config.uses_visual), ("audio", config.uses_audio)) if used
        ]
        self.heads = nn.ModuleDict({name: TokenHeads(config, paired) for name in names})
        if paired:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(config.temperature_init)))
        else:
            self.register_parameter("log_temperature", None)

    def temperature(self) -> torch.Tensor:
        """τ = exp(log τ), clamped to [0.01, 1]."""
        return self.log_temperature.exp().clamp(*TEMPERATURE_RANGE)

    def forward(
        self,
        visual: torch.Tensor | None,
        audio: torch.Tensor | None,
        cls_visual: torch.Tensor | None,
        cls_audio: torch.Tensor | None,
        mask: torch.Tensor,
        in_event: torch.Tensor,
        token_label: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Scalar losses `score`, `inter`, `intra`.

        Args:
            visual, audio: (B, T, d) AAC token features, None when absent.
            cls_visual, cls_audio: (B, d) CLS tokens, None when absent.
            mask: (B, T) bool; in_event, token_label: (B, T) from `token_targets`.
        """
        in_event = in_event & mask
        features = {"visual": visual, "audio": audio}
        predictions = {
            name: head.predict(features[name])
            for name, head in self.heads.items()
            if features[name] is not None
        }
        # Float32 loss arithmetic: contrastive logits are divided by τ down to 0.01.
        balanced = self.config.loss.score_scale == "balanced"
        ce_scale = 1.0 / math.log(max(self.config.num_classes, 2)) if balanced else 1.0
        with torch.autocast(mask.device.type, enabled=False):
            score = mask.new_zeros((), dtype=torch.float32)
            for score_logits, category_logits in predictions.values():
                score = score + token_score_loss(
                    score_logits, category_logits, in_event, token_label, mask, ce_scale
                )
            if balanced:
                score = score / max(len(predictions), 1)
        losses = {"score": score, "inter": score.new_zeros(()), "intra": score.new_zeros(())}
        if self.log_temperature is None:
            return losses
        visual_head, audio_head = self.heads["visual"], self.heads["audio"]
        if cls_visual is not None and cls_audio is not None:
            z_visual, z_audio = visual_head.project(cls_visual), audio_head.project(cls_audio)
            with torch.autocast(mask.device.type, enabled=False):
                losses["inter"] = inter_sample_loss(z_visual, z_audio, self.temperature())
        if len(predictions) == 2:
            visual_pairs, audio_pairs = (
                select_pairs(s, c, in_event, token_label, mask)
                for s, c in (predictions["visual"], predictions["audio"])
            )
            z_visual, z_audio = visual_head.project(visual), audio_head.project(audio)
            with torch.autocast(mask.device.type, enabled=False):
                losses["intra"] = intra_sample_loss(
                    z_visual,
                    z_audio,
                    visual_pairs,
                    audio_pairs,
                    token_label,
                    self.temperature(),
                    self.config.max_negatives,
                    self.config.hard_negatives == "ground_truth",
                )
        return losses
