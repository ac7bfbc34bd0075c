"""Files del writes score against each other, and other tools' results are read:
annotation files carry their classes, `del eval -p -` reads stdin, ActionFormer's
dict-of-arrays results JSON is read and its pickle refused with the command that
converts it."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from delcli.cli.app import main
from delcli.data.formats import read_annotations
from delcli.errors import DataError
from delcli.evaluation.predictions import read_predictions
from delcli.resources import resource_path
from delcli.synth.video import CLASSES

from helpers import write_database, write_results

DEMO_TRUTH = str(resource_path("demo/demo_annotations.json"))


def test_annotation_files_del_writes_carry_every_class(tmp_path):
    assert main(["data", "synth-video", str(tmp_path / "v"), "--videos", "1",
                 "--duration-range", "2:2", "--size", "32x32"]) == 0  # fmt: skip
    written = json.loads((tmp_path / "v" / "annotations.json").read_text())
    assert written["classes"] == [c.name for c in CLASSES]
    assert read_annotations(tmp_path / "v" / "annotations.json").classes == written["classes"]
    assert read_annotations(DEMO_TRUTH).classes == [c.name for c in CLASSES]


def test_a_class_list_in_the_file_lets_predictions_of_absent_classes_be_reported(tmp_path, capsys):
    truth = tmp_path / "truth.json"
    database = json.loads(write_database(truth, [("v", 1, 2, "dog")]).read_text())
    truth.write_text(json.dumps({"classes": ["dog", "cat"], **database}))
    predictions = write_results(
        tmp_path / "p.json", [("v", 1, 2, "dog", 0.9), ("v", 3, 4, "cat", 0.8)]
    )
    assert main(["eval", "-g", str(truth), "-p", str(predictions), "-s", "test"]) == 0
    captured = capsys.readouterr()
    assert "100.00" in captured.out
    assert "classes with no ground truth" in captured.err


def test_predictions_piped_from_del_predict_score_against_the_demo_truth(capsys, monkeypatch):
    assert main(["predict", "--demo", "--format", "anet"]) == 0
    piped = capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(piped))
    assert main(["eval", "-g", DEMO_TRUTH, "-s", "test", "-p", "-", "-f", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["videos"] == 1 and report["average_map"] > 0.5


def test_stdin_takes_csv_too_and_empty_input_is_one_line(tmp_path, capsys, monkeypatch):
    truth = write_database(tmp_path / "truth.json", [("v", 1, 2, "dog")])
    monkeypatch.setattr(sys, "stdin", io.StringIO("video,start,end,label,score\nv,1,2,dog,0.9\n"))
    assert main(["eval", "-g", str(truth), "-s", "test", "-p", "-", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["average_map"] == 1.0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["eval", "-g", str(truth), "-s", "test", "-p", "-"]) == 2
    assert (
        capsys.readouterr().err.strip() == "del: error: <stdin>: holds no predictions (empty input)"
    )


def actionformer_results() -> dict:
    """What ActionFormer's `valid_one_epoch` collects: parallel arrays, integer labels."""
    return {
        "video-id": ["v", "v", "w"],
        "t-start": np.array([1.0, 3.0, 0.5], dtype=np.float32),
        "t-end": np.array([2.0, 4.0, 1.5], dtype=np.float32),
        "label": np.array([0, 1, 0]),
        "score": np.array([0.9, 0.4, 0.7], dtype=np.float32),
    }


def test_actionformer_dict_of_arrays_json_is_read():
    results = {k: np.asarray(v).tolist() for k, v in actionformer_results().items()}
    predictions = read_predictions("af.json", text=json.dumps(results))
    assert predictions.videos == ["v", "w"]
    assert predictions.label_names == [0, 1]  # class ids, as ActionFormer writes them
    assert predictions.segments.tolist() == [[1.0, 2.0], [3.0, 4.0], [0.5, 1.5]]


def test_actionformer_columns_of_different_lengths_are_one_line():
    broken = {"video-id": ["v"], "t-start": [1, 2], "t-end": [2], "label": [0], "score": [1]}
    with pytest.raises(DataError, match="lists of one length"):
        read_predictions("af.json", text=json.dumps(broken))


def test_a_pickle_is_refused_with_the_command_that_converts_it(tmp_path, capsys):
    pickled = tmp_path / "eval_results.pkl"
    pickled.write_bytes(pickle.dumps(actionformer_results()))
    truth = write_database(tmp_path / "truth.json", [("v", 1, 2, "a"), ("v", 3, 4, "b")])
    assert main(["eval", "-g", str(truth), "-s", "test", "-p", str(pickled)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"del: error: {pickled}: a pickle; del does not unpickle")
    command = error.split("where it was made: ", 1)[1]
    assert "\n" not in command

    subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, check=True,
                   cwd=tmp_path)  # fmt: skip
    converted = tmp_path / "eval_results.json"
    assert main(["eval", "-g", str(truth), "-s", "test", "-p", str(converted), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["average_map"] == 1.0


def test_a_pickle_under_another_name_is_recognised_by_its_first_byte(tmp_path):
    disguised = tmp_path / "results.json"
    disguised.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match="a pickle"):
        read_predictions(disguised)
