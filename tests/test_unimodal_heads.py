"""`model.unimodal_heads`: each modality's pyramid gets a detection loss of its own in
training, through heads that inference never reads."""

from __future__ import annotations

import pytest
import torch

from delcli.errors import ConfigError
from delcli.model.config import ModelConfig, validate
from delcli.model.del_model import LOSS_TERMS, DELModel

from helpers import TINY_MODEL, tiny_training_batch


def _model(**overrides) -> DELModel:
    torch.manual_seed(0)
    return DELModel(ModelConfig(**{**TINY_MODEL, **overrides}))


def test_off_by_default_and_for_a_single_modality():
    assert ModelConfig().unimodal_heads == 0.0
    assert _model().unimodal_heads is None
    assert _model(modalities="v", unimodal_heads=1.0).unimodal_heads is None
    with pytest.raises(ConfigError, match="unimodal_heads"):
        validate(ModelConfig(**{**TINY_MODEL, "unimodal_heads": -0.5}))


def test_inference_does_not_depend_on_the_unimodal_heads():
    """Same shared weights, with and without the extra heads: identical eval outputs."""
    visual, audio, mask, _, _ = tiny_training_batch()
    with_heads = _model(unimodal_heads=0.5).eval()
    without = _model().eval()
    shared = {k: v for k, v in with_heads.state_dict().items() if "unimodal_heads" not in k}
    without.load_state_dict(shared)
    first, second = with_heads(visual, audio, mask), without(visual, audio, mask)
    assert first.unimodal == {}
    for a, b in zip(
        first.cls_logits + first.offsets, second.cls_logits + second.offsets, strict=True
    ):
        assert torch.equal(a, b)


def test_the_loss_adds_each_modality_detection_terms_once_with_the_shared_normaliser():
    visual, audio, mask, segments, labels = tiny_training_batch()
    weight = 0.5
    model = _model(unimodal_heads=weight).train()
    init = float(model.normalizer.value)
    output = model(visual, audio, mask)
    assert set(output.unimodal) == {"visual", "audio"}
    terms = model.losses(output, segments, labels)
    base = sum(
        w * terms[name] for w, name in zip(model.config.loss.weights, LOSS_TERMS, strict=True)
    )
    assert torch.allclose(terms["total"], base + weight * terms["unimodal"])
    assert float(terms["unimodal"].detach()) > 0
    # the positive-count EMA moved once for the batch, not once per set of heads
    baseline = _model().train()
    baseline.losses(baseline(visual, audio, mask), segments, labels)
    assert float(model.normalizer.value) == pytest.approx(float(baseline.normalizer.value))
    assert float(model.normalizer.value) != pytest.approx(init)

    terms["unimodal"].backward()
    visual_pyramid = [p.grad for p in model.pyramid_visual.parameters() if p.grad is not None]
    audio_pyramid = [p.grad for p in model.pyramid_audio.parameters() if p.grad is not None]
    assert any(float(g.abs().sum()) > 0 for g in visual_pyramid)
    assert any(float(g.abs().sum()) > 0 for g in audio_pyramid)
    assert all(p.grad is None for p in model.cls_head.parameters())  # fused heads untouched
