"""Path aggregation network: shapes, masking, the adapter's gate, the APM's pooling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from delcli.errors import ConfigError
from delcli.model.config import ModelConfig
from delcli.model.pan import (
    AdaptivePooling,
    ModalityGuidedAdapter,
    PathAggregation,
    adaptive_max_pool,
    max_sigmoid_gate,
)

D = 32
SWITCHES = [(m, pan) for m in ("av", "a", "v") for pan in (True, False)]


def make_config(modalities: str = "av", pan: bool = True, n_levels: int = 3) -> ModelConfig:
    return ModelConfig(
        modalities=modalities,
        pan=pan,
        n_levels=n_levels,
        embed_dim=D,
        n_heads=4,
        adapter_heads=4,
        pool_tokens=4,
    )


def make_model(modalities: str = "av", pan: bool = True, n_levels: int = 3) -> PathAggregation:
    torch.manual_seed(0)
    return PathAggregation(make_config(modalities, pan, n_levels)).eval()


def level_masks(lengths: list[int], length: int, n_levels: int) -> list[torch.Tensor]:
    """Per level (B, T / 2^l) masks of videos with `lengths` valid steps at level 0."""
    return [
        torch.arange(length // 2**level)[None, :]
        < torch.tensor([math.ceil(n / 2**level) for n in lengths])[:, None]
        for level in range(n_levels)
    ]


def random_levels(batch: int, length: int, n_levels: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, length // 2**level, D, generator=generator) for level in range(n_levels)
    ]


def pad_with_noise(levels: list[torch.Tensor], length: int, seed: int) -> list[torch.Tensor]:
    """The same levels padded to `length` at level 0, the new steps random, not zero."""
    generator = torch.Generator().manual_seed(seed)
    padded = []
    for level, x in enumerate(levels):
        extra = length // 2**level - x.shape[1]
        noise = torch.randn(x.shape[0], extra, x.shape[2], generator=generator)
        padded.append(torch.cat([x, noise], dim=1))
    return padded


def run(model: PathAggregation, visual, audio, masks) -> list[torch.Tensor]:
    modalities = model.config.modalities
    return model(visual if "v" in modalities else None, audio if "a" in modalities else None, masks)


@pytest.mark.parametrize("n_levels", [1, 4])
@pytest.mark.parametrize(("modalities", "pan"), SWITCHES)
def test_output_has_one_level_per_input_level_of_width_d(modalities, pan, n_levels):
    model = make_model(modalities, pan, n_levels)
    masks = level_masks([32, 19], 32, n_levels)
    levels = random_levels(2, 32, n_levels, seed=1)
    out = run(model, levels, random_levels(2, 32, n_levels, seed=2), masks)
    assert [tuple(p.shape) for p in out] == [(2, 32 // 2**level, D) for level in range(n_levels)]
    assert all(torch.isfinite(p).all() for p in out)


@pytest.mark.parametrize(("modalities", "pan"), SWITCHES)
def test_padding_does_not_change_valid_outputs(modalities, pan):
    n_levels, lengths = 3, [16, 11]
    model = make_model(modalities, pan, n_levels)
    visual, audio = random_levels(2, 16, n_levels, 1), random_levels(2, 16, n_levels, 2)
    short = run(model, visual, audio, level_masks(lengths, 16, n_levels))
    long_masks = level_masks(lengths, 32, n_levels)
    long = run(model, pad_with_noise(visual, 32, 3), pad_with_noise(audio, 32, 4), long_masks)
    for level, (s, g, mask) in enumerate(zip(short, long, long_masks, strict=True)):
        short_mask = mask[:, : s.shape[1]]
        torch.testing.assert_close(
            g[:, : s.shape[1]][short_mask], s[short_mask], atol=1e-5, rtol=1e-5
        )
        assert (g[~mask] == 0).all(), f"padded steps of level {level} are not zero"
        assert (s[~short_mask] == 0).all()


def test_batch_of_n_equals_n_batches_of_one():
    n_levels, lengths = 4, [32, 25, 9]
    model = make_model("av", True, n_levels)
    masks = level_masks(lengths, 32, n_levels)
    visual, audio = random_levels(3, 32, n_levels, 1), random_levels(3, 32, n_levels, 2)
    batched = model(visual, audio, masks)
    for i in range(3):
        single = model(
            [x[i : i + 1] for x in visual],
            [x[i : i + 1] for x in audio],
            [m[i : i + 1] for m in masks],
        )
        for b, s in zip(batched, single, strict=True):
            torch.testing.assert_close(b[i : i + 1], s, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("modalities", "pan"), SWITCHES)
def test_gradients_reach_every_parameter(modalities, pan):
    model = make_model(modalities, pan, n_levels=3).train()
    masks = level_masks([16, 13], 16, 3)
    visual, audio = random_levels(2, 16, 3, 1), random_levels(2, 16, 3, 2)
    out = run(model, visual, audio, masks)
    # a random projection, not the plain sum: the final LayerNorm makes the sum over
    # channels a constant, which would leave only rounding noise upstream
    generator = torch.Generator().manual_seed(5)
    sum((p * torch.randn(p.shape, generator=generator)).sum() for p in out).backward()
    starved = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 1e-3
    ]
    assert not starved


def test_parameters_follow_the_switches():
    def groups(modalities, pan):
        return {name.split(".")[0] for name, _ in make_model(modalities, pan).named_parameters()}

    assert groups("av", True) == {"paths", "adapters", "pooling", "output", "output_norm"}
    assert groups("v", True) == {"paths", "output", "output_norm"}
    assert groups("av", False) == {"output", "output_norm"}
    assert groups("a", False) == {"output", "output_norm"}


@pytest.mark.parametrize("modalities", ["av", "v"])
def test_a_narrower_pan_keeps_the_output_width_and_padding_and_has_fewer_weights(modalities):
    torch.manual_seed(0)
    config = ModelConfig(
        modalities=modalities, n_levels=3, embed_dim=D, n_heads=4, adapter_heads=4, pan_dim=D // 2
    )
    narrow = PathAggregation(config).eval()
    masks = level_masks([16, 11], 16, 3)
    out = run(narrow, random_levels(2, 16, 3, 1), random_levels(2, 16, 3, 2), masks)
    assert [tuple(p.shape) for p in out] == [(2, 16 // 2**level, D) for level in range(3)]
    assert all((p[~m] == 0).all() for p, m in zip(out, masks, strict=True))
    assert set(narrow.narrow) == set(narrow.modalities)
    assert narrow.paths[narrow.modalities[0]].top_down[0].reduce.out_features == D // 2

    def count(model):
        return sum(p.numel() for p in model.parameters())

    full = make_model(modalities, True)
    assert count(narrow) < 0.5 * count(full)


def test_pan_dim_is_ignored_without_pan_and_checked_against_the_heads():
    assert ModelConfig(pan=False, pan_dim=64, embed_dim=128).pan_width == 128
    assert ModelConfig(pan_dim=None, embed_dim=128).pan_width == 128
    with pytest.raises(ConfigError, match="adapter_heads=8; must divide pan_dim=36"):
        ModelConfig(embed_dim=128, adapter_heads=8, pan_dim=36)


def test_rejects_levels_of_a_modality_the_config_does_not_use():
    model = make_model("v", True)
    masks = level_masks([16], 16, 3)
    with pytest.raises(ValueError, match="modalities=v"):
        model(random_levels(1, 16, 3, 1), random_levels(1, 16, 3, 2), masks)


def test_max_sigmoid_gate_matches_hand_computed_value():
    embedding = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    guide = torch.tensor([[2.0, 1.0], [0.0, 3.0], [50.0, 50.0]]).view(1, 3, 1, 2)
    guide_mask = torch.tensor([[True, True, False]])
    gate = max_sigmoid_gate(embedding, guide, guide_mask, torch.tensor([0.5]))
    # step 0: max(2, 0) = 2; step 1: max(1, 3) = 3; the padded guide (50, 50) is ignored
    expected = torch.sigmoid(torch.tensor([2.0, 3.0]) / math.sqrt(2) + 0.5).view(1, 2, 1)
    torch.testing.assert_close(gate, expected)


def test_max_sigmoid_gate_ignores_padded_guide_tokens():
    torch.manual_seed(0)
    embedding, guide = torch.randn(2, 6, 4, 8), torch.randn(2, 5, 4, 8)
    guide_mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    changed = guide.clone()
    changed[~guide_mask] = 1e4
    bias = torch.randn(4)
    torch.testing.assert_close(
        max_sigmoid_gate(embedding, changed, guide_mask, bias),
        max_sigmoid_gate(embedding, guide, guide_mask, bias),
    )


def test_adapter_ignores_padded_guide_tokens_and_zeroes_padded_steps():
    torch.manual_seed(0)
    adapter = ModalityGuidedAdapter(make_config())
    x, guide = torch.randn(2, 8, D), torch.randn(2, 8, D)
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    guide_mask = torch.tensor([[True] * 6 + [False] * 2, [True] * 5 + [False] * 3])
    changed = guide.clone()
    changed[~guide_mask] = torch.randn(int((~guide_mask).sum()), D) * 100
    out = adapter(x, mask, guide, guide_mask)
    torch.testing.assert_close(adapter(x, mask, changed, guide_mask), out)
    assert (out[~mask] == 0).all()
    assert not torch.allclose(out[mask], x[mask]), "the gate should change valid steps"


def test_guide_without_valid_tokens_gives_zero_gate_and_no_nan():
    torch.manual_seed(0)
    adapter = ModalityGuidedAdapter(make_config())
    x = torch.randn(1, 8, D, requires_grad=True)
    mask = torch.ones(1, 8, dtype=torch.bool)
    no_guide = torch.zeros(1, 4, dtype=torch.bool)
    out = adapter(x, mask, torch.randn(1, 4, D), no_guide)
    torch.testing.assert_close(out, x.detach())
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in adapter.parameters() if p.grad is not None)
    assert torch.isfinite(x.grad).all()


def test_adaptive_max_pool_matches_hand_computed_bins():
    # 5 valid steps, a padded tail holding the largest value; k = 2 → bins [0, 3) and [2, 5)
    x = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0]).view(1, 6, 1)
    mask = torch.tensor([[True] * 5 + [False]])
    pooled, bin_mask = adaptive_max_pool(x, mask, 2)
    assert pooled.flatten().tolist() == [4.0, 5.0]
    assert bin_mask.tolist() == [[True, True]]


def test_adaptive_max_pool_with_fewer_valid_steps_than_bins_repeats_steps():
    # n = 2 < k = 4: bins [0, 1), [0, 1), [1, 2), [1, 2); padded zeros must not beat -7
    x = torch.tensor([-2.0, -7.0, 0.0, 0.0]).view(1, 4, 1)
    mask = torch.tensor([[True, True, False, False]])
    pooled, bin_mask = adaptive_max_pool(x, mask, 4)
    assert pooled.flatten().tolist() == [-2.0, -2.0, -7.0, -7.0]
    assert bin_mask.all()


def test_adaptive_max_pool_equals_torch_pooling_of_the_valid_part():
    torch.manual_seed(0)
    x = torch.randn(4, 20, 3)
    lengths = [20, 13, 3, 1]
    mask = torch.arange(20)[None, :] < torch.tensor(lengths)[:, None]
    pooled, _ = adaptive_max_pool(x, mask, 4)
    for i, n in enumerate(lengths):
        reference = F.adaptive_max_pool1d(x[i, :n].T.unsqueeze(0), 4)[0].T
        torch.testing.assert_close(pooled[i], reference)


def test_adaptive_max_pool_of_a_video_without_valid_steps_is_zero_and_masked():
    pooled, bin_mask = adaptive_max_pool(torch.randn(1, 6, 2), torch.zeros(1, 6, dtype=bool), 3)
    assert (pooled == 0).all()
    assert not bin_mask.any()


def test_apm_ignores_the_other_modalitys_padded_steps():
    torch.manual_seed(0)
    config = make_config(n_levels=3)
    apm = AdaptivePooling(config)
    masks = level_masks([16, 7], 16, 3)
    levels, guide = random_levels(2, 16, 3, 1), random_levels(2, 16, 3, 2)
    changed = [g.masked_fill(~m[..., None], 1e3) for g, m in zip(guide, masks, strict=True)]
    out = apm(levels, masks, guide, masks)
    for a, b, mask in zip(apm(levels, masks, changed, masks), out, masks, strict=True):
        torch.testing.assert_close(a, b)
        assert (b[~mask] == 0).all()
