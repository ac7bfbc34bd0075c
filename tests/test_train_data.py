"""What `del train` says about its data: dataset notes, and broken feature files in either
split handled by one rule (stop with the list, or skip and report with data.skip_missing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from test_train import tiny_recipe_data, write_tiny_dataset

from delcli.cli import train_cmd
from delcli.cli.app import app, main


@pytest.fixture(scope="module")
def cli():
    if not any(command.name == "train" for command in app.registered_commands):
        train_cmd.register(app)
    return main


def _config(root, features, annotations, **data):
    recipe = tiny_recipe_data(features, annotations, epochs=1, warmup_epochs=0)
    recipe["data"].update(data)
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_prints_the_dataset_warnings(cli, tmp_path, capsys):
    features, annotations = write_tiny_dataset(tmp_path)
    audio = np.load(features / "tr00_vggish.npy")
    np.save(features / "tr00_vggish.npy", audio[: len(audio) // 3])  # cut to a third
    database = json.loads(annotations.read_text())
    video = database["database"]["tr01"]
    video["annotations"].append({"segment": [1.0, video["duration"] + 5], "label": "bark"})
    annotations.write_text(json.dumps(database))
    config = _config(tmp_path, features, annotations)
    assert cli(["train", str(config), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "video 'tr00': audio has" in err and "audio interpolated to" in err
    assert "video 'tr01': 1 event(s) extend beyond its duration" in err
    notes = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert any("audio interpolated" in n.get("message", "") for n in notes)


@pytest.mark.parametrize("split", ["tr", "va"])
def test_a_corrupt_feature_file_stops_training_in_either_split(cli, tmp_path, capsys, split):
    features, annotations = write_tiny_dataset(tmp_path)
    (features / f"{split}01_rgb.npy").write_bytes(b"not an array")
    config = _config(tmp_path, features, annotations)
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{split}01" in err and "data.skip_missing=true" in err
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_skip_missing_skips_and_reports_broken_validation_videos(cli, tmp_path, capsys):
    features, annotations = write_tiny_dataset(tmp_path)
    (features / "va01_rgb.npy").write_bytes(b"not an array")
    config = _config(tmp_path, features, annotations, skip_missing=True)
    run = tmp_path / "run"
    assert cli(["train", str(config), "--out", str(run), "--max-steps", "1"]) == 0
    captured = capsys.readouterr()
    assert "skipped validation video va01" in captured.err
    assert "best epoch 1" in captured.out  # validation still ran, on the other videos
