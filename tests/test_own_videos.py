"""The README's "Your own videos" path at tiny size: a folder of videos (made here with
PyAV by `del data synth-video`) and a CSV → `del train --videos --labels` → the test
table, then `del eval --weights RUN` and `del predict VIDEO --weights RUN` with no flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from delcli.cli.app import main

TINY = [
    "--set", "model.embed_dim=32", "--set", "model.head_dim=32", "--set", "model.n_levels=3",
    "--set", "model.projection_dim=16", "--set", "train.warmup_epochs=1",
    "--set", "inference.batch_size=4",
]  # fmt: skip


def labels_csv(annotations_json, path):
    """The README's step: the synthetic ground truth as a user's CSV (scripts/labels_csv.py)."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "labels_csv.py"
    subprocess.run([sys.executable, str(script), str(annotations_json), str(path)], check=True)


def test_videos_and_a_csv_to_a_model_a_test_table_and_predictions(tmp_path, capsys):
    made = tmp_path / "made"
    assert main(["data", "synth-video", str(made), "--videos", "10", "--seed", "3",
                 "--duration-range", "3:4", "--size", "48x32"]) == 0  # fmt: skip
    labels = tmp_path / "labels.csv"
    labels_csv(made / "annotations.json", labels)
    with open(labels, "a") as csv:
        csv.write("holiday.mp4,1,2,chirp\n")  # a video that is not in the folder
    capsys.readouterr()

    run = tmp_path / "run"
    command = ["train", "--videos", str(made / "videos"), "--labels", str(labels),
               "--out", str(run), "--max-steps", "2", "--device", "cpu", *TINY]  # fmt: skip
    assert main(command) == 0
    trained = capsys.readouterr()
    bad_row = len(labels.read_text().splitlines())  # the last line of the file
    reported = [line for line in trained.err.splitlines() if line.startswith("label problem")]
    assert reported == [  # only the bad row, by its number
        f"label problem: labels.csv row {bad_row}: video 'holiday.mp4' is not a video in "
        f"{made / 'videos'}; row dropped"
    ]
    assert "test split · mAP (%)" in trained.out

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["test_split"] == "test"
    assert config["model"]["num_classes"] == len(config["data"]["classes"])
    assert config["features"]["extractors"] == [{"name": "basic", "weights": None, "options": {}}]
    written = json.loads((run / "annotations.json").read_text())
    assert written["classes"] == config["data"]["classes"]
    subsets = {entry["subset"] for entry in written["database"].values()}
    assert subsets == {"train", "validation", "test"}
    assert (run / "features" / "features.json").exists()

    assert main(["eval", "--weights", str(run)]) == 0  # no further flags
    assert capsys.readouterr().out == trained.out  # the very table training ended with

    video = next((made / "videos").glob("*.mp4"))
    assert main(["predict", str(video), "--weights", str(run), "--format", "json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted[0]["video"] == video.stem
    assert all(e["label"] in config["data"]["classes"] for e in predicted[0]["events"])

    # a second run on the same videos reuses the first run's features
    again = tmp_path / "again"
    assert main([*command[:5], "--out", str(again), "--features", str(run / "features"),
                 "--max-steps", "1", *TINY]) == 0  # fmt: skip
    assert "0 extracted, 10 reused" in capsys.readouterr().err
    assert not (again / "features").exists()


def test_labels_without_usable_rows_are_one_line_and_exit_2(tmp_path, capsys):
    made = tmp_path / "made"
    assert main(["data", "synth-video", str(made), "--videos", "1", "--duration-range", "2:2",
                 "--size", "32x32"]) == 0  # fmt: skip
    labels = tmp_path / "labels.csv"
    labels.write_text("video,start,end,label\nnothere,1,2,dog\n")
    capsys.readouterr()
    code = main(["train", "--videos", str(made / "videos"), "--labels", str(labels),
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1:] == [
        f"del: error: {labels}: no usable labelled event (labels.csv row 2: video 'nothere' "
        f"is not a video in {made / 'videos'}; row dropped)"
    ]


def test_labels_need_videos(tmp_path, capsys):
    assert main(["train", "--labels", str(tmp_path / "l.csv")]) == 2
    assert "--videos DIR or --list FILE" in capsys.readouterr().err
