"""SIGTERM (Slurm preemption, `timeout`) and Ctrl-C: temporary files cleaned, exit 143 /
130, and a later `--resume` continues."""

from __future__ import annotations

import os
import signal

import pytest
import yaml
from test_train import tiny_recipe_data, write_tiny_dataset

from delcli.cli import train_cmd
from delcli.cli.app import app, main
from delcli.files import atomic_path
from delcli.train import checkpoint


@pytest.fixture(scope="module")
def cli():
    if not any(command.name == "train" for command in app.registered_commands):
        train_cmd.register(app)
    return main


def _temporaries(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


def test_sigterm_during_a_checkpoint_save_cleans_up_and_resume_continues(
    cli, tmp_path, capsys, monkeypatch
):
    features, annotations = write_tiny_dataset(tmp_path)
    config = tmp_path / "tiny.yaml"
    recipe = tiny_recipe_data(features, annotations, epochs=2, warmup_epochs=0)
    config.write_text(yaml.safe_dump(recipe))
    run = tmp_path / "run"
    write = checkpoint.write_safetensors
    calls = []

    def terminated_in_the_second_save(tensors, path, metadata=None):
        write(tensors, path, metadata)  # half of the epoch-2 checkpoint is on disk
        calls.append(path)
        if len(calls) == 3:  # epoch 1: model + EMA; epoch 2: model, then SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(checkpoint, "write_safetensors", terminated_in_the_second_save)
    assert cli(["train", str(config), "--out", str(run)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == "del: error: terminated"
    assert _temporaries(run) == [] and not (run / "checkpoint.tmp").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler put back

    monkeypatch.setattr(checkpoint, "write_safetensors", write)
    assert cli(["train", "--resume", "--out", str(run)]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    assert _temporaries(run) == []


def test_ctrl_c_inside_an_atomic_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "out.json") as temporary:
        open(temporary, "w").write("half")  # noqa: SIM115
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
