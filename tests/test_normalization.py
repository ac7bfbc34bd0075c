"""Input normalisation: exact training-split statistics, stored with the weights, applied
identically everywhere; files written before it existed still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from test_train import tiny_recipe_data, write_tiny_dataset

from delcli.model.config import ModelConfig
from delcli.model.del_model import DELModel
from delcli.model.normalization import ChannelStatistics, FeatureNormalization, channel_statistics
from delcli.recipe import load_recipe
from delcli.train.engine import fit
from delcli.weights import load_model, save_weights

from helpers import TINY_MODEL


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    offset=st.floats(-300, 300),
    scale=st.floats(0.01, 100),
    seed=st.integers(0, 2**16),
)
def test_streamed_statistics_equal_the_whole_concatenation_in_float64(lengths, offset, scale, seed):
    rng = np.random.default_rng(seed)
    arrays = [(offset + scale * rng.normal(size=(n, 5))).astype(np.float32) for n in lengths]
    mean, std, count = channel_statistics(torch.from_numpy(a) for a in arrays)
    whole = np.concatenate(arrays).astype(np.float64)
    assert count == whole.shape[0] and mean.dtype == torch.float64
    np.testing.assert_allclose(mean.numpy(), whole.mean(axis=0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(std.numpy(), whole.std(axis=0), rtol=1e-9, atol=1e-9)


def test_statistics_of_nothing_are_refused():
    with pytest.raises(ValueError, match="no steps"):
        ChannelStatistics().result()


def test_normalisation_standardises_valid_steps_and_keeps_padding_zero():
    norm = FeatureNormalization(3)
    assert not norm.fitted
    norm.set_statistics(torch.tensor([10.0, -5.0, 0.0]), torch.tensor([2.0, 0.5, 0.0]), 7)
    assert norm.fitted and float(norm.std[2]) > 0  # a constant channel is not divided by 0
    x = torch.tensor([[[12.0, -5.5, 0.0], [99.0, 99.0, 99.0]]])
    mask = torch.tensor([[True, False]])
    y = norm(x, mask)
    assert torch.allclose(y[0, 0], torch.tensor([1.0, -1.0, 0.0]))
    assert torch.equal(y[0, 1], torch.zeros(3))


def _model(**overrides) -> DELModel:
    torch.manual_seed(0)
    return DELModel(ModelConfig(**{**TINY_MODEL, **overrides})).eval()


def _inputs(seed=1, length=32, valid=(32, 20)):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(length)[None] < torch.tensor(valid)[:, None]
    visual = torch.randn(len(valid), length, 12, generator=g) * mask[..., None]
    audio = torch.randn(len(valid), length, 6, generator=g) * mask[..., None]
    return visual, audio, mask


def test_a_fitted_model_sees_shifted_and_scaled_features_exactly_as_the_originals():
    """What the model learns cannot depend on a feature's common offset or scale."""
    visual, audio, mask = _inputs()
    shift_v, scale_v = torch.linspace(50, 250, 12), torch.linspace(0.5, 30, 12)
    shift_a, scale_a = torch.linspace(-100, 120, 6), torch.linspace(2, 9, 6)
    plain, moved = _model(), _model()
    for model, v, a in (
        (plain, visual, audio),
        (moved, (visual * scale_v + shift_v) * mask[..., None], (audio * scale_a + shift_a)),
    ):
        for name, x in (("visual", v), ("audio", a)):
            mean, std, count = channel_statistics([x[0], x[1][mask[1]]])
            model.normalizations()[name].set_statistics(mean, std, count)
    expected = plain(visual, audio, mask)
    found = moved(
        (visual * scale_v + shift_v) * mask[..., None],
        (audio * scale_a + shift_a) * mask[..., None],
        mask,
    )
    for e, f, m in zip(expected.cls_logits, found.cls_logits, expected.masks, strict=True):
        assert (e - f)[m].abs().max() < 1e-4


def test_normalize_none_has_no_statistics_in_the_model():
    model = _model(normalize="none")
    assert model.normalizations() == {}
    assert not any(name.startswith("norm_") for name in model.state_dict())


