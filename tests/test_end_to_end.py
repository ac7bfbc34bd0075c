"""The README's path on the synthetic benchmark: `del data synth` → `del train` → `del eval`."""

from __future__ import annotations

import json

import yaml

from delcli.cli.app import main
from delcli.data.formats import read_annotations

SMALL_MODEL = [
    "--set", "model.embed_dim=32", "--set", "model.head_dim=32", "--set", "model.n_levels=3",
    "--set", "model.projection_dim=16", "--set", "train.warmup_epochs=1",
    "--set", "train.batch_size=4", "--set", "inference.batch_size=4",
]  # fmt: skip


def test_synth_then_train_then_eval(tmp_path, capsys):
    data, run = tmp_path / "synth", tmp_path / "run"
    assert main(["data", "synth", str(data), "--size", "tiny"]) == 0
    capsys.readouterr()

    paths = ["--features", str(data / "features"), "--annotations", str(data / "annotations.json")]
    assert main(["train", "synth", *paths, "--out", str(run), "--epochs", "1", *SMALL_MODEL]) == 0
    trained = capsys.readouterr()
    assert "best epoch" in trained.out
    config = yaml.safe_load((run / "config.yaml").read_text())
    classes = config["data"]["classes"]
    assert len(classes) == config["model"]["num_classes"] == 8  # pinned from the tiny data
    assert (run / "best.safetensors").exists() and (run / "metrics.jsonl").exists()

    predictions = tmp_path / "test.json"
    code = main(["eval", "--weights", str(run), *paths, "--split", "test",
                 "--predictions-out", str(predictions), "--format", "json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and 0.0 <= report["average_map"] <= 1.0
    assert len(report["tious"]) == 9  # UnAV-100's protocol for a dataset outside the benchmarks
    written = json.loads(predictions.read_text())["results"]
    test_videos = read_annotations(data / "annotations.json").select_split("test").video_ids
    assert set(written) == set(test_videos)
    assert all(d["label"] in classes for dets in written.values() for d in dets)

    # scoring the written file gives the same numbers as scoring the model
    assert main(["eval", "-p", str(predictions), "-g", str(data / "annotations.json"),
                 "-s", "test", "--tiou", "0.1:0.9:0.1", "-f", "json"]) == 0  # fmt: skip
    rescored = json.loads(capsys.readouterr().out)
    assert rescored["average_map"] == report["average_map"]
