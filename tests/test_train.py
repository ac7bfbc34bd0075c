"""Training: decay groups, schedule, EMA, checkpoints, exact resume, DDP, `del train`."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from delcli.cli import train_cmd
from delcli.cli.app import app, main
from delcli.model.config import ModelConfig
from delcli.model.del_model import DELModel
from delcli.recipe import TrainConfig, load_recipe
from delcli.train.checkpoint import load_checkpoint, save_checkpoint
from delcli.train.distributed import Context, eval_indices, train_batches
from delcli.train.ema import ModelEMA
from delcli.train.engine import fit
from delcli.train.optim import decay_groups, make_optimizer, make_schedule
from delcli.train.seeding import epoch_permutation
from delcli.weights import load_model, load_weights

CLASSES = ["bark", "siren", "wave", "clap"]
TINY_MODEL = dict(
    visual_dim=12,
    audio_dim=6,
    num_classes=4,
    max_seq_len=32,
    embed_dim=16,
    n_heads=4,
    adapter_heads=4,
    n_levels=3,
    window_size=5,
    head_dim=16,
    projection_dim=8,
    n_aac=1,
    n_stem=1,
    dropout=0.0,
    drop_path=0.1,
)


def write_tiny_dataset(root: Path, splits=(("train", 6), ("validation", 3)), seed=0):
    """UnAV-layout features (`{vid}_rgb.npy` 12-d, `{vid}_vggish.npy` 6-d, 25 fps, stride 8)
    of 24–39 steps with 1–3 events each; events leave a trace in both streams."""
    rng = np.random.default_rng(seed)
    features = root / "features"
    features.mkdir(parents=True, exist_ok=True)
    database = {}
    for split, count in splits:
        for i in range(count):
            video = f"{split[:2]}{i:02d}"
            steps = int(rng.integers(24, 40))
            visual = rng.normal(size=(steps, 12)).astype(np.float32) * 0.1
            audio = rng.normal(size=(steps, 6)).astype(np.float32) * 0.1
            events = []
            for _ in range(int(rng.integers(1, 4))):
                label = int(rng.integers(0, 4))
                start = int(rng.integers(0, steps - 4))
                end = int(min(steps, start + rng.integers(2, 12)))
                visual[start:end, label] += 1.0
                audio[start:end, label] += 1.0
                segment = [round(0.48 + start * 0.32, 2), round(0.48 + end * 0.32, 2)]
                events.append({"segment": segment, "label": CLASSES[label]})
            np.save(features / f"{video}_rgb.npy", visual)
            np.save(features / f"{video}_vggish.npy", audio)
            database[video] = {
                "subset": split,
                "duration": round(steps * 0.32 + 0.16, 2),
                "fps": 25.0,
                "annotations": events,
            }
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps({"version": "tiny", "database": database}))
    return features, annotations


def tiny_recipe_data(features: Path, annotations: Path, **train) -> dict:
    return {
        "name": "tiny",
        "data": {
            "annotations": str(annotations),
            "features": str(features),
            "visual": {"files": ["{video}_rgb.npy"]},
            "audio": {"files": ["{video}_vggish.npy"]},
            "stride": 8,
            "window": 24,
            "classes": CLASSES,
        },
        "model": dict(TINY_MODEL),
        "train": {
            "epochs": 2,
            "warmup_epochs": 1,
            "batch_size": 2,
            "log_every": 2,
            "seed": 7,
            **train,
        },
        "inference": {"batch_size": 4},
    }


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def tiny_model() -> DELModel:
    torch.manual_seed(0)
    return DELModel(ModelConfig(**TINY_MODEL))


# -- optimizer and schedule ----------------------------------------------------------------


def test_decay_groups_partition_every_parameter_of_the_del_model():
    model = tiny_model()
    decay, no_decay = decay_groups(model)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(decay + no_decay) == sorted(names)
    assert not set(decay) & set(no_decay)
    parameters = dict(model.named_parameters())
    assert all(parameters[n].dim() >= 2 for n in decay)
    assert all(n.endswith(".weight") for n in decay)
    assert "embed_visual.convs.0.conv.conv.weight" in decay  # MaskedConv1d's inner conv
    for never in (
        "aac.cls_visual",
        "contrastive.log_temperature",
        "reg_head.scales.0.scale",
        "aac.blocks.0.drop_attn.scale",
        "cls_head.trunk.0.norm.weight",
        "cls_head.logits.conv.bias",
    ):
        assert never in no_decay

    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.05))
    decayed, plain = optimizer.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.05, 0.0)
    assert len(decayed["params"]) + len(plain["params"]) == len(names)


def test_the_fused_adamw_takes_the_steps_of_the_per_tensor_one_and_its_state():
    """The CPU optimizer is torch's fused AdamW: the default per-tensor AdamW's updates
    to float rounding, and an optimizer state saved by the per-tensor one (a checkpoint
    from before the switch) resumes in it."""
    config = TrainConfig(weight_decay=0.05, lr=1e-3)
    fused_model, plain_model = tiny_model(), tiny_model()
    fused = make_optimizer(fused_model, config)
    assert fused.defaults["fused"]
    decay, no_decay = (
        [dict(plain_model.named_parameters())[n] for n in names]
        for names in decay_groups(plain_model)
    )
    plain = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3,
    )

    def take_steps(model, optimizer, steps):
        for step in range(steps):
            generator = torch.Generator().manual_seed(step)
            for parameter in model.parameters():
                parameter.grad = torch.randn(parameter.shape, generator=generator)
            optimizer.step()

    take_steps(fused_model, fused, 5)
    take_steps(plain_model, plain, 5)
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)
    resumed = make_optimizer(plain_model, config)
    resumed.load_state_dict(plain.state_dict())
    take_steps(plain_model, resumed, 1)
    take_steps(fused_model, fused, 1)
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)


def test_schedule_warms_up_linearly_then_anneals_to_min_lr():
    config = TrainConfig(epochs=3, warmup_epochs=2, lr=1e-3, min_lr=1e-5)
    steps_per_epoch = 5
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=config.lr)
    schedule = make_schedule(optimizer, config, steps_per_epoch)
    lrs = []
    for _ in range((config.epochs + config.warmup_epochs) * steps_per_epoch + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    warmup = config.warmup_epochs * steps_per_epoch
    assert lrs[0] == 0.0
    assert lrs[: warmup + 1] == pytest.approx([1e-3 * k / warmup for k in range(warmup + 1)])
    assert max(lrs) == pytest.approx(1e-3) and int(np.argmax(lrs)) == warmup
    cosine = lrs[warmup:]
    assert all(a > b for a, b in itertools.pairwise(cosine))
    assert len(lrs) - 1 == 25  # total steps = (epochs + warmup) × steps per epoch
    assert lrs[25] == pytest.approx(1e-5)
    assert lrs[warmup + 15 // 2] == pytest.approx(
        1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 7 / 15))
    )


# -- EMA ----------------------------------------------------------------------------------


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def test_ema_update_is_decay_times_average_plus_rest_times_model():
    model = _Toy()
    ema = ModelEMA(model, decay=0.9)
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        model.linear.weight.add_(1.0)
        model.running.fill_(5.0)
        model.count.fill_(3)
    ema.update(model)
    state = ema.state_dict()
    expected = 0.9 * start["linear.weight"] + 0.1 * model.linear.weight
    assert torch.allclose(state["linear.weight"], expected)
    assert torch.allclose(state["running"], torch.full((2,), 0.5))
    assert state["count"].item() == 3  # integers are copied
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_with_zero_decay_equals_the_model():
    model = _Toy()
    ema = ModelEMA(model, decay=0.0)
    with torch.no_grad():
        model.linear.weight.mul_(3.0)
        model.running.fill_(2.0)
    ema.update(model)
    for name, value in model.state_dict().items():
        assert torch.equal(ema.state_dict()[name], value), name


# -- data order ---------------------------------------------------------------------------


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    assert epoch_permutation(10, 7, 3) == epoch_permutation(10, 7, 3)
    assert epoch_permutation(10, 7, 3) != epoch_permutation(10, 7, 4)
    assert sorted(epoch_permutation(10, 7, 3)) == list(range(10))


def test_processes_share_each_global_batch_and_every_video_once():
    order = epoch_permutation(11, 1, 0)
    single = train_batches(order, 4, Context())
    ranks = [train_batches(order, 4, Context(rank=r, world_size=2)) for r in range(2)]
    assert len(single) == 2 and all(len(b) == 4 for b in single)  # last partial batch dropped
    for step, batch in enumerate(single):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)
    shards = [eval_indices(5, Context(rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(5))


# -- checkpoints and exact resume ---------------------------------------------------------


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def handle(event: dict) -> None:
        if event["event"] == "saved" and event["epoch"] == epoch:
            raise _Stop

    return handle


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path):
    recipe = load_recipe(tiny_recipe_data(*tiny_data))
    whole = fit(recipe, tmp_path / "whole")
    with pytest.raises(_Stop):
        fit(recipe, tmp_path / "resumed", on_event=_stop_after(1))
    events = []
    resumed = fit(recipe, tmp_path / "resumed", resume=True, on_event=events.append)

    assert events[0]["event"] == "resume" and events[0]["epoch"] == 1
    assert (whole.epochs, whole.steps) == (resumed.epochs, resumed.steps) == (3, 9)
    assert (whole.best_epoch, whole.best_map) == (resumed.best_epoch, resumed.best_map)
    for name in ("checkpoint/model.safetensors", "checkpoint/ema.safetensors", "last.safetensors"):
        a, b = _tensors(tmp_path / "whole" / name), _tensors(tmp_path / "resumed" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"

    def timeline(run: str) -> list:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        return [(r["event"], r.get("epoch"), r.get("step"), r.get("total")) for r in rows]

    assert [row for row in timeline("resumed") if row[0] != "resume"] == timeline("whole")


def test_run_directory_holds_loadable_weights_and_metrics(tiny_data, tmp_path):
    recipe = load_recipe(tiny_recipe_data(*tiny_data, epochs=1, warmup_epochs=0))
    result = fit(recipe, tmp_path / "run")
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "best.safetensors",
        "last.safetensors",
        "checkpoint",
        "val_predictions.json",
    }
    tensors, stored, metadata = load_weights(run / "best.safetensors")
    assert stored == recipe and metadata["epoch"] == "1"
    assert float(metadata["average_map"]) == result.best_map
    model, _ = load_model(str(run))
    assert tensors.keys() == model.state_dict().keys()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = next(r for r in rows if r["event"] == "train")
    assert {"inter", "intra", "score", "cls", "reg", "total", "lr", "videos_per_s"} <= train.keys()
    epoch = next(r for r in rows if r["event"] == "epoch")
    assert epoch["peak_rss_mib"] > 50  # this process holds torch at least
    evaluation = next(r for r in rows if r["event"] == "eval")
    assert evaluation["videos"] == 3 and 0.0 <= evaluation["average_map"] <= 1.0
    assert set(json.loads((run / "val_predictions.json").read_text())["results"]) == {
        "va00",
        "va01",
        "va02",
    }


def test_validation_map_is_bit_identical_to_del_eval_of_the_run(tiny_data, tmp_path, capsys):
    """Validation and `del eval --weights` share `evaluate_model`: the mAP a run reports for
    its best epoch is the one `del eval` prints for best.safetensors, to the last bit."""
    recipe = load_recipe(tiny_recipe_data(*tiny_data, epochs=1, warmup_epochs=0))
    result = fit(recipe, tmp_path / "run")
    args = ["eval", "--weights", str(tmp_path / "run"), "--split", "validation", "-f", "json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert result.best_map > 0  # the model finds events: equal scores are not both zero
    assert printed["average_map"] == result.best_map
    assert printed["map"] == result.best_maps
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    logged = next(row for row in rows if row["event"] == "eval")
    assert (logged["average_map"], logged["map"]) == (printed["average_map"], printed["map"])


def test_an_interrupted_checkpoint_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    save_checkpoint(tmp_path, model.state_dict(), None, {"step": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model.state_dict(), model.state_dict(), {"step": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    weights, ema, state = load_checkpoint(tmp_path)
    assert state["step"] == 1 and ema is None
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


# -- DDP under torchrun -------------------------------------------------------------------


def test_two_process_ddp_run_validates_every_video_once(tiny_data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to the interpreter")
    config = tmp_path / "tiny.yaml"
    data = tiny_recipe_data(*tiny_data, epochs=1, warmup_epochs=0, log_every=1)
    data["data"]["val_split"] = "train"  # 6 videos, 3 per process
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    worker = Path(__file__).with_name("ddp_train_worker.py")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        str(worker),
        str(config),
        "--out",
        str(run),
        "--device",
        "cpu",
        "--max-steps",
        "2",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    assert (run / "metrics.jsonl").is_file(), finished.stderr[-3000:]

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in rows].count("start") == 1  # rank 0 alone writes
    assert next(r for r in rows if r["event"] == "start")["processes"] == 2
    steps = [r for r in rows if r["event"] == "train"]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(math.isfinite(r["total"]) for r in steps)
    evaluation = next(r for r in rows if r["event"] == "eval")
    assert evaluation["videos"] == 6
    results = json.loads((run / "val_predictions.json").read_text())["results"]
    assert sorted(results) == [f"tr{i:02d}" for i in range(6)]
    load_weights(run / "best.safetensors")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "run:" in finished.stdout and finished.stdout.count("best epoch") == 1


# -- the command --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    if not any(command.name == "train" for command in app.registered_commands):
        train_cmd.register(app)  # until app.py registers it
    return main


def _config_file(tmp_path: Path, tiny_data, **train) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_data(*tiny_data, **train)))
    return path


def test_train_command_prints_run_and_table_then_resumes(cli, tiny_data, tmp_path, capsys):
    config = _config_file(tmp_path, tiny_data, epochs=1, warmup_epochs=0)
    run = tmp_path / "run"
    assert cli(["train", str(config), "--out", str(run), "--max-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert f"run: {run}" in out and "best epoch 1" in out and "avg" in out
    assert cli(["train", "--resume", "--out", str(run), "--epochs", "1"]) == 0
    assert "best epoch" in capsys.readouterr().out
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 1


def test_train_refuses_a_non_empty_out_dir_without_resume(cli, tiny_data, tmp_path, capsys):
    config = _config_file(tmp_path, tiny_data)
    run = tmp_path / "run"
    run.mkdir()
    (run / "something").write_text("x")
    assert cli(["train", str(config), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "--resume" in err


def test_train_set_typo_names_the_key(cli, tiny_data, tmp_path, capsys):
    config = _config_file(tmp_path, tiny_data)
    code = cli(["train", str(config), "--set", "train.lrr=0.1", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.lrr" in err and "train.lr" in err


def test_resume_with_a_different_recipe_names_the_key(cli, tiny_data, tmp_path, capsys):
    config = _config_file(tmp_path, tiny_data, epochs=1, warmup_epochs=0)
    run = tmp_path / "run"
    assert cli(["train", str(config), "--out", str(run), "--max-steps", "1"]) == 0
    capsys.readouterr()
    code = cli(["train", str(config), "--resume", "--out", str(run), "--set", "train.lr=0.5"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.lr" in err
    shutil.rmtree(run)


def test_a_diverging_run_fails_with_one_line_and_exit_1(cli, tiny_data, tmp_path, capsys):
    config = _config_file(tmp_path, tiny_data, lr=1e30, clip_grad=0.0, warmup_epochs=0)
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("del: error: training diverged:") and "train.lr" in err[-1]


def test_data_paths_are_made_absolute_so_resume_does_not_depend_on_the_spelling(
    tmp_path, monkeypatch
):
    from delcli.recipe import load_recipe, with_data_paths

    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("synth")  # data/synth/features, relative to the working directory
    resolved = with_data_paths(recipe, None, None, absolute=True)
    assert resolved.data.features == str(tmp_path / "data" / "synth" / "features")
    assert resolved.data.annotations == str(tmp_path / "data" / "synth" / "annotations.json")
    given = with_data_paths(recipe, tmp_path / "elsewhere", None, absolute=True)
    assert given.data.features == str(tmp_path / "elsewhere")
    unav100 = load_recipe("unav100")
    assert with_data_paths(unav100, None, None, absolute=True).data.annotations is None


def test_resume_accepts_a_recipe_whose_class_list_the_run_pinned(tmp_path):
    from delcli.errors import ConfigError
    from delcli.recipe import load_recipe, recipe_to_dict
    from delcli.settings import write_yaml
    from delcli.train.checkpoint import check_same_recipe

    open_recipe = load_recipe("synth")
    pinned = load_recipe("synth", ["data.classes=[a, b]", "model.num_classes=2"])
    write_yaml(tmp_path / "config.yaml", recipe_to_dict(pinned))
    check_same_recipe(open_recipe, tmp_path)  # no error: None means "the data's classes"
    with pytest.raises(ConfigError, match=r"data\.classes"):
        check_same_recipe(load_recipe("synth", ["data.classes=[a, c]"]), tmp_path)
