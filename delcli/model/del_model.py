"""DEL: the modules of the paper composed into one network (Fig. 2).

features → per-modality embedding → AAC (Eq. 5–6) → per-modality temporal
pyramid → PAN with modality-guided adapters and adaptive pooling (Eq. 11–13)
→ shared classification / regression heads; SCL (Eq. 7–10) reads the AAC
tokens. `forward` returns raw head outputs; `losses` turns them and the ground
truth into the weighted objective of Eq. (14); `candidates` decodes them into
segments on the grid for post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from delcli.errors import ConfigError
from delcli.model.aac import AACOutput, AdaptiveAttention
from delcli.model.assign import assign_batch, make_points
from delcli.model.config import ModelConfig, nearest_valid_lengths
from delcli.model.contrastive import ScoreContrastive, token_targets
from delcli.model.decode import Candidates, decode_candidates
from delcli.model.embedding import ModalityEmbedding
from delcli.model.heads import ClassificationHead, RegressionHead
from delcli.model.losses import PositiveCountNormalizer, detection_losses
from delcli.model.normalization import FeatureNormalization
from delcli.model.pan import PathAggregation
from delcli.model.pyramid import TemporalPyramid

LOSS_TERMS = ("inter", "intra", "score", "cls", "reg")


@dataclass
class DELOutput:
    """Raw network outputs for a batch.

    Attributes:
        cls_logits: per level (B, T_l, C).
        offsets: per level (B, T_l, 2), distances in units of the level stride.
        masks: per level (B, T_l) bool.
        tokens: the AAC output (token features and CLS tokens) that SCL reads.
        unimodal: in training with `unimodal_heads > 0`, per modality the
            (cls_logits, offsets) of its own heads on its own pyramid; else empty.
    """

    cls_logits: list[torch.Tensor]
    offsets: list[torch.Tensor]
    masks: list[torch.Tensor]
    tokens: AACOutput
    unimodal: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = field(default_factory=dict)


class DELModel(nn.Module):
    """The DEL network; `config.modalities`, `aac`, `scl`, `pan`, `n_levels` switch the
    paper's ablations."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        standard = config.normalize == "standard"
        self.norm_visual = (
            FeatureNormalization(config.visual_dim) if config.uses_visual and standard else None
        )
        self.norm_audio = (
            FeatureNormalization(config.audio_dim) if config.uses_audio and standard else None
        )
        self.embed_visual = (
            ModalityEmbedding(config.visual_dim, config) if config.uses_visual else None
        )
        self.embed_audio = (
            ModalityEmbedding(config.audio_dim, config) if config.uses_audio else None
        )
        self.aac = AdaptiveAttention(config)
        self.pyramid_visual = TemporalPyramid(config) if config.uses_visual else None
        self.pyramid_audio = TemporalPyramid(config) if config.uses_audio else None
        self.pan = PathAggregation(config)
        self.cls_head = ClassificationHead(config)
        self.reg_head = RegressionHead(config)
        self.contrastive = ScoreContrastive(config) if config.scl else None
        self.unimodal_heads = (
            nn.ModuleDict(
                {
                    f"{stream}_{kind}": head(config)
                    for stream in ("visual", "audio")
                    for kind, head in (("cls", ClassificationHead), ("reg", RegressionHead))
                }
            )
            if config.modalities == "av" and config.unimodal_heads > 0
            else None
        )
        self.normalizer = PositiveCountNormalizer(config.loss)
        # training only (train.activation_checkpointing): the pyramids and PAN keep only
        # their inputs and recompute their activations in backward
        self.activation_checkpointing = False

    def _checkpointed(self, module: nn.Module, *args):
        """`module(*args)`, under activation checkpointing when it is on and a graph is being
        built (the RNG state is replayed, so dropout draws the same masks)."""
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(
        self,
        visual: torch.Tensor | None,
        audio: torch.Tensor | None,
        mask: torch.Tensor,
    ) -> DELOutput:
        """Run the network.

        Args:
            visual: (B, T, visual_dim), or None when `modalities` is "a".
            audio: (B, T, audio_dim), or None when `modalities` is "v".
            mask: (B, T) bool, True on valid steps; T must be a multiple of
                `config.length_divisor`.
        """
        self._check_inputs(visual, audio, mask)
        if self.norm_visual is not None:
            visual = self.norm_visual(visual, mask)
        if self.norm_audio is not None:
            audio = self.norm_audio(audio, mask)
        if self.training and self.config.modality_dropout > 0 and self.config.modalities == "av":
            visual, audio = modality_dropout(visual, audio, self.config.modality_dropout)
        v = self.embed_visual(visual, mask) if self.embed_visual is not None else None
        a = self.embed_audio(audio, mask) if self.embed_audio is not None else None
        tokens = self.aac(v, a, mask)
        run = self._checkpointed
        v_levels = run(self.pyramid_visual, tokens.visual, mask) if self.pyramid_visual else None
        a_levels = run(self.pyramid_audio, tokens.audio, mask) if self.pyramid_audio else None
        levels = v_levels if v_levels is not None else a_levels
        masks = [level_mask for _, level_mask in levels]
        fused = run(
            self.pan,
            [x for x, _ in v_levels] if v_levels is not None else None,
            [x for x, _ in a_levels] if a_levels is not None else None,
            masks,
        )
        unimodal = {}
        if self.training and self.unimodal_heads is not None:
            for stream, stream_levels in (("visual", v_levels), ("audio", a_levels)):
                features = [x for x, _ in stream_levels]
                unimodal[stream] = (
                    self.unimodal_heads[f"{stream}_cls"](features, masks),
                    self.unimodal_heads[f"{stream}_reg"](features, masks),
                )
        return DELOutput(
            cls_logits=self.cls_head(fused, masks),
            offsets=self.reg_head(fused, masks),
            masks=masks,
            tokens=tokens,
            unimodal=unimodal,
        )

    def normalizations(self) -> dict[str, FeatureNormalization]:
        """The input normalisations by stream name (`visual`, `audio`); empty with
        `normalize: none`."""
        found = {"visual": self.norm_visual, "audio": self.norm_audio}
        return {name: module for name, module in found.items() if module is not None}

    def _check_inputs(
        self, visual: torch.Tensor | None, audio: torch.Tensor | None, mask: torch.Tensor
    ) -> None:
        config = self.config
        for name, x, used, dim in (
            ("visual", visual, config.uses_visual, config.visual_dim),
            ("audio", audio, config.uses_audio, config.audio_dim),
        ):
            if used and x is None:
                raise ConfigError(f"modalities={config.modalities} needs {name} features")
            if used and x.shape[-1] != dim:
                raise ConfigError(
                    f"{name} features have {x.shape[-1]} channels; the model expects "
                    f"{name}_dim={dim}"
                )
            if used and x.shape[:2] != mask.shape:
                raise ConfigError(
                    f"{name} features {tuple(x.shape)} do not match mask {tuple(mask.shape)}"
                )
        length = mask.shape[1]
        if length % config.length_divisor:
            below, above = nearest_valid_lengths(length, config.length_divisor)
            raise ConfigError(
                f"sequence length {length} is not a multiple of {config.length_divisor} "
                f"(n_levels={config.n_levels}); pad to {above} (or crop to {below})"
            )

    def losses(
        self,
        output: DELOutput,
        segments: list[torch.Tensor],
        labels: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Every term of Eq. (14) and their weighted sum `total`.

        Args:
            output: `forward`'s result for the batch.
            segments: per video (N_b, 2) event boundaries in grid steps.
            labels: per video (N_b,) class indices.
        """
        config = self.config
        points = make_points([m.shape[1] for m in output.masks], config).to(output.masks[0].device)
        cls_targets, reg_targets = assign_batch(
            points, segments, labels, config.num_classes, config.center_sample_radius
        )
        valid = torch.cat(output.masks, dim=1)
        terms = detection_losses(
            torch.cat(output.cls_logits, dim=1),
            torch.cat(output.offsets, dim=1),
            cls_targets,
            reg_targets,
            valid,
            config.loss,
            self.normalizer,
        )
        zero = terms["cls"].new_zeros(())
        if output.unimodal:
            terms["unimodal"] = self._unimodal_loss(output, cls_targets, reg_targets, valid)
        if self.contrastive is not None:
            grid_mask = output.masks[0]
            in_event, token_label = token_targets(segments, labels, grid_mask, config.num_classes)
            tokens = output.tokens
            terms.update(
                self.contrastive(
                    tokens.visual,
                    tokens.audio,
                    tokens.cls_visual,
                    tokens.cls_audio,
                    grid_mask,
                    in_event,
                    token_label,
                )
            )
        for name in LOSS_TERMS:
            terms.setdefault(name, zero)
        terms["total"] = sum(
            weight * terms[name]
            for weight, name in zip(config.loss.weights, LOSS_TERMS, strict=True)
        )
        if "unimodal" in terms:
            terms["total"] = terms["total"] + config.unimodal_heads * terms["unimodal"]
        return terms

    def _unimodal_loss(
        self,
        output: DELOutput,
        cls_targets: torch.Tensor,
        reg_targets: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """L_cls + L_reg of each modality's own heads, summed over the modalities, on the
        fused heads' targets and divided by the same positive count (not updated twice)."""
        count = self.normalizer.value.detach().clone()
        total = cls_targets.new_zeros(())
        for cls_logits, offsets in output.unimodal.values():
            terms = detection_losses(
                torch.cat(cls_logits, dim=1),
                torch.cat(offsets, dim=1),
                cls_targets,
                reg_targets,
                valid,
                self.config.loss,
                lambda _positives: count,
            )
            total = total + terms["cls"] + terms["reg"]
        return total

    @torch.no_grad()
    def candidates(self, output: DELOutput) -> list[Candidates]:
        """Per video: candidate segments (grid steps), scores and labels before NMS."""
        return decode_candidates(output.cls_logits, output.offsets, output.masks, self.config)


def modality_dropout(
    visual: torch.Tensor, audio: torch.Tensor, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the visual stream of a random `share / 2` of the videos and the audio stream
    of another `share / 2` (their features are standardised, so zero is the mean)."""
    draw = torch.rand(visual.shape[0], device=visual.device)
    keep_visual = (draw >= share / 2).to(visual.dtype)[:, None, None]
    keep_audio = ((draw < share / 2) | (draw >= share)).to(audio.dtype)[:, None, None]
    return visual * keep_visual, audio * keep_audio
