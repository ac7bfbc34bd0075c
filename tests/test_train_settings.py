"""Training settings are checked before any work: one line naming the key, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from delcli.errors import ConfigError
from delcli.recipe import load_recipe


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.batch_size=0"], "train.batch_size=0; must be >= 1"),
        (["train.lr=nan"], "train.lr=nan; must be a finite number > 0"),
        (["train.lr=-1"], "train.lr=-1.0; must be a finite number > 0"),
        (["train.lr=0"], "train.lr=0.0; must be a finite number > 0"),
        (["train.min_lr=inf"], "train.min_lr=inf; must be a finite number >= 0"),
        (["train.weight_decay=-0.1"], "train.weight_decay=-0.1"),
        (["train.clip_grad=nan"], "train.clip_grad=nan"),
        (["train.ema_decay=1"], "train.ema_decay=1.0; must lie in [0, 1)"),
        (["train.epochs=-1"], "train.epochs=-1; must be >= 0"),
        (["train.num_workers=-2"], "train.num_workers=-2"),
        (["train.precision=fp16"], "train.precision='fp16'; allowed: auto, bf16, fp32"),
        (
            ["train.epochs=0", "train.warmup_epochs=0"],
            "train.epochs=0 and train.warmup_epochs=0: nothing to train",
        ),
    ],
)
def test_a_bad_training_setting_names_its_key(overrides, message):
    with pytest.raises(ConfigError) as excinfo:
        load_recipe("demo", overrides)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_levels=100", "model.n_levels=100; allowed: 1…8"),
        ("model.embed_dim=7", "model.n_heads=4; must divide embed_dim=7"),
        ("model.embed_dim=0", "model.embed_dim=0; must be >= 1"),
        ("model.max_seq_len=0", "model.max_seq_len=0; must be a positive multiple of 16"),
        ("model.max_seq_len=40", "not divisible by 16 (the stride of level 5); nearest valid: 32"),
        ("model.window_size=4", "model.window_size=4; must be 0 (global) or an odd number >= 3"),
        ("model.mlp_ratio=0", "model.mlp_ratio=0; must be >= 1"),
        ("model.head_kernel=2", "model.head_kernel=2; must be an odd number >= 1"),
        ("model.dropout=1.5", "model.dropout=1.5; must lie in [0, 1)"),
        ("model.drop_path=nan", "model.drop_path=nan; must lie in [0, 1)"),
        ("model.center_sample_radius=-1", "model.center_sample_radius=-1.0; must be >= 0"),
        ("model.pre_nms_topk=0", "model.pre_nms_topk=0; must be >= 1"),
        ("model.prior_prob=0", "model.prior_prob=0.0; must lie in (0, 1)"),
        ("model.loss.weights=[1,1,1,1,.inf]", "five finite non-negative numbers"),
        ("model.loss.focal_alpha=2", "model.loss.focal_alpha=2.0; must lie in [0, 1]"),
        ("model.loss.normalizer_init=0", "model.loss.normalizer_init=0.0; must be > 0"),
        ("data.fps=0", "data.fps=0.0; must be > 0 (or null)"),
        ("data.stride=nan", "data.stride=nan; must be > 0"),
        ("data.window=-1", "data.window=-1.0; must be > 0"),
        ("data.resize_length=0", "data.resize_length=0; must be >= 1 (or null)"),
        ("data.crop_ratio=[0.9, 1.5]", "data.crop_ratio=(0.9, 1.5); must be [low, high]"),
        ("data.trunc_thresh=2", "data.trunc_thresh=2.0; must lie in [0, 1]"),
        ("inference.batch_size=0", "inference.batch_size=0; must be >= 1"),
        ("inference.max_detections=0", "inference.max_detections=0; must be >= 1"),
    ],
)
def test_a_bad_model_data_or_inference_setting_names_its_key(override, message):
    with pytest.raises(ConfigError) as excinfo:
        load_recipe("demo", [override])
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_every_zoo_recipe_passes_the_checks():
    from delcli.recipe import zoo_names

    for name in zoo_names():
        load_recipe(name)


PROBE = """
import sys
from delcli.cli.app import main
code = main(sys.argv[1:])
print("torch imported" if "torch" in sys.modules else "torch not imported", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("setting", ["train.batch_size=0", "train.lrr=0.1"])
def test_del_train_refuses_bad_settings_before_importing_torch(tmp_path, setting):
    command = [sys.executable, "-c", PROBE, "train", "demo", "--set", setting]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    error, probe = done.stderr.splitlines()
    assert error.startswith("del: error: ") and setting.split("=")[0] in error
    assert probe == "torch not imported"
    assert not (tmp_path / "run").exists()


def test_a_recipe_nested_thousands_deep_is_a_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: not readable YAML"):
        load_recipe(str(path))
