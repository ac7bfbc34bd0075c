"""Encoder of DEL: modality embedding, AAC (Eq. 5–6) and the per-modality temporal pyramid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from delcli.model import aac
from delcli.model.aac import AdaptiveAttention, adaptive_attention_mask
from delcli.model.blocks import DropPath, sinusoidal_position_encoding
from delcli.model.config import ModelConfig
from delcli.model.embedding import ModalityEmbedding
from delcli.model.pyramid import (
    TemporalPyramid,
    level_window,
    local_attention,
    masked_max_pool,
)

D = 32


def small_config(**overrides) -> ModelConfig:
    settings = dict(
        embed_dim=D,
        n_heads=4,
        adapter_heads=4,
        visual_dim=24,
        audio_dim=12,
        num_classes=5,
        max_seq_len=64,
        n_levels=4,
        window_size=5,
        drop_path=0.0,
    )
    settings.update(overrides)
    return ModelConfig(**settings)


def full_layer_scale(module: torch.nn.Module) -> torch.nn.Module:
    """LayerScale to 1 so every residual branch visibly contributes, in eval mode."""
    for sub in module.modules():
        if isinstance(sub, DropPath):
            sub.scale.data.fill_(1.0)
    return module.eval()


def lengths_mask(lengths: list[int], total: int) -> torch.Tensor:
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def padded(x: torch.Tensor, total: int) -> torch.Tensor:
    """`x (B, T, C)` right-padded with zeros to `total` steps."""
    return F.pad(x, (0, 0, 0, total - x.shape[1]))


def assert_padding_zero(x: torch.Tensor, mask: torch.Tensor) -> None:
    assert torch.equal(x[~mask], torch.zeros_like(x[~mask]))


# --- embedding ---------------------------------------------------------------------------


@pytest.mark.parametrize("position_encoding", [False, True])
def test_embedding_maps_features_to_embed_dim_with_zero_padding(position_encoding):
    embed = ModalityEmbedding(24, small_config(position_encoding=position_encoding))
    mask = lengths_mask([40, 17], 48)
    y = embed(torch.randn(2, 48, 24), mask)
    assert y.shape == (2, 48, D)
    assert_padding_zero(y, mask)


@pytest.mark.parametrize("position_encoding", [False, True])
def test_embedding_padding_does_not_change_valid_outputs(position_encoding):
    embed = ModalityEmbedding(24, small_config(position_encoding=position_encoding)).eval()
    x = torch.randn(1, 20, 24)
    reference = embed(x, lengths_mask([20], 20))
    for total in (32, 40):
        y = embed(padded(x, total), lengths_mask([20], total))
        torch.testing.assert_close(y[:, :20], reference, atol=1e-5, rtol=0)


def test_position_table_is_the_sinusoid_up_to_max_seq_len_and_interpolated_beyond():
    embed = ModalityEmbedding(24, small_config(position_encoding=True))
    table = sinusoidal_position_encoding(64, D)
    torch.testing.assert_close(embed.position_table(40), table[:40])
    stretched = embed.position_table(128)
    assert stretched.shape == (128, D)
    torch.testing.assert_close(stretched[0], table[0])
    torch.testing.assert_close(stretched[-1], table[-1])
    y = embed(torch.randn(1, 128, 24), lengths_mask([100], 128))
    assert y.shape == (1, 128, D)


# --- AAC: the mask of Eq. (6) ------------------------------------------------------------


def test_adaptive_attention_mask_matches_hand_checked_case():
    mask = torch.tensor([[True, False]])
    # tokens: CLS_V, V1, V2 (padded), CLS_A, A1, A2 (padded)
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],  # CLS_V: itself and valid visual tokens only
            [1, 1, 0, 0, 1, 0],  # V1: visual tokens, its CLS, and A1 (same step)
            [0, 0, 0, 0, 0, 0],  # padded V2 attends to nothing
            [0, 0, 0, 1, 1, 0],  # CLS_A: itself and valid audio tokens only
            [0, 1, 0, 1, 1, 0],  # A1: audio tokens, its CLS, and V1
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(adaptive_attention_mask(mask, "av", cross=True)[0], expected)
    without_cross = expected.clone()
    without_cross[1, 4] = without_cross[4, 1] = False
    assert torch.equal(adaptive_attention_mask(mask, "av", cross=False)[0], without_cross)
    single = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    for modality in ("a", "v"):
        assert torch.equal(adaptive_attention_mask(mask, modality, cross=True)[0], single)


def test_adaptive_attention_mask_is_symmetric_and_sized_per_modalities():
    mask = lengths_mask([7, 3], 8)
    allowed = adaptive_attention_mask(mask, "av", cross=True)
    assert allowed.shape == (2, 18, 18)
    assert torch.equal(allowed, allowed.transpose(1, 2))
    assert adaptive_attention_mask(mask, "v", cross=True).shape == (2, 9, 9)
    with pytest.raises(ValueError, match="modalities"):
        adaptive_attention_mask(mask, "x", cross=True)


# --- AAC module --------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["factored", "dense"])
def attention_form(request, monkeypatch):
    monkeypatch.setattr(aac, "FACTORED_ATTENTION", request.param)
    return request.param


def streams(batch: int, length: int, modalities: str = "av"):
    visual = torch.randn(batch, length, D) if "v" in modalities else None
    audio = torch.randn(batch, length, D) if "a" in modalities else None
    return visual, audio


@pytest.mark.parametrize("modalities", ["av", "v", "a"])
@pytest.mark.parametrize("n_aac", [0, 1, 2])
def test_aac_output_shapes(attention_form, modalities, n_aac):
    model = AdaptiveAttention(small_config(modalities=modalities, n_aac=n_aac))
    mask = lengths_mask([16, 9], 16)
    out = model(*streams(2, 16, modalities), mask)
    for name, used in (("visual", "v" in modalities), ("audio", "a" in modalities)):
        tokens, cls = getattr(out, name), getattr(out, f"cls_{name}")
        if used:
            assert tokens.shape == (2, 16, D) and cls.shape == (2, D)
            assert_padding_zero(tokens, mask)
        else:
            assert tokens is None and cls is None


def test_aac_without_layers_returns_inputs_and_learnt_cls_tokens():
    model = AdaptiveAttention(small_config(n_aac=0))
    visual, audio = streams(2, 8)
    mask = lengths_mask([8, 5], 8)
    out = model(visual, audio, mask)
    torch.testing.assert_close(out.visual, visual * mask[..., None])
    torch.testing.assert_close(out.cls_audio, model.cls_audio.expand(2, D))


def test_aac_refuses_a_missing_stream_the_config_uses():
    model = AdaptiveAttention(small_config(modalities="av"))
    with pytest.raises(ValueError, match="audio"):
        model(torch.randn(1, 8, D), None, lengths_mask([8], 8))


@pytest.mark.parametrize("modalities", ["av", "v"])
@pytest.mark.parametrize("cross", [True, False], ids=["aac", "no-aac"])
def test_aac_padding_does_not_change_valid_outputs(attention_form, modalities, cross):
    model = AdaptiveAttention(small_config(modalities=modalities, aac=cross)).eval()
    visual, audio = streams(1, 16, modalities)
    reference = model(visual, audio, lengths_mask([16], 16))
    for total in (24, 32):
        grow = [padded(x, total) if x is not None else None for x in (visual, audio)]
        mask = lengths_mask([16], total)
        out = model(*grow, mask)
        for ref, got in zip(reference, out, strict=True):
            if ref is None:
                continue
            torch.testing.assert_close(
                got[:, :16] if got.dim() == 3 else got, ref, atol=1e-5, rtol=0
            )
        for tokens in (out.visual, out.audio):
            if tokens is not None:
                assert_padding_zero(tokens, mask)


def test_one_aac_layer_lets_audio_reach_visual_only_at_the_same_step(attention_form):
    model = AdaptiveAttention(small_config(n_aac=1)).eval()
    visual, audio = streams(1, 12)
    mask = lengths_mask([10], 12)
    changed = audio.clone()
    changed[0, 4] = torch.randn(D)  # a constant shift would vanish in LayerNorm
    before, after = model(visual, audio, mask), model(visual, changed, mask)
    moved = (after.visual - before.visual).abs().amax(dim=-1)[0]
    assert moved[4] > 1e-3
    assert torch.all(moved[torch.arange(12) != 4] <= 1e-6)
    torch.testing.assert_close(after.cls_visual, before.cls_visual, atol=0, rtol=0)


def test_without_aac_no_visual_token_depends_on_audio(attention_form):
    model = AdaptiveAttention(small_config(aac=False, n_aac=2)).eval()
    visual, audio = streams(1, 12)
    mask = lengths_mask([12], 12)
    before, after = model(visual, audio, mask), model(visual, torch.randn_like(audio), mask)
    torch.testing.assert_close(after.visual, before.visual, atol=0, rtol=0)
    torch.testing.assert_close(after.cls_visual, before.cls_visual, atol=0, rtol=0)
    assert not torch.allclose(after.audio, before.audio)


def test_two_aac_layers_spread_audio_to_other_visual_steps():
    model = AdaptiveAttention(small_config(n_aac=2)).eval()
    visual, audio = streams(1, 12)
    mask = lengths_mask([12], 12)
    changed = audio.clone()
    changed[0, 4] = torch.randn(D)  # a constant shift would vanish in LayerNorm
    before, after = model(visual, audio, mask), model(visual, changed, mask)
    assert (after.visual[0, 0] - before.visual[0, 0]).abs().max() > 1e-6
    assert (after.cls_visual - before.cls_visual).abs().max() > 1e-6


@pytest.mark.parametrize("modalities", ["av", "a"])
@pytest.mark.parametrize("cross", [True, False], ids=["aac", "no-aac"])
def test_factored_attention_equals_dense_mask(monkeypatch, modalities, cross):
    model = AdaptiveAttention(small_config(modalities=modalities, aac=cross)).eval()
    inputs = streams(3, 16, modalities)
    mask = lengths_mask([16, 11, 4], 16)
    monkeypatch.setattr(aac, "FACTORED_ATTENTION", False)
    dense = model(*inputs, mask)
    monkeypatch.setattr(aac, "FACTORED_ATTENTION", True)
    factored = model(*inputs, mask)
    for want, got in zip(dense, factored, strict=True):
        if want is not None:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_aac_batch_equals_single_videos(attention_form):
    model = AdaptiveAttention(small_config()).eval()
    lengths = [16, 9, 3]
    visual, audio = streams(3, 16)
    mask = lengths_mask(lengths, 16)
    batch = model(visual * mask[..., None], audio * mask[..., None], mask)
    for i, n in enumerate(lengths):
        alone = model(visual[i : i + 1, :n], audio[i : i + 1, :n], lengths_mask([n], n))
        torch.testing.assert_close(batch.visual[i : i + 1, :n], alone.visual, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.cls_audio[i : i + 1], alone.cls_audio, atol=1e-5, rtol=0)


def test_every_aac_parameter_gets_a_gradient(attention_form):
    model = AdaptiveAttention(small_config(n_aac=1))
    out = model(*streams(2, 8), lengths_mask([8, 6], 8))
    sum(t.square().sum() for t in out).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# --- pyramid -----------------------------------------------------------------------------


def banded_reference(q, k, v, mask, window):
    steps = torch.arange(q.shape[2])
    band = (steps[:, None] - steps[None, :]).abs() <= window // 2
    allowed = band & mask[:, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None]), allowed.any(-1)


@pytest.mark.parametrize(("length", "window"), [(16, 5), (17, 3), (30, 9), (4, 9), (1, 3)])
def test_local_attention_equals_dense_banded_reference(length, window):
    q, k, v = torch.randn(3, 2, 4, length, 8).unbind(0)
    mask = lengths_mask([length, max(1, length * 2 // 3)], length)
    mask[0, length // 2] = False  # a hole inside the valid range
    reference, reachable = banded_reference(q, k, v, mask, window)
    got = local_attention(q, k, v, mask, window)
    assert got.shape == q.shape
    rows = reachable[:, None, :].expand(-1, 4, -1)
    torch.testing.assert_close(got[rows], reference[rows], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_levels", [1, 2, 3, 4, 5, 6])
def test_pyramid_levels_halve_length_with_downsampled_masks(n_levels):
    pyramid = TemporalPyramid(small_config(n_levels=n_levels))
    mask = lengths_mask([64, 37], 64)
    levels = pyramid(torch.randn(2, 64, D), mask)
    assert len(levels) == n_levels
    for level, (x, level_mask) in enumerate(levels):
        stride = 2**level
        assert x.shape == (2, 64 // stride, D)
        assert torch.equal(level_mask, mask[:, ::stride])
        assert_padding_zero(x, level_mask)


def test_pyramid_without_stem_blocks_still_builds_every_level():
    levels = TemporalPyramid(small_config(n_stem=0))(torch.randn(1, 32, D), lengths_mask([30], 32))
    assert [x.shape[1] for x, _ in levels] == [32, 16, 8, 4]


def test_levels_shorter_than_the_window_attend_globally():
    config = small_config(n_levels=6, max_seq_len=64, window_size=5)
    assert [level_window(config, level) for level in range(6)] == [5, 5, 5, 5, 0, 0]
    pyramid = TemporalPyramid(config)
    assert [block.attn.window for block in pyramid.branch] == [5, 5, 5, 0, 0]
    assert all(block.attn.window == 5 for block in pyramid.stem)
    global_everywhere = small_config(window_size=0)
    assert all(level_window(global_everywhere, level) == 0 for level in range(4))


def test_masked_max_pool_treats_padding_as_minus_infinity():
    x = -torch.arange(1.0, 7.0).view(1, 6, 1)  # all negative, so a padded zero would win
    mask = lengths_mask([5], 6)
    pooled, out_mask = masked_max_pool(x * mask[..., None], mask)
    assert torch.equal(out_mask, mask[:, ::2])
    assert pooled.flatten().tolist() == [-1.0, -2.0, -4.0]
    pooled, out_mask = masked_max_pool(x[:, :4], lengths_mask([2], 4))
    assert pooled.flatten().tolist() == [-1.0, 0.0]  # step 2 is padded in the output
    assert out_mask.tolist() == [[True, False]]


@pytest.mark.parametrize("window", [5, 0], ids=["local", "global"])
@pytest.mark.parametrize("valid", [24, 21])
def test_pyramid_padding_does_not_change_valid_outputs(window, valid):
    pyramid = full_layer_scale(TemporalPyramid(small_config(window_size=window)))
    x = torch.randn(1, valid, D)
    short = 24  # a multiple of 2^(n_levels − 1); no padding at all when valid == 24
    reference = pyramid(padded(x, short), lengths_mask([valid], short))
    for total in (48, 64):
        levels = pyramid(padded(x, total), lengths_mask([valid], total))
        for (want, want_mask), (got, got_mask) in zip(reference, levels, strict=True):
            n = want.shape[1]
            assert torch.equal(got_mask[:, :n], want_mask)
            assert not got_mask[:, n:].any()
            torch.testing.assert_close(got[:, :n], want, atol=1e-5, rtol=0)
            assert_padding_zero(got, got_mask)


def test_pyramid_batch_equals_single_videos():
    pyramid = full_layer_scale(TemporalPyramid(small_config()))
    lengths = [32, 19, 8]
    mask = lengths_mask(lengths, 32)
    x = torch.randn(3, 32, D) * mask[..., None]
    batch = pyramid(x, mask)
    for i, n in enumerate(lengths):
        total = -(-n // 8) * 8
        alone = pyramid(x[i : i + 1, :total], lengths_mask([n], total))
        for (want, _), (got, _) in zip(alone, batch, strict=True):
            torch.testing.assert_close(got[i : i + 1, : want.shape[1]], want, atol=1e-5, rtol=0)


# --- the encoder as DEL composes it ------------------------------------------------------


def test_unav_like_encoder_in_miniature():
    """I3D-like visual + VGGish-like audio → embedding → AAC → one pyramid per modality."""
    config = small_config(visual_dim=48, audio_dim=16, n_levels=6, window_size=7, n_aac=2)
    mask = lengths_mask([64, 50], 64)
    embed_v, embed_a = ModalityEmbedding(48, config), ModalityEmbedding(16, config)
    tokens = AdaptiveAttention(config)(
        embed_v(torch.randn(2, 64, 48), mask), embed_a(torch.randn(2, 64, 16), mask), mask
    )
    assert tokens.cls_visual.shape == tokens.cls_audio.shape == (2, D)
    for stream in (tokens.visual, tokens.audio):
        levels = TemporalPyramid(config)(stream, mask)
        assert [x.shape[1] for x, _ in levels] == [64, 32, 16, 8, 4, 2]
        assert all(torch.isfinite(x).all() for x, _ in levels)


def test_encoder_runs_under_bfloat16_autocast(attention_form):
    config = small_config()
    mask = lengths_mask([32, 20], 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = AdaptiveAttention(config)(*streams(2, 32), mask)
        levels = TemporalPyramid(config)(tokens.visual, mask)
    for x, level_mask in levels:
        assert torch.isfinite(x).all()
        assert_padding_zero(x, level_mask)
