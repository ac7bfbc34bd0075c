"""Detection mAP: hand-computed examples, the official rules, and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delcli.errors import DataError
from delcli.evaluation.detection_map import (
    AlignedPredictions,
    align_predictions,
    detection_map,
)
from delcli.evaluation.map_oracle import interpolated_average_precision, reference_average_precision
from delcli.evaluation.predictions import read_predictions
from delcli.evaluation.scoring import score_predictions

from helpers import make_ground_truth, write_database, write_results


def _score(tmp_path, gt_events, pred_rows, tious, **kwargs):
    gt = write_database(tmp_path / "gt.json", gt_events)
    preds = write_results(tmp_path / "preds.json", pred_rows)
    return score_predictions(preds, ground_truth=gt, split="test", tious=tious, **kwargs)


def test_map_matches_hand_computed_example_with_fallback_matching(tmp_path):
    gt = [("v1", 0, 10, "a"), ("v1", 5, 15, "a")]
    preds = [
        ("v1", 0, 10, "a", 0.9),  # tIoU 1.0 with the first ground truth
        ("v1", 1, 11, "a", 0.8),  # best is taken; the second has tIoU 6/14 = 0.43
        ("v1", 20, 30, "a", 0.7),  # no overlap
    ]
    report = _score(tmp_path, gt, preds, (0.3, 0.5))
    # 0.3: TP TP FP → AP = ½·1 + ½·1 = 1 (falls back to the unmatched second event)
    # 0.5: TP FP FP → AP = ½·1 = 0.5
    assert report.result.mean_ap == pytest.approx([1.0, 0.5], abs=1e-12)
    assert report.average_map == pytest.approx(0.75)


@pytest.mark.parametrize(("false_alarm_first", "expected"), [(True, 0.5), (False, 1.0)])
def test_equal_scores_are_visited_in_file_order(tmp_path, false_alarm_first, expected):
    hit, miss = ("v1", 0, 10, "a", 0.5), ("v1", 50, 60, "a", 0.5)
    rows = [miss, hit] if false_alarm_first else [hit, miss]
    report = _score(tmp_path, [("v1", 0, 10, "a")], rows, (0.5,))
    assert report.result.mean_ap[0] == pytest.approx(expected)


def test_videos_without_predictions_and_predictions_without_ground_truth(tmp_path):
    gt = [("v1", 0, 10, "a"), ("v2", 0, 10, "a"), ("v3", 0, 10, "b")]
    preds = [
        ("v1", 0, 10, "a", 0.9),
        ("elsewhere", 0, 10, "a", 0.8),  # a video outside the split: a false positive
    ]
    report = _score(tmp_path, gt, preds, (0.5,))
    # a: TP FP with 2 events → AP ½; b: no predictions → AP 0; mean ¼
    assert dict(zip(report.result.classes, report.result.ap[:, 0], strict=True)) == {
        "a": pytest.approx(0.5),
        "b": 0.0,
    }
    assert report.average_map == pytest.approx(0.25)
    assert report.counts["outside_split"] == 1
    assert any("2 of 3 videos have no predictions" in n for n in report.notes)


def test_classes_without_ground_truth_do_not_enter_the_mean(tmp_path):
    gt = write_database(tmp_path / "gt.json", [("v1", 0, 10, "a"), ("v2", 0, 10, "b")])
    other = tmp_path / "other.json"  # b has ground truth only in another split
    other.write_text(
        gt.read_text().replace(
            '"test", "duration": 100.0, "annotations": [{"label": "b"',
            '"train", "duration": 100.0, "annotations": [{"label": "b"',
        )
    )
    preds = write_results(tmp_path / "p.json", [("v1", 0, 10, "a", 0.9), ("v1", 0, 10, "b", 0.8)])
    report = score_predictions(preds, ground_truth=other, split="test", tious=(0.5,))
    assert report.result.classes == ["a"]
    assert report.average_map == 1.0
    assert report.counts["class_without_ground_truth"] == 1


def test_duplicate_ground_truth_counts_unless_cleaned(tmp_path):
    gt = [("v1", 0, 10, "a"), ("v1", 0, 10, "a"), ("v1", 20, 20, "a")]
    preds = [("v1", 0, 10, "a", 0.9)]
    assert _score(tmp_path, gt, preds, (0.5,)).average_map == pytest.approx(1 / 3)
    cleaned = _score(tmp_path, gt, preds, (0.5,), clean_ground_truth=True)
    assert cleaned.average_map == 1.0
    assert "dropped 1 zero-length and 1 duplicate" in cleaned.notes[0]


def test_unknown_label_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"label 'aa' \(did you mean 'a'\?\)"):
        _score(tmp_path, [("v1", 0, 10, "a")], [("v1", 0, 10, "aa", 0.9)], (0.5,))


def test_unknown_labels_can_be_ignored_on_request(tmp_path):
    report = _score(
        tmp_path,
        [("v1", 0, 10, "a")],
        [("v1", 0, 10, "zzz", 0.95), ("v1", 0, 10, "a", 0.9)],
        (0.5,),
        ignore_unknown_labels=True,
    )
    assert report.average_map == 1.0
    assert report.counts["unknown_label"] == 1


def test_integer_labels_are_class_ids(tmp_path):
    gt = make_ground_truth([("v1", 0, 10, "a"), ("v1", 20, 30, "b")], classes=["a", "b"])
    path = write_results(tmp_path / "p.json", [("v1", 0, 10, 0, 0.9), ("v1", 20, 30, 1, 0.8)])
    aligned = align_predictions(gt, read_predictions(path))
    assert aligned.label.tolist() == [0, 1]


def test_interpolated_ap_is_the_area_under_the_precision_envelope():
    precision = np.array([1.0, 0.5, 2 / 3, 0.5])
    recall = np.array([0.25, 0.25, 0.5, 0.5])
    # envelope: 1, 2/3, 2/3, 1/2 → recall steps at 1st and 3rd: ¼·1 + ¼·⅔
    assert interpolated_average_precision(precision, recall) == pytest.approx(0.25 + 0.25 * 2 / 3)


# ---------------------------------------------------------------- properties


@st.composite
def detection_problems(draw):
    """Random ground truth and predictions over a few videos and classes, with ties."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    num_videos, num_classes = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    num_gt, num_pred = draw(st.integers(1, 25)), draw(st.integers(0, 60))
    starts = rng.uniform(0, 50, num_gt)
    gt = make_ground_truth(
        [
            (
                f"v{rng.integers(num_videos)}",
                s,
                s + rng.uniform(0.5, 20),
                f"c{rng.integers(num_classes)}",
            )
            for s in starts
        ],
        videos=[f"v{i}" for i in range(num_videos)],
        classes=[f"c{i}" for i in range(num_classes)],
    )
    # predictions near ground truth, elsewhere, and on videos outside the split
    base = gt.segments[rng.integers(gt.num_events, size=num_pred)]
    jitter = rng.normal(0, 3, (num_pred, 2))
    segments = np.sort(np.clip(base + jitter, 0, None), axis=1)
    predictions = AlignedPredictions(
        video=rng.integers(-1, num_videos, num_pred),
        label=rng.integers(num_classes, size=num_pred),
        segments=segments,
        scores=np.round(rng.uniform(0, 1, num_pred), 1),  # coarse: many ties
    )
    return gt, predictions


