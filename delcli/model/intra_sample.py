"""The intra-sample term of SCL (paper §3.3, Fig. 3, Eq. 8 and 10; docs/model.md §6).

Within one video, the token heads' confident predictions pick, per modality,
positives (in an event, class right) and hard negatives (confident, class
wrong); each positive of one modality is pulled towards its counterpart z⁺ in
the other modality and away from that modality's hardest negatives. The pair
selection runs without gradient; `ScoreContrastive` (`delcli.model.contrastive`)
calls `select_pairs` and `intra_sample_loss` for both directions at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairSelection:
    """Score-based pairs of one modality (Fig. 3).

    Attributes:
        positives: (B, T) bool, I_P: in-event, σ(s_t) > 0.5 and argmax c_t = label.
        hard_negatives: (B, T) bool, I_HN: valid, σ(s_t) > 0.5 and argmax c_t ≠ label.
        confidence: (B, T) the score logits s_t, ranking hard negatives when capped.
    """

    positives: torch.Tensor
    hard_negatives: torch.Tensor
    confidence: torch.Tensor


@torch.no_grad()
def select_pairs(
    score_logits: torch.Tensor,
    category_logits: torch.Tensor,
    in_event: torch.Tensor,
    token_label: torch.Tensor,
    mask: torch.Tensor,
) -> PairSelection:
    """Positives and hard negatives from the token heads' predictions.

    Args:
        score_logits: (B, T) logits of s_t.
        category_logits: (B, T, C) logits of c_t.
        in_event, token_label, mask: (B, T) as from `token_targets`; background
            (label −1) never equals an argmax, so a confident background step is
            a hard negative.
    """
    confident = mask & (score_logits > 0)  # σ(s_t) > 0.5
    correct = category_logits.argmax(dim=-1) == token_label
    return PairSelection(
        positives=confident & in_event & correct,
        hard_negatives=confident & ~correct,
        confidence=score_logits.detach(),
    )


def positive_targets(
    z_other: torch.Tensor, other_positives: torch.Tensor, token_label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z⁺ for an anchor at every step: the other modality's token at the same step if
    that is one of its positives, else the re-normalised mean of its positives of the
    same class in this video.

    Args:
        z_other: (B, T, P) normalised projections; other_positives: (B, T) bool.
        token_label: (B, T) long.

    Returns:
        z_plus (B, T, P) and has_positive (B, T) bool (False: no z⁺ exists).
    """
    same_class = (token_label.unsqueeze(2) == token_label.unsqueeze(1)) & other_positives.unsqueeze(
        1
    )  # (B, T_anchor, T_other)
    class_mean = F.normalize(
        torch.einsum("bts,bsp->btp", same_class.to(z_other.dtype), z_other), dim=-1
    )
    z_plus = torch.where(other_positives.unsqueeze(-1), z_other, class_mean)
    has_positive = other_positives | same_class.any(dim=2)
    return z_plus, has_positive


def hardest_negatives(
    hard_negatives: torch.Tensor, confidence: torch.Tensor, max_negatives: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """At most `max_negatives` hard negatives per video, the most confident (highest
    s_t) first: deterministic, and the hardest. `hard_negatives`, `confidence` (B, T).

    Returns:
        index (B, K) step indices and valid (B, K) bool, K = min(max_negatives, T).
    """
    k = min(max_negatives, hard_negatives.shape[1])
    ranking = confidence.float().masked_fill(~hard_negatives, -math.inf)
    index = ranking.topk(k, dim=1).indices
    return index, hard_negatives.gather(1, index)


def negatives_by_ground_truth(token_label: torch.Tensor, negative_index: torch.Tensor):
    """(B, T, K) bool: may the negative at `negative_index (B, K)` oppose the anchor at
    each step t? Not when it is the anchor's own time step (the other view of the same
    moment) nor when its true class is the anchor's (a view of the same kind of event
    that the token head merely mispredicted); background opposes every class."""
    steps = torch.arange(token_label.shape[1], device=token_label.device)
    same_time = negative_index.unsqueeze(1) == steps.view(1, -1, 1)
    negative_label = token_label.gather(1, negative_index)  # (B, K)
    same_class = (negative_label.unsqueeze(1) == token_label.unsqueeze(2)) & (
        negative_label.unsqueeze(1) >= 0
    )
    return ~(same_time | same_class)


def anchored_intra_loss(
    z_anchor: torch.Tensor,
    anchor: PairSelection,
    z_other: torch.Tensor,
    other: PairSelection,
    token_label: torch.Tensor,
    temperature: torch.Tensor,
    max_negatives: int,
    by_ground_truth: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One direction of Eq. (10): anchors from one modality, z⁺ and z⁻ from the other.

    Args:
        z_anchor, z_other: (B, T, P) normalised projections; anchor, other: their pairs.
        by_ground_truth: drop, per anchor, the negatives `negatives_by_ground_truth`
            excludes (False: the paper's literal rule, every hard negative of the video).

    Returns:
        loss (B,): Eq. (8) averaged over the video's anchors (0 without anchors),
        has_terms (B,) bool: the video has an anchor with a z⁺ and a negative.
    """
    z_anchor, z_other = z_anchor.float(), z_other.float()
    z_plus, has_positive = positive_targets(z_other, other.positives, token_label)
    negative_index, negative_valid = hardest_negatives(
        other.hard_negatives, other.confidence, max_negatives
    )
    pair_valid = negative_valid.unsqueeze(1).expand(-1, token_label.shape[1], -1)  # (B, T, K)
    if by_ground_truth:
        pair_valid = pair_valid & negatives_by_ground_truth(token_label, negative_index)
    anchors = anchor.positives & has_positive & pair_valid.any(dim=2)
    z_minus = z_other.gather(1, negative_index.unsqueeze(-1).expand(-1, -1, z_other.shape[-1]))
    positive_logit = (z_anchor * z_plus).sum(-1) / temperature  # (B, T)
    negative_logits = torch.einsum("btp,bkp->btk", z_anchor, z_minus) / temperature
    negative_logits = negative_logits.masked_fill(~pair_valid, -math.inf)
    # Eq. (8): −log(e^{z·z⁺/τ} / (e^{z·z⁺/τ} + Σ e^{z·z⁻/τ})); finite since z⁺'s logit is.
    logits = torch.cat([positive_logit.unsqueeze(-1), negative_logits], dim=-1)
    per_anchor = torch.where(anchors, logits.logsumexp(dim=-1) - positive_logit, 0.0)
    count = anchors.sum(dim=1)
    return per_anchor.sum(dim=1) / count.clamp(min=1), count > 0


def intra_sample_loss(
    z_visual: torch.Tensor,
    z_audio: torch.Tensor,
    visual: PairSelection,
    audio: PairSelection,
    token_label: torch.Tensor,
    temperature: torch.Tensor,
    max_negatives: int,
    by_ground_truth: bool = False,
) -> torch.Tensor:
    """Eq. (10): visual-anchored plus audio-anchored terms, averaged over the videos
    that have any term; zero (never NaN) when none has. z_*: (B, T, P) normalised."""
    v_loss, v_terms = anchored_intra_loss(
        z_visual, visual, z_audio, audio, token_label, temperature, max_negatives, by_ground_truth
    )
    a_loss, a_terms = anchored_intra_loss(
        z_audio, audio, z_visual, visual, token_label, temperature, max_negatives, by_ground_truth
    )
    videos = (v_terms | a_terms).sum()
    return (v_loss + a_loss).sum() / videos.clamp(min=1)
