"""`del predict --format srt|vtt|audacity`: events as subtitles and label tracks."""

from __future__ import annotations

import shutil

from delcli.cli.app import main
from delcli.data.labels import read_labels
from delcli.inference.captions import caption_cues, render_audacity, render_srt, render_vtt
from delcli.inference.video import Event
from delcli.resources import resource_path

EVENTS = [
    Event(0.5, 2.0, "dog", 0.9),
    Event(1.5, 3.25, "bell", 0.6),  # overlaps the dog: one cue for both
    Event(3661.0, 3662.5, "car", 0.75),
]


def test_overlapping_events_share_one_cue_listed_by_score():
    cues = caption_cues(EVENTS)
    assert [(start, end, [e.label for e in shown]) for start, end, shown in cues] == [
        (0.5, 3.25, ["dog", "bell"]),
        (3661.0, 3662.5, ["car"]),
    ]


def test_srt_numbers_cues_with_comma_milliseconds():
    assert render_srt(EVENTS) == (
        "1\n00:00:00,500 --> 00:00:03,250\ndog (0.90) 0.5–2.0 s\nbell (0.60) 1.5–3.2 s\n\n"
        "2\n01:01:01,000 --> 01:01:02,500\ncar (0.75)\n"
    )


def test_vtt_has_its_header_and_dot_milliseconds():
    assert render_vtt(EVENTS[2:], title="clip") == (
        "WEBVTT - clip\n\n01:01:01.000 --> 01:01:02.500\ncar (0.75)\n"
    )
    assert render_vtt([]) == "WEBVTT\n"


def test_an_audacity_track_reads_back_as_training_labels(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "clip.txt").write_text(render_audacity(EVENTS))
    rows = read_labels(folder).rows
    assert [(r.video, r.start, r.end, r.label) for r in rows] == [
        ("clip", 0.5, 2.0, "dog"),
        ("clip", 1.5, 3.25, "bell"),
        ("clip", 3661.0, 3662.5, "car"),
    ]


def test_several_videos_need_an_output_folder(tmp_path, capsys):
    first = tmp_path / "a.mp4"
    shutil.copy(resource_path("demo/demo.mp4"), first)
    shutil.copy(first, tmp_path / "b.mp4")
    code = main(["predict", str(first), str(tmp_path / "b.mp4"), "--format", "srt"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "del: error: --format srt writes one file per video: give --output DIR for 2 videos "
        "(one <video>.srt each)"
    )


def test_the_demo_as_subtitles_in_a_folder(tmp_path, capsys):
    out = tmp_path / "subs"
    assert main(["predict", "--demo", "--format", "vtt", "--output", str(out)]) == 0
    written = (out / "demo.vtt").read_text()
    assert written.startswith("WEBVTT - demo\n\n00:00:")
    assert " --> " in written
