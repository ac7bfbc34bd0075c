"""The composed DEL network: geometry, invariances, switches, and that it learns."""

from __future__ import annotations

import itertools

import pytest
import torch

from delcli.errors import ConfigError
from delcli.model.config import ModelConfig
from delcli.model.del_model import LOSS_TERMS, DELModel


def tiny_config(**overrides) -> ModelConfig:
    settings = dict(
        visual_dim=12,
        audio_dim=6,
        num_classes=4,
        max_seq_len=32,
        embed_dim=32,
        n_heads=4,
        adapter_heads=4,
        n_levels=3,
        window_size=5,
        head_dim=32,
        projection_dim=16,
        dropout=0.0,
        drop_path=0.0,
    )
    settings.update(overrides)
    return ModelConfig(**settings)


def inputs(config: ModelConfig, batch: int, length: int, valid: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(length)[None, :] < torch.tensor(valid)[:, None]
    visual = torch.randn(batch, length, config.visual_dim, generator=generator) * mask[..., None]
    audio = torch.randn(batch, length, config.audio_dim, generator=generator) * mask[..., None]
    return (
        visual if config.uses_visual else None,
        audio if config.uses_audio else None,
        mask,
    )


def events(batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Events of every scale, so that every pyramid level has positive points."""
    layouts = (
        [[1, 4], [6, 17], [3, 30], [20, 23], [19, 31], [9, 12]],
        [[0, 12], [14, 16], [8, 29], [25, 27], [15, 26], [2, 5]],
    )
    segments = [torch.tensor(layouts[i % 2], dtype=torch.float32) for i in range(batch)]
    labels = [torch.tensor([0, 1, 2, 3, 0, 1]) for _ in range(batch)]
    return segments, labels


@pytest.mark.parametrize(
    ("name", "batch", "length", "visual_dim", "audio_dim", "classes", "window"),
    [("unav100", 16, 224, 2048, 128, 100, 9), ("thumos14", 1, 2304, 2048, 128, 20, 19)],
)
def test_output_shapes_at_benchmark_geometry(
    name, batch, length, visual_dim, audio_dim, classes, window
):
    config = ModelConfig(
        visual_dim=visual_dim,
        audio_dim=audio_dim,
        num_classes=classes,
        max_seq_len=length,
        embed_dim=64,
        head_dim=64,
        window_size=window,
    )
    model = DELModel(config).eval()
    visual, audio, mask = inputs(config, batch, length, [length - 10] * batch)
    with torch.no_grad():
        out = model(visual, audio, mask)
    assert [x.shape for x in out.cls_logits] == [
        (batch, length // s, classes) for s in config.strides
    ]
    assert [x.shape for x in out.offsets] == [(batch, length // s, 2) for s in config.strides]
    assert out.tokens.cls_visual.shape == out.tokens.cls_audio.shape == (batch, 64)
    assert len(model.candidates(out)) == batch


def _valid_outputs(out, index: int) -> list[torch.Tensor]:
    return [
        x[index, m[index]]
        for x, m in itertools.chain(
            zip(out.cls_logits, out.masks, strict=True), zip(out.offsets, out.masks, strict=True)
        )
    ]


@pytest.mark.parametrize("valid", [27, 32])
def test_padding_does_not_change_valid_outputs(valid):
    config = tiny_config()
    model = DELModel(config).eval()
    visual, audio, mask = inputs(config, 1, 32, [valid])
    longer = [torch.cat([x, torch.zeros(1, 32, x.shape[-1])], dim=1) for x in (visual, audio)]
    long_mask = torch.cat([mask, torch.zeros(1, 32, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        short_out, long_out = model(visual, audio, mask), model(*longer, long_mask)
    for a, b in zip(_valid_outputs(short_out, 0), _valid_outputs(long_out, 0), strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(model.candidates(short_out), model.candidates(long_out), strict=True):
        torch.testing.assert_close(a.scores, b.scores, atol=2e-5, rtol=1e-4)


def test_a_batch_of_n_equals_n_batches_of_one():
    config = tiny_config()
    model = DELModel(config).eval()
    visual, audio, mask = inputs(config, 3, 32, [32, 20, 9])
    with torch.no_grad():
        batched = model(visual, audio, mask)
        for i in range(3):
            single = model(visual[i : i + 1], audio[i : i + 1], mask[i : i + 1])
            for a, b in zip(_valid_outputs(batched, i), _valid_outputs(single, 0), strict=True):
                torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


SWITCHES = list(itertools.product(("av", "a", "v"), (True, False), (True, False), (True, False)))


@pytest.mark.parametrize(("modalities", "aac", "scl", "pan"), SWITCHES)
def test_gradients_reach_every_parameter(modalities, aac, scl, pan):
    torch.manual_seed(0)
    config = tiny_config(modalities=modalities, aac=aac, scl=scl, pan=pan)
    model = DELModel(config).train()
    visual, audio, mask = inputs(config, 2, 32, [32, 28])
    terms = model.losses(model(visual, audio, mask), *events(2))
    assert set(LOSS_TERMS) | {"total"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    # A level's regression scale sits before the ReLU of Eq. (4): at initialisation every
    # positive point of a level can be on the ReLU's flat side, so its gradient may be 0.
    starved = [
        n
        for n, p in model.named_parameters()
        if not p.grad.any() and not n.startswith("reg_head.scales.")
    ]
    assert not starved


def test_switched_off_modules_are_absent_and_their_losses_zero():
    model = DELModel(tiny_config(modalities="v", scl=False, pan=False))
    assert model.embed_audio is None and model.pyramid_audio is None and model.contrastive is None
    visual, _, mask = inputs(model.config, 2, 32, [32, 30])
    terms = model.losses(model(visual, None, mask), *events(2))
    assert terms["inter"] == terms["intra"] == terms["score"] == 0


def test_lengths_the_pyramid_cannot_halve_are_refused_with_the_nearest_valid_ones():
    model = DELModel(tiny_config())
    visual, audio, mask = inputs(model.config, 1, 30, [30])
    with pytest.raises(ConfigError, match=r"not a multiple of 4.*pad to 32 \(or crop to 28\)"):
        model(visual, audio, mask)
    with pytest.raises(ConfigError, match=r"max_seq_len=230 .* nearest valid: 224 or 256"):
        ModelConfig(max_seq_len=230)


def test_wrong_feature_width_is_a_clear_error():
    model = DELModel(tiny_config())
    visual, audio, mask = inputs(model.config, 1, 32, [32])
    with pytest.raises(ConfigError, match=r"visual features have 11 channels; .* visual_dim=12"):
        model(visual[..., :11], audio, mask)


def test_a_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    config = tiny_config(n_levels=3, max_seq_len=32)
    model = DELModel(config).train()
    segments, labels = events(2)
    visual, audio, mask = inputs(config, 2, 32, [32, 32], seed=1)
    for segs, labs, v, a in zip(segments, labels, visual, audio, strict=True):
        for (start, end), label in zip(segs.long().tolist(), labs.tolist(), strict=True):
            v[start : end + 1, label] += 3.0  # class evidence inside each event
            a[start : end + 1, label] += 3.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(120):
        terms = model.losses(model(visual, audio, mask), segments, labels)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        history.append(terms["total"].item())
    assert history[-1] < history[0] / 10