def test_a_weights_file_from_before_normalisation_loads_and_predicts_unchanged(tmp_path):
    """Older files: no statistics tensors and no `normalize` key in the stored recipe."""
    recipe = load_recipe({"name": "old", "title": "old", "model": TINY_MODEL})
    model = _model()
    path = tmp_path / "old.safetensors"
    save_weights(path, model.state_dict(), recipe)
    tensors = {k: v for k, v in load_file(path).items() if not k.startswith("norm_")}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    stored = json.loads(metadata["recipe"])
    del stored["model"]["normalize"]
    metadata["recipe"] = json.dumps(stored)
    save_file(tensors, path, metadata=metadata)

    loaded, _ = load_model(str(path))
    assert all(not m.fitted for m in loaded.normalizations().values())
    visual, audio, mask = _inputs()
    for e, f in zip(
        model(visual, audio, mask).cls_logits, loaded(visual, audio, mask).cls_logits, strict=True
    ):
        assert torch.equal(e, f)


def test_training_stores_the_training_splits_exact_statistics_with_the_weights(tmp_path):
    features, annotations = write_tiny_dataset(tmp_path / "data")
    for path in features.glob("*_vggish.npy"):  # VGGish-like: 0–255 with channel offsets
        np.save(path, (np.load(path) * 40 + 128 + np.arange(6)).astype(np.float32))
    recipe = load_recipe(tiny_recipe_data(features, annotations, epochs=1, warmup_epochs=0))
    fit(recipe, tmp_path / "run", max_steps=1)
    database = json.loads(annotations.read_text())["database"]
    train = [v for v, entry in database.items() if entry["subset"] == "train"]
    for stream, suffix in (("visual", "rgb"), ("audio", "vggish")):
        whole = np.concatenate([np.load(features / f"{v}_{suffix}.npy") for v in train])
        whole = whole.astype(np.float64)
        for name in ("best", "last"):
            tensors = load_file(tmp_path / "run" / f"{name}.safetensors")
            np.testing.assert_allclose(
                tensors[f"norm_{stream}.mean"].numpy(), whole.mean(0), rtol=1e-6, atol=1e-6
            )
            np.testing.assert_allclose(
                tensors[f"norm_{stream}.std"].numpy(), whole.std(0), rtol=1e-5, atol=1e-6
            )
            assert int(tensors[f"norm_{stream}.count"]) == whole.shape[0]
    notes = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert any("input normalisation from 6 training videos" in n.get("message", "") for n in notes)


def test_modality_dropout_drops_one_whole_stream_of_a_share_of_videos_in_training_only():
    from delcli.model.del_model import modality_dropout

    torch.manual_seed(0)
    ones = torch.ones(20000, 3, 2)
    visual, audio = modality_dropout(ones, ones.clone(), 0.4)
    dropped_v = (visual == 0).all(dim=(1, 2))
    dropped_a = (audio == 0).all(dim=(1, 2))
    assert ((visual == 0).any(dim=(1, 2)) == dropped_v).all()  # whole streams, never parts
    assert abs(float(dropped_v.float().mean()) - 0.2) < 0.02
    assert abs(float(dropped_a.float().mean()) - 0.2) < 0.02
    assert not (dropped_v & dropped_a).any()  # never both

    model = _model(modality_dropout=0.5)
    visual, audio, mask = _inputs()
    first = model(visual, audio, mask).cls_logits  # eval mode: nothing dropped
    second = model(visual, audio, mask).cls_logits
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_run_started_by_an_older_del_resumes(tmp_path):
    """Its config.yaml lacks the settings added since and its checkpoint has no
    normalisation statistics: it resumes with those settings' defaults and identity."""
    import yaml
    from safetensors.torch import save_file as write
    from test_train import _Stop, _stop_after

    features, annotations = write_tiny_dataset(tmp_path / "data")
    recipe = load_recipe(tiny_recipe_data(features, annotations, epochs=2, warmup_epochs=0))
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit(recipe, run, on_event=_stop_after(1))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for key in ("normalize", "modality_dropout", "hard_negatives"):
        del saved["model"][key]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    for name in ("model", "ema"):
        path = run / "checkpoint" / f"{name}.safetensors"
        tensors = {k: v for k, v in load_file(path).items() if not k.startswith("norm_")}
        write(tensors, path)
    result = fit(recipe, run, resume=True)
    assert result.epochs == 2
    assert all(not m.fitted for m in load_model(str(run))[0].normalizations().values())
