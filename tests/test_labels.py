"""Your own labels: three formats read leniently, every bad row one line naming it,
seeded class-stratified splits (`delcli.data.labels`, `delcli.data.label_checks`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delcli.data.label_checks import (
    VideoFiles,
    assign_splits,
    check_labels,
    drop_untrained_classes,
    find_videos,
    parse_ratios,
    videos_from_list,
)
from delcli.data.labels import declared_classes, parse_time, read_labels
from delcli.errors import ConfigError, DataError

DURATIONS = {"a": 10.0, "b": 8.0, "c": 12.0, "d": 6.0}


def videos(names=DURATIONS) -> VideoFiles:
    files = VideoFiles({}, {}, "in clips")
    for name in names:
        path = Path(f"clips/{name}.mp4")
        files.paths[name] = path
        for key in (name, f"{name}.mp4", f"clips/{name}.mp4"):
            files.names[key] = name
    return files


def duration(path: Path) -> float:
    if path.stem == "broken":
        raise DataError("unreadable (no video or audio stream)")
    return DURATIONS[path.stem]


def checked_csv(tmp_path, text: str):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return check_labels(read_labels(path), videos(), duration)


def test_times_are_seconds_or_clock_readings():
    assert parse_time("12.5") == 12.5
    assert parse_time("01:02.5") == 62.5
    assert parse_time("01:00:02.250") == 3602.25
    for bad in ("", "abc", "1::2", "nan", "-1:00"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_csv_with_header_names_videos_with_or_without_extension(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na.mp4,1,2,dog\nb,00:00:01.5,3,cat\n")
    assert not checked.problems
    assert [(e.video, e.start, e.end, e.label) for e in checked.events] == [
        ("a", 1.0, 2.0, "dog"),
        ("b", 1.5, 3.0, "cat"),
    ]
    assert checked.classes == ["cat", "dog"]


def test_csv_without_header_and_with_a_split_column(tmp_path):
    checked = checked_csv(tmp_path, "a,1,2,dog,train\nb,1,2,dog,Validation\nc,1,2,dog,testing\n")
    assert checked.splits == {"a": "train", "b": "validation", "c": "test"}
    assert "labels" in checked.split_source


def test_unknown_video_is_dropped_with_its_row_named(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na,1,2,dog\nzebra.mp4,1,2,dog\n")
    assert checked.problems == [
        "labels.csv row 3: video 'zebra.mp4' is not a video in clips; row dropped"
    ]
    assert len(checked.events) == 1


def test_end_at_or_before_start_is_dropped(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na,3,2,dog\na,2,2,dog\na,1,2,dog\n")
    assert checked.problems == [
        "labels.csv row 2: end 2 s is not after start 3 s; row dropped",
        "labels.csv row 3: end 2 s is not after start 2 s; row dropped",
    ]
    assert len(checked.events) == 1


def test_end_beyond_the_video_is_clipped_and_kept(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\nd,4,9.5,dog\n")
    assert checked.problems == [
        "labels.csv row 2: ends at 9.5 s, after the video's end (6.00 s); kept, clipped to 6.00 s"
    ]
    assert (checked.events[0].start, checked.events[0].end) == (4.0, 6.0)


def test_event_starting_after_the_video_is_dropped(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\nd,7,9,dog\nd,1,2,dog\n")
    assert checked.problems == [
        "labels.csv row 2: starts at 7 s, after the video's end (6.00 s); row dropped"
    ]


def test_empty_label_is_dropped(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na,1,2,\na,1,2,dog\n")
    assert checked.problems == ["labels.csv row 2: empty label; row dropped"]


def test_unreadable_time_and_short_rows_are_dropped(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na,one,2,dog\na,1,2\na,1,2,dog\n")
    assert checked.problems == [
        "labels.csv row 2: start 'one' is not a time (seconds or hh:mm:ss.ms); row dropped",
        "labels.csv row 3: 3 column(s), expected video,start,end,label[,split]; row dropped",
    ]
    assert len(checked.events) == 1


def test_unreadable_video_drops_its_rows_once(tmp_path):
    files = videos([*DURATIONS, "broken"])
    path = tmp_path / "labels.csv"
    path.write_text("video,start,end,label\nbroken,1,2,dog\nbroken,3,4,dog\na,1,2,dog\n")
    checked = check_labels(read_labels(path), files, duration)
    assert checked.problems == [
        "video 'broken': unreadable (no video or audio stream); its rows dropped"
    ]
    assert [e.video for e in checked.events] == ["a"]


def test_class_without_a_training_example_is_dropped_and_named(tmp_path):
    checked = checked_csv(
        tmp_path,
        "video,start,end,label,split\na,1,2,dog,train\nb,1,2,dog,test\nb,3,4,owl,test\n"
        "c,1,2,owl,validation\n",
    )
    drop_untrained_classes(checked)
    assert checked.problems == [
        "class 'owl' has no training example (labels.csv row 4; labels.csv row 5); "
        "its 2 row(s) dropped"
    ]
    assert checked.classes == ["dog"]
    assert sorted(checked.durations) == ["a", "b"]  # c had only owl events


def test_activitynet_json_gives_rows_splits_and_its_class_order(tmp_path):
    path = tmp_path / "labels.json"
    database = {
        "a": {"subset": "training", "annotations": [{"segment": [1, 2], "label": "dog"}]},
        "b": {"subset": "validation", "annotations": [{"segment": [3, 2], "label": "cat"}]},
    }
    path.write_text(json.dumps({"classes": ["dog", "cat"], "database": database}))
    checked = check_labels(read_labels(path), videos(), duration)
    assert checked.splits == {"a": "train"}
    assert checked.problems == [
        "labels.json video 'b' annotation 0: end 2 s is not after start 3 s; row dropped"
    ]
    assert checked.declared_classes == ["dog", "cat"]


def test_a_folder_of_audacity_label_files(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "a.txt").write_text("1.000000\t2.500000\tdog bark\n\\\t20.0\t3000.0\n3\t4\tcat\n")
    (folder / "zebra.txt").write_text("1\t2\tdog bark\n")
    labels = read_labels(folder)
    assert labels.kind == "audacity"
    checked = check_labels(labels, videos(), duration)
    assert [(e.video, e.start, e.end, e.label) for e in checked.events] == [
        ("a", 1.0, 2.5, "dog bark"),
        ("a", 3.0, 4.0, "cat"),
    ]
    assert checked.problems == [
        "zebra.txt line 1: video 'zebra' is not a video in clips; row dropped"
    ]


def test_taxonomy_leaves_are_the_class_list():
    taxonomy = [
        {"nodeName": "Root", "parentName": None},
        {"nodeName": "Animals", "parentName": "Root"},
        {"nodeName": "dog", "parentName": "Animals"},
        {"nodeName": "cat", "parentName": "Animals"},
    ]
    assert declared_classes({"taxonomy": taxonomy}) == ["dog", "cat"]
    assert declared_classes({"database": {}}) is None


def test_split_is_seeded_stratified_and_repeatable(tmp_path):
    names = {f"v{i:02d}": 10.0 for i in range(40)}
    files = videos(names)
    rows = ["video,start,end,label"] + [
        f"v{i:02d},1,2,{'dog' if i % 4 else 'owl'}" for i in range(40)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")

    def split(seed):
        checked = check_labels(read_labels(tmp_path / "labels.csv"), files, lambda p: 10.0)
        assign_splits(checked, (0.8, 0.1, 0.1), seed)
        return checked

    first, again, other = split(0), split(0), split(1)
    assert first.splits == again.splits
    assert first.splits != other.splits
    counts = {s: list(first.splits.values()).count(s) for s in ("train", "validation", "test")}
    assert counts == {"train": 32, "validation": 4, "test": 4}
    owls = [first.splits[f"v{i:02d}"] for i in range(0, 40, 4)]  # the rare class: 10 videos
    assert owls.count("train") == 8 and owls.count("test") == 1 and owls.count("validation") == 1


def test_tiny_data_still_gets_a_validation_and_a_test_video(tmp_path):
    checked = checked_csv(tmp_path, "video,start,end,label\na,1,2,dog\nb,1,2,dog\nc,1,2,dog\n")
    assign_splits(checked, (0.8, 0.1, 0.1), 0)
    assert sorted(checked.splits.values()) == ["test", "train", "validation"]


def test_split_ratios_are_checked():
    assert parse_ratios("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("0.8,0.2", "a,b,c", "0,0.5,0.5", "0.8,-0.1,0.3"):
        with pytest.raises(ConfigError, match="--split-ratios"):
            parse_ratios(bad)


def test_video_folder_is_searched_recursively_and_names_resolve(tmp_path):
    (tmp_path / "day1").mkdir()
    (tmp_path / "day1" / "clip.MP4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    found = find_videos(tmp_path)
    assert list(found.paths) == ["clip"]
    for name in ("clip", "clip.MP4", "day1/clip", "day1/clip.MP4", "./day1/clip"):
        assert found.resolve(name) == "clip"
    with pytest.raises(ConfigError, match="no video files"):
        find_videos(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_label_file_problems_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_labels(empty)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("clip,begin,finish,class\n")
    with pytest.raises(DataError, match="video,start,end,label"):
        read_labels(wrong)
    with pytest.raises(DataError, match="no such file"):
        read_labels(tmp_path / "missing.csv")


def test_a_video_list_names_its_files_by_path_name_or_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    found = videos_from_list(Path("list.txt"), ["clips/a.mp4"])
    assert found.paths == {"a": Path("clips/a.mp4")}
    assert {found.resolve(name) for name in ("a", "a.mp4", "clips/a.mp4", "clips/a")} == {"a"}
    with pytest.raises(ConfigError, match=r"no such video file 'clips/b\.mp4'"):
        videos_from_list(Path("list.txt"), ["clips/a.mp4", "clips/b.mp4"])
