"""Inference over a dataset, and `del eval --weights`: seconds, NMS, batches, external scores."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from delcli.cli.app import main
from delcli.data.batch import TimeGrid
from delcli.data.dataset import FeatureDataset
from delcli.errors import ConfigError, DataError
from delcli.evaluation.predictions import read_predictions
from delcli.inference.nms import NMSConfig
from delcli.inference.predictor import (
    Detections,
    label_with_external_scores,
    predict_dataset,
    read_external_scores,
    video_detections,
    write_results,
)
from delcli.model.del_model import DELModel
from delcli.recipe import load_recipe
from delcli.weights import save_weights

from helpers import TINY_MODEL

CLASSES = ["bark", "ring", "wave"]
UNAV_GRID = TimeGrid(step_seconds=0.32, offset_seconds=0.48)
HARD_NMS = NMSConfig(use_soft_nms=False, iou_threshold=0.5, min_score=0.0, max_seg_num=None)


def write_features(root: Path, lengths: list[int], seed: int = 0) -> Path:
    """A UnAV-layout feature folder (`av/`) and its annotations; returns the annotation file."""
    rng = np.random.default_rng(seed)
    (root / "av").mkdir(parents=True)
    database = {}
    for i, length in enumerate(lengths):
        video = f"video{i}"
        for stream, dim in (("rgb", 6), ("flow", 6), ("vggish", 6)):
            array = rng.standard_normal((length, dim)).astype(np.float32)
            np.save(root / "av" / f"{video}_{stream}.npy", array)
        duration = UNAV_GRID.to_seconds(length - 1) + 0.48
        events = [{"label": CLASSES[i % 3], "segment": [1.0, duration / 2]}]
        database[video] = {"subset": "test", "duration": duration, "annotations": events}
    path = root / "annotations.json"
    path.write_text(json.dumps({"version": "test", "database": database}))
    return path


def tiny_recipe(annotations: Path, num_classes: int = 3, **data):
    return load_recipe(
        {
            "name": "tiny",
            "title": "Tiny test model",
            "data": {
                "annotations": str(annotations),
                "visual": {"files": ["{video}_rgb.npy", "{video}_flow.npy"], "folder": "av"},
                "audio": {"files": ["{video}_vggish.npy"], "folder": "av"},
                "fps": 25.0,
                "classes": CLASSES,
                **data,
            },
            "model": {**TINY_MODEL, "num_classes": num_classes},
            "inference": {"batch_size": 3, "max_detections": 50},
        }
    )


def tiny_model(recipe, seed: int = 0) -> DELModel:
    torch.manual_seed(seed)
    return DELModel(recipe.model).eval()


@pytest.fixture
def tiny(tmp_path):
    """Recipe, model and test dataset: five videos of 9 to 45 steps."""
    annotations = write_features(tmp_path / "features", [20, 45, 9, 32, 27])
    recipe = tiny_recipe(annotations)
    dataset = FeatureDataset(
        replace(recipe.data, features=tmp_path / "features"), recipe.model, "test"
    )
    return recipe, tiny_model(recipe), dataset


# -- one video: steps → seconds → NMS ---------------------------------------------------


def test_steps_become_seconds_clamped_to_the_video_and_empty_segments_are_dropped():
    segments = torch.tensor([[-5.0, 2.0], [0.0, 10.0], [80.0, 120.0], [200.0, 210.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 1, 2, 0])
    kept = video_detections(segments, scores, labels, UNAV_GRID, 30.0, HARD_NMS, 10)
    # -5 → -1.12 s → 0; 2 → 1.12 s; 10 → 3.68 s; 80 → 26.08 s; 120 → 38.88 s → 30;
    # [200, 210] lies beyond the end: [30, 30] after clamping, dropped.
    expected = torch.tensor([[0.0, 1.12], [0.48, 3.68], [26.08, 30.0]], dtype=torch.float64)
    torch.testing.assert_close(kept.segments, expected)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert kept.class_ids.tolist() == [0, 1, 2]
    assert kept.indices.tolist() == [0, 1, 2]  # positions in the input


def test_nms_runs_in_seconds_and_the_result_is_capped_by_score():
    segments = torch.tensor([[0.0, 10.0], [0.0, 9.0], [20.0, 30.0], [40.0, 50.0]])
    scores = torch.tensor([0.5, 0.9, 0.3, 0.7])
    labels = torch.zeros(4, dtype=torch.long)
    kept = video_detections(segments, scores, labels, UNAV_GRID, 100.0, HARD_NMS, 2)
    # [0, 10] overlaps the better [0, 9] at tIoU 0.9 and is suppressed; the cap keeps 2.
    assert kept.indices.tolist() == [1, 3]
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])


def test_a_video_without_duration_is_clamped_at_zero_only():
    segments = torch.tensor([[-3.0, 500.0]])
    kept = video_detections(
        segments, torch.tensor([0.5]), torch.tensor([0]), UNAV_GRID, math.nan, HARD_NMS, 5
    )
    assert kept.segments.tolist() == [[0.0, pytest.approx(160.48)]]


def test_no_candidates_give_no_detections():
    empty = torch.zeros(0, 2)
    kept = video_detections(
        empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), UNAV_GRID, 10.0, NMSConfig(), 5
    )
    assert kept.scores.numel() == 0


def test_external_scores_label_each_proposal_with_the_top_classes():
    proposals = Detections(
        segments=torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64),
        scores=torch.tensor([0.64, 0.25], dtype=torch.float64),
        class_ids=torch.tensor([0, 0]),
        indices=torch.tensor([4, 7]),
    )
    labelled = label_with_external_scores(proposals, torch.tensor([0.1, 0.9, 0.4]), top_k=2)
    # sqrt(0.9·0.64), sqrt(0.9·0.25)... sorted: 0.72 (c1,p0), 0.506 (c2,p0), 0.474 (c1,p1), 0.316
    assert labelled.scores.tolist() == pytest.approx(
        [math.sqrt(0.9 * 0.64), math.sqrt(0.4 * 0.64), math.sqrt(0.9 * 0.25), math.sqrt(0.1)]
    )
    assert labelled.class_ids.tolist() == [1, 2, 1, 2]
    assert labelled.indices.tolist() == [4, 4, 7, 7]
    assert labelled.segments.tolist() == [[0, 1], [0, 1], [2, 3], [2, 3]]


# -- a dataset --------------------------------------------------------------------------


def test_every_video_gets_detections_in_seconds_within_the_video(tiny):
    recipe, model, dataset = tiny
    results = predict_dataset(model, dataset, recipe)
    assert list(results) == dataset.video_ids
    durations = dict(zip(dataset.annotations.video_ids, dataset.annotations.durations, strict=True))
    for video, detections in results.items():
        assert 0 < len(detections) <= recipe.inference.max_detections
        scores = [d["score"] for d in detections]
        assert scores == sorted(scores, reverse=True)
        for d in detections:
            start, end = d["segment"]
            assert 0.0 <= start < end <= durations[video] + 1e-9
            assert d["label"] in CLASSES and 0.0 < d["score"] <= 1.0


def test_a_batch_of_several_videos_gives_the_detections_of_one_at_a_time(tiny):
    recipe, model, dataset = tiny
    alone = predict_dataset(model, dataset, recipe, batch_size=1)
    together = predict_dataset(model, dataset, recipe, batch_size=5)
    assert alone.keys() == together.keys()
    for video in alone:
        a, b = alone[video], together[video]
        assert [d["label"] for d in a] == [d["label"] for d in b]
        np.testing.assert_allclose(
            [d["score"] for d in a], [d["score"] for d in b], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            [d["segment"] for d in a], [d["segment"] for d in b], rtol=1e-4, atol=1e-4
        )


def test_indices_choose_the_videos_and_progress_counts_them(tiny):
    recipe, model, dataset = tiny
    done = []
    results = predict_dataset(
        model, dataset, recipe, indices=[3, 0], batch_size=1, progress=done.append
    )
    assert list(results) == [dataset.video_ids[3], dataset.video_ids[0]]
    assert done == [1, 1]


def test_predicting_leaves_a_training_model_in_training_mode(tiny):
    recipe, model, dataset = tiny
    model.train()
    predict_dataset(model, dataset, recipe, indices=[0])
    assert model.training


def test_a_class_agnostic_model_is_named_by_external_scores(tmp_path):
    annotations = write_features(tmp_path / "features", [20, 33, 14])
    recipe = tiny_recipe(annotations, num_classes=1)
    dataset = FeatureDataset(
        replace(recipe.data, features=tmp_path / "features"), recipe.model, "test"
    )
    model = tiny_model(recipe)
    with pytest.raises(ConfigError, match=r"class-agnostic .* external video-level class scores"):
        predict_dataset(model, dataset, recipe)

    external = {
        "video0": {"bark": 0.7, "ring": 0.2, "wave": 0.1},
        "video1": {"wave": 0.9, "ring": 0.5},
        "video2": {"ring": 1.0},
    }
    results = predict_dataset(model, dataset, recipe, external_scores=external)
    # video2's second class has probability 0: only its first is emitted
    top_two = {"video0": {"bark", "ring"}, "video1": {"wave", "ring"}, "video2": {"ring"}}
    for video, detections in results.items():
        assert {d["label"] for d in detections} == top_two[video]
        by_class = {}
        for d in detections:
            by_class.setdefault(d["label"], []).append(d)
        # each proposal once per top class, its score scaled by sqrt(class probability)
        if video == "video0":
            ratios = [
                b["score"] / r["score"]
                for b, r in zip(by_class["bark"], by_class["ring"], strict=True)
            ]
            assert ratios == pytest.approx([math.sqrt(0.7 / 0.2)] * len(ratios))

    with pytest.raises(DataError, match="external scores lack 1 of 3 videos"):
        predict_dataset(model, dataset, recipe, external_scores={"video0": {}, "video1": {}})
    with pytest.raises(DataError, match="class 'meow', which is not a class"):
        predict_dataset(
            model, dataset, recipe, external_scores={v: {"meow": 1.0} for v in external}
        )


# -- external score files and results files ---------------------------------------------


def test_external_scores_are_read_from_cuhk_and_plain_files(tmp_path):
    cuhk = tmp_path / "cuhk.json"
    cuhk.write_text(json.dumps({"results": {"abc": [0.1, 0.2, 0.7]}, "class": CLASSES}))
    plain = tmp_path / "plain.json.gz"
    plain.write_bytes(gzip.compress(json.dumps({"v_abc": {"wave": 0.7}}).encode()))
    anonymous = tmp_path / "anonymous.json"
    anonymous.write_text(json.dumps({"results": {"abc": [0.1, 0.2, 0.7]}}))
    assert read_external_scores(cuhk) == {"abc": {"bark": 0.1, "ring": 0.2, "wave": 0.7}}
    assert read_external_scores(plain) == {"v_abc": {"wave": 0.7}}
    assert read_external_scores(anonymous, classes=CLASSES)["abc"]["wave"] == 0.7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"results": {"a": [0.5]}}, "1 scores but no class list of that length"),
        ({"a": {"bark": -1}}, "must be finite and >= 0"),
        ({"a": {"bark": "high"}}, "is not a number"),
        ({"a": 0.5}, "expected a list of scores or a {class: score} object"),
    ],
)
def test_bad_external_score_files_are_one_line_data_errors(tmp_path, content, message):
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as excinfo:
        read_external_scores(path, classes=CLASSES)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_external_scores_match_videos_with_or_without_the_v_prefix(tmp_path):
    from delcli.inference.predictor import external_score_table

    table = external_score_table({"abc": {"ring": 0.5}}, ["v_abc"], CLASSES)
    assert table["v_abc"].tolist() == [0.0, 0.5, 0.0]


@pytest.mark.parametrize("name", ["results.json", "results.json.gz"])
def test_results_are_written_atomically_in_the_activitynet_format(tmp_path, name):
    results = {"a": [{"label": "bark", "score": 0.5, "segment": [1.0, 2.0]}], "b": []}
    write_results(tmp_path / name, results, external_used=True, details="test")
    assert [p.name for p in tmp_path.iterdir()] == [name]
    loaded = read_predictions(tmp_path / name)
    assert loaded.videos == ["a", "b"] and loaded.segments.tolist() == [[1.0, 2.0]]
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "rt") as handle:
        document = json.load(handle)
    assert document["external_data"] == {"used": True, "details": "test"}
    assert document["results"]["b"] == []


# -- del eval --weights -----------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def saved(tmp_path):
    """A tiny model saved with save_weights, and its feature folder."""
    features = tmp_path / "features"
    annotations = write_features(features, [20, 45, 9, 32])
    recipe = tiny_recipe(annotations)
    weights = tmp_path / "run" / "best.safetensors"
    weights.parent.mkdir()
    save_weights(weights, tiny_model(recipe).state_dict(), recipe)
    return weights, features, annotations


def test_eval_weights_prints_the_table_and_writes_the_predictions(capsys, tmp_path, saved):
    weights, features, _ = saved
    out_file = tmp_path / "out" / "predictions.json"
    out_file.parent.mkdir()
    code, out, err = run(
        capsys, "eval", "--weights", weights.parent, "--features", features,
        "--predictions-out", out_file,
    )  # fmt: skip
    assert code == 0, err
    assert "Tiny test model · test split · mAP (%)" in out
    assert "0.5*" in out and "avg" in out  # a dataset outside the benchmarks: UnAV-100's protocol
    assert "4 videos · 4 events · 3 classes" in out
    assert "wrote" in err
    assert [p.name for p in out_file.parent.iterdir()] == ["predictions.json"]
    document = json.loads(out_file.read_text())
    assert set(document) == {"version", "results", "external_data"}
    assert sorted(document["results"]) == ["video0", "video1", "video2", "video3"]


def test_eval_weights_scores_the_same_as_scoring_its_written_predictions(capsys, tmp_path, saved):
    weights, features, annotations = saved
    out_file = tmp_path / "p.json"
    code, out, _ = run(
        capsys, "eval", "-w", weights, "--features", features, "-o", out_file, "-f", "json",
        "--per-class",
    )  # fmt: skip
    assert code == 0
    direct = json.loads(out)
    code, out, _ = run(
        capsys, "eval", "-p", out_file, "-g", annotations, "-s", "test",
        "--tiou", "0.1:0.9:0.1", "-f", "json", "--per-class",
    )  # fmt: skip
    assert code == 0
    from_file = json.loads(out)
    assert direct["map"] == pytest.approx(from_file["map"])
    assert direct["per_class"].keys() == from_file["per_class"].keys()
    for name, row in direct["per_class"].items():
        assert row == pytest.approx(from_file["per_class"][name])
    assert direct["average_map"] == pytest.approx(from_file["average_map"])
    assert direct["counts"]["predictions"] == from_file["counts"]["predictions"]


def test_eval_weights_with_missing_features_skips_them_and_exits_1(capsys, tmp_path):
    features = tmp_path / "features"
    annotations = write_features(features, [20, 30, 25])
    (features / "av" / "video1_vggish.npy").unlink()
    recipe = tiny_recipe(annotations, skip_missing=True)
    weights = tmp_path / "w.safetensors"
    save_weights(weights, tiny_model(recipe).state_dict(), recipe)
    code, out, err = run(capsys, "eval", "-w", weights, "--features", features)
    assert code == 1
    assert "mAP (%)" in out and "2 videos" in out
    assert "skipped 1 videos" in err and "video1" in err


def test_eval_weights_with_missing_features_and_no_skipping_is_one_line(capsys, tmp_path, saved):
    weights, features, _ = saved
    (features / "av" / "video2_rgb.npy").unlink()
    code, out, err = run(capsys, "eval", "-w", weights, "--features", features)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "video2" in err and "skip_missing" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-w", "thumos14"], "weights for 'thumos14' are not published yet; train them with"),
        (["-w", "run", "-p", "x.json"], "give --predictions FILE or --weights MODEL, not both"),
        (["-p", "x.json", "--features", "f"], "--features needs --weights"),
        (["-w", "thumos", "--features", "f"], "did you mean 'thumos14'?"),
        (["-w", "thumos14", "-o", "no/such/dir/p.json"], "folder no/such/dir does not exist"),
    ],
)
def test_eval_weights_usage_errors_are_one_line_with_exit_code_2(capsys, args, message):
    code, out, err = run(capsys, "eval", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("del: error: ")
    assert message in err


def test_eval_weights_of_a_class_agnostic_model_asks_for_external_scores(capsys, tmp_path):
    features = tmp_path / "features"
    annotations = write_features(features, [20, 30])
    recipe = tiny_recipe(annotations, num_classes=1)
    weights = tmp_path / "w.safetensors"
    save_weights(weights, tiny_model(recipe).state_dict(), recipe)
    code, _, err = run(capsys, "eval", "-w", weights, "--features", features)
    assert code == 2 and "--external-scores FILE" in err
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"results": {"video0": [0.5, 0.3, 0.2], "video1": [0, 0, 1]}}))
    code, out, err = run(
        capsys, "eval", "-w", weights, "--features", features, "--external-scores", scores,
        "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["counts"]["videos"] == 2
