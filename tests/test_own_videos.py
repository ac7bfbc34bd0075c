"""The README's "Your own videos" path at tiny size: a folder of videos (made here with
PyAV by `del data synth-video`) and a CSV → `del train --videos --labels` → the test
table, then `del eval --weights RUN` and `del predict VIDEO --weights RUN` with no flags."""

from __future__ import annotations

import json

import yaml

from delcli.cli.app import main

TINY = [
    "--set", "model.embed_dim=32", "--set", "model.head_dim=32", "--set", "model.n_levels=3",
    "--set", "model.projection_dim=16", "--set", "train.warmup_epochs=1",
    "--set", "inference.batch_size=4",
]  # fmt: skip


def write_csv(annotations_json, path, extra=()):
    """The synthetic ground truth as a user's CSV: file names with extensions, no splits."""
    database = json.loads(annotations_json.read_text())["database"]
    lines = ["video,start,end,label"]
    for video, entry in database.items():
        for event in entry["annotations"]:
            start, end = event["segment"]
            lines.append(f"{video}.mp4,{start},{end},{event['label']}")
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return {e["label"] for entry in database.values() for e in entry["annotations"]}


def test_videos_and_a_csv_to_a_model_a_test_table_and_predictions(tmp_path, capsys):
    made = tmp_path / "made"
    assert main(["data", "synth-video", str(made), "--videos", "10", "--seed", "3",
                 "--duration-range", "3:4", "--size", "48x32"]) == 0  # fmt: skip
    labels = tmp_path / "labels.csv"
    write_csv(made / "annotations.json", labels, extra=["holiday.mp4,1,2,chirp"])
    capsys.readouterr()

    run = tmp_path / "run"
    command = ["train", "--videos", str(made / "videos"), "--labels", str(labels),
               "--out", str(run), "--max-steps", "2", "--device", "cpu", *TINY]  # fmt: skip
    assert main(command) == 0
    trained = capsys.readouterr()
    assert "row 2" not in trained.err  # good rows are not reported
    assert "video 'holiday.mp4' is not a video in" in trained.err  # the bad one is, by row
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
