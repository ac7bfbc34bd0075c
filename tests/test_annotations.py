"""Ground-truth readers on the four benchmarks' real files and on hand-made ones."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from delcli.data.annotations import canonical_split
from delcli.data.formats import read_annotations
from delcli.errors import DataError


def test_unav100_parses_with_the_published_counts(real_annotations):
    unav = real_annotations["unav100"]
    assert (unav.num_videos, unav.num_events, len(unav.classes)) == (10_790, 30_059, 100)
    assert {s: unav.subsets.count(s) for s in unav.split_names()} == {
        "train": 6_489,
        "validation": 2_134,
        "test": 2_167,
    }


def test_unav100_quirks_survive_parsing(real_annotations):
    unav = real_annotations["unav100"]
    assert "playing base guitar" in unav.classes
    dashed = [v for v in unav.video_ids if v[0] in "-_"]
    assert dashed and all(unav.find_video(v) >= 0 for v in dashed)
    # classes follow the file's label_id order
    assert unav.classes[unav.labels[0]] == "skateboarding"
    assert unav.class_index()["skateboarding"] == 36


def test_thumos14_parses_with_the_published_counts(real_annotations):
    thumos = real_annotations["thumos14"]
    assert (thumos.num_videos, len(thumos.classes)) == (412, 20)
    assert {s: thumos.subsets.count(s) for s in thumos.split_names()} == {
        "validation": 200,
        "test": 212,
    }
    assert thumos.select_split("Test").num_videos == 212


def test_activitynet_bsn_files_parse_with_subsets_from_the_csv(real_annotations):
    anet = real_annotations["anet13"]
    assert (anet.num_videos, anet.num_events, len(anet.classes)) == (19_228, 22_152, 200)
    assert anet.select_split("validation").num_videos == 4_728
    assert anet.classes[:2] == ["Applying sunscreen", "Arm wrestling"]  # action_name.csv order


def test_activitynet_ids_match_with_or_without_the_v_prefix(real_annotations):
    anet = real_annotations["anet13"]
    assert anet.find_video("v_QOlSCBRmfWY") == anet.find_video("QOlSCBRmfWY") >= 0
    assert anet.find_video("not-a-video") == -1


@pytest.mark.parametrize(
    ("name", "classes", "with_events"),
    [
        ("epic100-verb", 97, 78),
        ("epic100-noun", 300, 211),
    ],
)
def test_epic_kitchens_csv_parses_as_verb_and_noun_tasks(
    real_annotations, name, classes, with_events
):
    epic = real_annotations[name]
    assert (epic.num_videos, epic.num_events, len(epic.classes)) == (138, 9_668, classes)
    assert len(np.unique(epic.labels)) == with_events
    assert epic.split_names() == ["validation"]
    assert np.isfinite(epic.durations).all()
    first = epic.segments[0]
    assert first == pytest.approx([0.0, 1.89])  # 00:00:00.00 → 00:00:01.89


def test_cleaning_drops_zero_length_and_duplicate_events(real_annotations):
    anet = real_annotations["anet13"]
    cleaned, zero, duplicate = anet.without_degenerate_events()
    assert zero == 12
    assert cleaned.num_events == anet.num_events - zero - duplicate
    assert (cleaned.segments[:, 1] > cleaned.segments[:, 0]).all()


def test_split_names_fold_to_one_spelling():
    assert [canonical_split(s) for s in ("Test", "testing", "val", "Validation", "training")] == [
        "test",
        "test",
        "validation",
        "validation",
        "train",
    ]


def test_unknown_split_names_the_available_ones(real_annotations):
    with pytest.raises(DataError, match=r"no videos in split 'dev' \(splits here: test, train"):
        real_annotations["unav100"].select_split("dev")


def test_gzip_and_plain_json_read_alike(tmp_path):
    data = {
        "database": {
            "a": {
                "subset": "test",
                "duration": 5,
                "annotations": [{"segment": [1, 2], "label": "x"}],
            }
        }
    }
    plain, packed = tmp_path / "gt.json", tmp_path / "gt.json.gz"
    plain.write_text(json.dumps(data))
    packed.write_bytes(gzip.compress(json.dumps(data).encode()))
    one, two = read_annotations(plain), read_annotations(packed)
    assert one.video_ids == two.video_ids == ["a"]
    assert np.array_equal(one.segments, two.segments)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        ('{"database": {"a": {"subset": "test", "duration": -3}}}', "'duration' is negative"),
        ('{"database": {"a": {"subset": "test", "duration": "x"}}}', "'duration' must be a num"),
        ('{"database": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"something": 1}', "unrecognised annotation format"),
        ('{"database": {"a": {"duration": 3}}}', "video 'a': missing 'subset'"),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"label": "x"}]}}}',
            "annotation 0: missing 'segment'",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [3, 1], '
            '"label": "x"}]}}}',
            "ends before it starts",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [1], '
            '"label": "x"}]}}}',
            r"must be \[start, end\]",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [0, true], '
            '"label": "x"}]}}}',
            r"must be \[start, end\]",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": ["1", 2], '
            '"label": "x"}]}}}',
            r"must be \[start, end\]",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [0, NaN], '
            '"label": "x"}]}}}',
            "is not finite",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [0, Infinity], '
            '"label": "x"}]}}}',
            "is not finite",
        ),
        (
            '{"database": {"a": {"subset": "test", "annotations": [{"segment": [0, 1'
            + "0" * 400
            + '], "label": "x"}]}}}',
            "is not finite",
        ),
    ],
)
def test_malformed_annotations_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "gt.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_annotations(path)


def test_missing_annotation_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_annotations(tmp_path / "absent.json")


def test_epic_csv_without_a_task_asks_for_one(tmp_path):
    path = tmp_path / "EPIC_100_validation.csv"
    path.write_text("narration_id,video_id,start_timestamp,stop_timestamp,verb_class\n")
    with pytest.raises(DataError, match="epic100-verb or epic100-noun"):
        read_annotations(path)


def test_epic_video_info_with_a_bad_duration_names_the_row(tmp_path):
    path = tmp_path / "EPIC_100_validation.csv"
    path.write_text(
        "narration_id,video_id,start_timestamp,stop_timestamp,verb_class\n"
        "P01_11_0,P01_11,00:00:00.00,00:00:01.89,3\n"
    )
    (tmp_path / "EPIC_100_video_info.csv").write_text("video_id,duration\nP01_11,long\n")
    with pytest.raises(DataError, match=r"EPIC_100_video_info.csv: row 2: 'duration' must be"):
        read_annotations(path, epic_task="verb")


def test_a_zero_duration_reads_as_no_duration(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text('{"database": {"a": {"subset": "test", "duration": 0}}}')
    assert np.isnan(read_annotations(path).durations[0])
