"""A file without an audio (or a video) stream: its features for that stream are zeros,
which `del extract` and `del predict` say on stderr and `features.json` records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delcli.cli.app import main
from delcli.synth.video import SynthVideoConfig
from delcli.synth.video.edge_cases import edge_plan
from delcli.synth.video.mp4 import write_video


@pytest.fixture(scope="module")
def one_stream_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("streams")
    config = SynthVideoConfig(videos=1, seed=3, width=64, height=48)
    paths = {name: folder / f"{name}.mp4" for name in ("silent", "sound_only", "both")}
    write_video(paths["silent"], edge_plan(1.5), config, audio=False)
    write_video(paths["sound_only"], edge_plan(1.5), config, video=False)
    write_video(paths["both"], edge_plan(1.5), config)
    return paths


def test_extract_notes_a_missing_stream_and_records_it_per_video(
    tmp_path, one_stream_videos, capsys
):
    out = tmp_path / "features"
    videos = [str(p) for p in one_stream_videos.values()]
    code = main(["extract", *videos, "--out", str(out), "-e", "basic", "--grid", "basic"])
    assert code == 0
    err = capsys.readouterr().err
    assert "silent has no audio stream: its audio features are zeros" in err
    assert "sound_only has no video stream: its visual features are zeros" in err
    assert "both has" not in err
    recorded = json.loads((out / "features.json").read_text())["videos"]
    assert {video: recorded[video]["missing_streams"] for video in recorded} == {
        "silent": ["audio"],
        "sound_only": ["visual"],
        "both": [],
    }


def test_predict_notes_a_missing_stream(one_stream_videos, capsys):
    silent = one_stream_videos["silent"]
    assert main(["predict", str(silent), "--weights", "demo", "-f", "jsonl"]) == 0
    err = capsys.readouterr().err
    assert f"{silent} has no audio stream: its audio features are zeros" in err