TIOUS = np.array([0.1, 0.3, 0.5, 0.7, 0.9])


@settings(max_examples=150, deadline=None)
@given(detection_problems())
def test_vectorised_scorer_equals_the_literal_reference_loop(problem):
    gt, predictions = problem
    fast = detection_map(gt, predictions, TIOUS)
    slow = reference_average_precision(gt, predictions, TIOUS)
    expected = np.array([slow[gt.class_index()[name]] for name in fast.classes])
    np.testing.assert_allclose(fast.ap, expected, rtol=0, atol=1e-12)
    assert ((fast.mean_ap >= 0) & (fast.mean_ap <= 1)).all()


@settings(max_examples=50, deadline=None)
@given(detection_problems())
def test_perfect_predictions_score_one(problem):
    gt, _ = problem
    perfect = AlignedPredictions(
        video=gt.event_video,
        label=gt.labels,
        segments=gt.segments.copy(),
        scores=np.linspace(1, 0.5, gt.num_events),
    )
    assert detection_map(gt, perfect, TIOUS).mean_ap == pytest.approx(np.ones(len(TIOUS)))


@settings(max_examples=50, deadline=None)
@given(detection_problems(), st.integers(0, 2**32 - 1))
def test_reordering_predictions_with_distinct_scores_changes_nothing(problem, seed):
    gt, predictions = problem
    scores = np.random.default_rng(seed).permutation(len(predictions.scores)) + 1.0
    distinct = AlignedPredictions(
        predictions.video, predictions.label, predictions.segments, scores
    )
    shuffle = np.random.default_rng(seed + 1).permutation(len(scores))
    shuffled = AlignedPredictions(
        distinct.video[shuffle],
        distinct.label[shuffle],
        distinct.segments[shuffle],
        distinct.scores[shuffle],
    )
    assert np.array_equal(
        detection_map(gt, distinct, TIOUS).ap, detection_map(gt, shuffled, TIOUS).ap
    )


