"""Weights on disk: safetensors + recipe, atomic writes, clear errors, what a spec means."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from delcli.errors import WeightsError
from delcli.model.del_model import DELModel
from delcli.recipe import load_recipe, recipe_to_dict
from delcli.weights import load_model, load_weights, resolve_weights, save_weights

from helpers import TINY_MODEL


@pytest.fixture
def recipe():
    return load_recipe({"name": "tiny", "title": "a tiny model", "model": TINY_MODEL})


@pytest.fixture
def model(recipe):
    torch.manual_seed(0)
    return DELModel(recipe.model).eval()


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


def test_saved_weights_load_back_with_their_recipe_and_metadata(tmp_path, recipe, model):
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), recipe, {"epoch": "7"})
    tensors, loaded, metadata = load_weights(path)
    expected = model.state_dict()
    assert tensors.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensors[name], tensor), name
    assert recipe_to_dict(loaded) == recipe_to_dict(recipe)
    assert metadata == {"format": "del-weights-1", "epoch": "7"}


def test_weights_file_is_readable_by_all_and_no_temporary_file_is_left(tmp_path, recipe, model):
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), recipe)
    save_weights(path, model.state_dict(), recipe)  # overwriting works too
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_an_interrupted_save_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, recipe, model, monkeypatch
):
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), recipe, {"epoch": "1"})
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_weights(path, model.state_dict(), recipe, {"epoch": "2"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_tensors_that_share_storage_are_saved(tmp_path, recipe):
    base = torch.arange(6.0)
    save_weights(tmp_path / "w.safetensors", {"a": base, "b": base[:3]}, recipe)
    tensors, _, _ = load_weights(tmp_path / "w.safetensors")
    assert torch.equal(tensors["b"], torch.arange(3.0))


def test_reserved_metadata_keys_are_refused(tmp_path, recipe, model):
    with pytest.raises(ValueError, match="reserved"):
        save_weights(tmp_path / "w.safetensors", model.state_dict(), recipe, {"recipe": "x"})


@pytest.mark.parametrize(
    "content",
    [b"", b"definitely not safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"],
    ids=["empty", "garbage", "truncated"],
)
def test_a_corrupt_file_is_a_one_line_weights_error(tmp_path, content):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as excinfo:
        load_weights(path)
    assert "not a safetensors file, or corrupt" in one_line_error(excinfo)


def test_a_truncated_weights_file_is_a_one_line_weights_error(tmp_path, recipe, model):
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), recipe)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError) as excinfo:
        load_weights(path)
    assert "corrupt" in one_line_error(excinfo)


def test_safetensors_without_del_metadata_or_of_another_format_are_refused(tmp_path):
    from safetensors.torch import save_file

    plain, other = tmp_path / "plain.safetensors", tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(2)}, plain)
    save_file({"a": torch.zeros(2)}, other, metadata={"format": "pt"})
    with pytest.raises(WeightsError) as excinfo:
        load_weights(plain)
    assert "no 'format'" in one_line_error(excinfo)
    with pytest.raises(WeightsError) as excinfo:
        load_weights(other)
    assert "format 'pt' is not readable (expected del-weights-1)" in one_line_error(excinfo)


def test_a_stored_recipe_that_does_not_load_is_a_weights_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    metadata = {"format": "del-weights-1", "recipe": '{"name": "x", "modle": {}}'}
    save_file({"a": torch.zeros(2)}, path, metadata=metadata)
    with pytest.raises(WeightsError) as excinfo:
        load_weights(path)
    assert "unknown key 'modle'" in one_line_error(excinfo)


def test_load_model_rebuilds_the_network_that_was_saved(tmp_path, recipe, model):
    save_weights(tmp_path / "w.safetensors", model.state_dict(), recipe)
    loaded, loaded_recipe = load_model(str(tmp_path / "w.safetensors"))
    assert not loaded.training and loaded_recipe.name == "tiny"
    mask = torch.ones(1, 32, dtype=torch.bool)
    visual, audio = torch.randn(1, 32, 12), torch.randn(1, 32, 6)
    with torch.no_grad():
        for a, b in zip(
            model(visual, audio, mask).cls_logits,
            loaded(visual, audio, mask).cls_logits,
            strict=True,
        ):
            assert torch.equal(a, b)


def test_weights_that_do_not_fit_the_recipe_name_the_first_keys(tmp_path, recipe, model):
    state = model.state_dict()
    first = next(name for name in state if not name.startswith(("norm_visual", "norm_audio")))
    missing = dict(state)
    del missing[first]
    extra = {**state, "surplus.weight": torch.zeros(1)}
    misshapen = {**state, first: torch.zeros(1, 2, 3)}
    for name, tensors, expected in (
        ("missing", missing, f"missing {first}"),
        ("extra", extra, "unexpected surplus.weight"),
        ("misshapen", misshapen, f"tensor '{first}' has shape (1, 2, 3)"),
    ):
        path = tmp_path / f"{name}.safetensors"
        save_weights(path, tensors, recipe)
        with pytest.raises(WeightsError) as excinfo:
            load_model(str(path))
        assert expected in one_line_error(excinfo)


def test_a_run_directory_means_its_best_weights_else_its_last(tmp_path, recipe, model):
    run = tmp_path / "run"
    run.mkdir()
    save_weights(run / "last.safetensors", model.state_dict(), recipe)
    assert resolve_weights(str(run)) == run / "last.safetensors"
    save_weights(run / "best.safetensors", model.state_dict(), recipe)
    assert resolve_weights(str(run)) == run / "best.safetensors"


def test_a_run_directory_without_weights_lists_what_it_holds(tmp_path):
    (tmp_path / "config.yaml").write_text("name: x\n")
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights(str(tmp_path))
    message = one_line_error(excinfo)
    assert "no best.safetensors or last.safetensors" in message and "config.yaml" in message


def test_a_file_means_itself(tmp_path):
    path = tmp_path / "anything.safetensors"
    path.write_bytes(b"x")
    assert resolve_weights(str(path)) == path


def test_a_zoo_name_says_its_weights_are_not_published_and_how_to_train_them():
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("thumos14")
    assert one_line_error(excinfo) == (
        "weights for 'thumos14' are not published yet; "
        "train them with: del train thumos14 --features DIR"
    )


def test_a_typo_suggests_the_closest_zoo_name():
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("thumos")
    message = one_line_error(excinfo)
    assert "did you mean 'thumos14'?" in message and "unav100" in message


def test_a_missing_path_says_so(tmp_path):
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights(str(tmp_path / "nope.safetensors"))
    assert "no such file or directory" in one_line_error(excinfo)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_weights_with_nan_or_inf_are_refused_naming_the_tensor(tmp_path, recipe, model, value):
    state = model.state_dict()
    name = next(n for n, t in state.items() if t.is_floating_point() and t.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    path = tmp_path / "w.safetensors"
    save_weights(path, state, recipe)
    with pytest.raises(WeightsError) as excinfo:
        load_weights(path)
    assert f"tensor '{name}' holds 1 NaN or infinite value(s)" in one_line_error(excinfo)


def test_nan_weights_are_exit_2_on_the_command_line(tmp_path, recipe, model, capsys):
    from delcli.cli.app import main

    state = {
        name: torch.full_like(t, float("nan")) if t.is_floating_point() else t
        for name, t in model.state_dict().items()
    }
    path = tmp_path / "w.safetensors"
    save_weights(path, state, recipe)
    assert main(["export", "-m", str(path), "-o", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"del: error: {path}: tensor '") and err.count("\n") == 1