@pytest.mark.parametrize("name", ["unav100", "thumos14"])
def test_shifted_real_ground_truth_scores_exactly_at_its_tiou(real_annotations, name):
    """Every event shifted by a quarter of its length has tIoU 0.75/1.25 = 0.6 with itself."""
    from delcli.data.benchmarks import BENCHMARKS

    gt = real_annotations[name].select_split(BENCHMARKS[name].default_split)
    length = gt.segments[:, 1] - gt.segments[:, 0]
    shifted = AlignedPredictions(
        video=gt.event_video,
        label=gt.labels,
        segments=gt.segments + (length / 4)[:, None],
        scores=np.linspace(1, 0.1, gt.num_events),
    )
    result = detection_map(gt, shifted, np.array([0.3, 0.5, 0.59, 0.61, 0.9]))
    assert result.mean_ap.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_negative_starts_are_scored_as_given_like_the_official_scorer(tmp_path):
    # [-5, 10] against [0, 10]: tIoU 10/15 = 0.67, a hit at 0.5 and a miss at 0.7;
    # clamping the start to 0 would make it a perfect hit at both
    report = _score(tmp_path, [("v1", 0, 10, "a")], [("v1", -5, 10, "a", 0.9)], (0.5, 0.7))
    assert report.result.mean_ap == pytest.approx([1.0, 0.0], abs=1e-12)
    assert report.counts["negative_start"] == 1
    assert any("1 predictions start before 0 s" in line for line in report.notes)


def test_negative_starts_match_the_literal_reference_loop(tmp_path):
    rng = np.random.default_rng(3)
    gt = [
        (f"v{i % 4}", s, s + rng.uniform(1, 20), "ab"[i % 2])
        for i, s in enumerate(rng.uniform(0, 30, size=24))
    ]
    starts = rng.uniform(-10, 30, size=80)
    rows = [
        (f"v{i % 4}", s, s + rng.uniform(0.5, 25), "ab"[i % 3 % 2], float(rng.uniform()))
        for i, s in enumerate(starts)
    ]
    gt_path = write_database(tmp_path / "gt.json", gt)
    preds_path = write_results(tmp_path / "p.json", rows)
    tious = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    report = score_predictions(preds_path, ground_truth=gt_path, split="test", tious=tious)
    assert report.counts["negative_start"] == int((starts < 0).sum()) > 0
    from delcli.data.formats import read_annotations

    truth = read_annotations(gt_path).select_split("test")
    aligned = align_predictions(truth, read_predictions(preds_path))
    slow = reference_average_precision(truth, aligned, tious)
    expected = np.array([slow[truth.class_index()[name]] for name in report.result.classes])
    np.testing.assert_allclose(report.result.ap, expected, rtol=0, atol=1e-12)
