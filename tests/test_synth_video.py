"""`del data synth-video`: synthetic mp4 files whose content matches their ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from delcli.cli import app as cli_app
from delcli.cli import data_cmd
from delcli.data.formats import read_annotations
from delcli.errors import ConfigError
from delcli.io import iter_frames, probe, read_audio
from delcli.synth.video import CLASSES, EDGE_CASES, SynthVideoConfig, write_synth_videos
from delcli.synth.video.mp4 import write_video
from delcli.synth.video.render import COLOURS
from delcli.synth.video.timeline import MAX_CONCURRENT, Event, VideoPlan, plan_videos

SMALL = SynthVideoConfig(videos=3, seed=0, min_duration=3.0, max_duration=4.0, width=64, height=48)
FPS = 25


def run(capsys, *args: str) -> tuple[int, str, str]:
    """`del ARGS` through the real entry point, with `del data` registered."""
    if not any(group.name == "data" for group in cli_app.app.registered_groups):
        data_cmd.register(cli_app.app)
    code = cli_app.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def contents(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# -- the timeline ----------------------------------------------------------------------------


def test_plans_respect_the_timeline_rules():
    config = SynthVideoConfig(videos=200, seed=3)
    plans = plan_videos(config)
    assert {p.subset for p in plans} == {"train", "validation", "test"}
    events = [e for p in plans for e in p.events]
    assert {e.label for e in events} == set(range(len(CLASSES)))
    for plan in plans:
        assert config.min_duration - 0.04 <= plan.duration <= config.max_duration + 0.04
        assert 1 <= len(plan.events) <= 5
        for event in plan.events:
            assert 0 <= event.start < event.end <= plan.duration
            assert 1.0 - 0.05 <= event.end - event.start <= 6.0 + 0.05
            assert round(event.start * FPS, 6) == round(event.start * FPS)  # on frame times
            active = [e for e in plan.events if e.start <= event.start < e.end]
            assert len(active) <= MAX_CONCURRENT
            assert sum(e.label == event.label for e in active) == 1
    overlapping = sum(
        any(o is not e and o.start < e.end and e.start < o.end for o in p.events)
        for p in plans
        for e in p.events
    )
    assert 0.1 < overlapping / len(events) < 0.6
    evidence = {CLASSES[e.label].evidence for e in events}
    assert evidence == {"audio", "visual", "audio-visual"}


def test_each_video_depends_only_on_the_seed_and_its_index():
    few = plan_videos(SynthVideoConfig(videos=4, seed=5))
    many = plan_videos(SynthVideoConfig(videos=9, seed=5))
    assert [p.events for p in few] == [p.events for p in many[:4]]
    assert few[0].events != plan_videos(SynthVideoConfig(videos=4, seed=6))[0].events


# -- the rendered content matches the ground truth -------------------------------------------


@pytest.fixture(scope="module")
def every_class(tmp_path_factory) -> tuple[Path, VideoPlan]:
    """One 64x48 video with every class once, 1.2 s each, in two overlapping lanes."""
    events = tuple(
        Event(0.2 + 0.9 * label, 0.2 + 0.9 * label + 1.2, label, 0.3, 0.4)
        for label in range(len(CLASSES))
    )
    plan = VideoPlan(7, "synv_every", "test", 8.8, events)
    path = tmp_path_factory.mktemp("every") / "every.mp4"
    write_video(path, plan, SMALL)
    return path, plan


def colour_share(frames: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(T,) share of pixels within 60 of `colour` (RGB distance)."""
    distance = np.linalg.norm(frames.astype(np.float32) - np.array(colour, np.float32), axis=-1)
    return (distance < 60).mean(axis=(1, 2))


@pytest.mark.parametrize("label", [i for i, c in enumerate(CLASSES) if c.visual])
def test_visual_classes_show_their_colour_inside_their_events_only(every_class, label):
    path, plan = every_class
    frames = np.stack(list(iter_frames(path, FPS)))
    share = colour_share(frames, COLOURS[CLASSES[label].visual])
    times = np.arange(len(frames)) / FPS
    event = plan.events[label]
    inside = (times >= event.start + 0.05) & (times < event.end - 0.05)
    outside = (times < event.start - 0.05) | (times >= event.end + 0.05)
    assert share[inside].mean() > 0.04
    assert share[outside].max() < 0.005


def band_rms(audio: np.ndarray, lo_hz: float, hi_hz: float, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size))) ** 2
    frequencies = np.fft.rfftfreq(audio.size, 1 / rate)
    return float(np.sqrt(spectrum[(frequencies >= lo_hz) & (frequencies < hi_hz)].sum()))


SIGNATURE_BANDS = {  # where each sound has its energy
    "tone_440": (420, 460),
    "chirp": (600, 2800),
    "clicks": (1500, 6000),
    "noise_bursts": (3000, 7000),
    "alarm": (860, 1340),
    "hum_200": (190, 210),
}


@pytest.mark.parametrize("label", [i for i, c in enumerate(CLASSES) if c.audio])
def test_audio_classes_sound_in_their_band_inside_their_events_only(every_class, label):
    path, plan = every_class
    audio = read_audio(path)
    event = plan.events[label]
    lo, hi = SIGNATURE_BANDS[CLASSES[label].audio]

    def energy(start: float, end: float) -> float:
        return band_rms(audio[round(start * 16000) : round(end * 16000)], lo, hi)

    # the same length of audio just before the event (1.1 s, no class there with that band)
    inside = energy(event.start + 0.05, event.end - 0.05)
    quiet = [energy(s, s + 1.1) for s in (0.0, 7.6) if s + 1.1 <= event.start or s >= event.end]
    assert inside > 10 * max(quiet)


def test_visual_only_classes_are_silent_and_audio_only_classes_invisible(every_class):
    path, _ = every_class
    assert CLASSES[1].audio is None and CLASSES[2].visual is None
    frames = np.stack(list(iter_frames(path, FPS)))
    shares = sum(colour_share(frames, colour) for colour in COLOURS.values())
    assert shares[: round(0.2 * FPS)].max() < 0.005  # before the first event: only background


# -- the folder and the command --------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-video") / "small"
    return write_synth_videos(out, SMALL)


def test_folder_holds_the_videos_and_readable_ground_truth(small):
    annotations = read_annotations(small.folder / "annotations.json")
    assert annotations.video_ids == [p.video_id for p in small.plans]
    assert annotations.classes == [c.name for c in CLASSES] or set(annotations.classes) <= {
        c.name for c in CLASSES
    }
    raw = json.loads((small.folder / "annotations.json").read_text())["database"]
    for plan in small.plans:
        info = probe(small.folder / "videos" / f"{plan.video_id}.mp4")
        assert info.duration == pytest.approx(plan.duration, abs=0.07)
        assert (info.video.width, info.video.height, info.video.fps) == (64, 48, 25)
        assert info.audio.sample_rate == 16000
        entry = raw[plan.video_id]
        assert entry["fps"] == 25 and entry["duration"] == plan.duration
        assert [a["label_id"] for a in entry["annotations"]] == [e.label for e in plan.events]


def test_same_seed_writes_identical_files_and_another_seed_differs(tmp_path, small):
    again = write_synth_videos(tmp_path / "again", SMALL)
    assert contents(again.folder) == contents(small.folder)
    other = write_synth_videos(tmp_path / "other", SynthVideoConfig(**{**vars(SMALL), "seed": 1}))
    assert contents(other.folder)["annotations.json"] != contents(small.folder)["annotations.json"]


def test_rerun_resumes_and_then_skips(tmp_path):
    first = write_synth_videos(tmp_path / "d", SMALL)
    victim = first.folder / "videos" / f"{first.plans[1].video_id}.mp4"
    victim.unlink()
    resumed = write_synth_videos(tmp_path / "d", SMALL)
    assert (resumed.written, resumed.skipped) == (1, False) and victim.exists()
    assert write_synth_videos(tmp_path / "d", SMALL).skipped


def test_cli_writes_the_folder_and_refuses_other_settings_without_force(capsys, tmp_path):
    out = str(tmp_path / "v")
    args = (
        "data",
        "synth-video",
        out,
        "--videos",
        "2",
        "--duration-range",
        "2:3",
        "--size",
        "64x48",
    )
    code, table, _ = run(capsys, *args)
    assert code == 0 and "red-square+tone-440" in table and "s per video-minute" in table
    assert len(list((tmp_path / "v" / "videos").glob("*.mp4"))) == 2
    code, text, err = run(capsys, *args, "--format", "json")
    assert code == 0 and json.loads(text)["skipped"] and "already complete" in " ".join(err.split())
    code, out_text, err = run(capsys, *args, "--seed", "1")
    assert (code, out_text) == (2, "") and err.count("\n") == 1 and "--force" in err
    assert run(capsys, *args, "--seed", "1", "--force")[0] == 0


def test_cli_edge_cases_are_written(capsys, tmp_path):
    out = tmp_path / "v"
    code, _, _ = run(
        capsys, "data", "synth-video", str(out), "--videos", "1", "--duration-range", "1:1",
        "--size", "64x48", "--edge-cases", "-f", "json",
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (out / "edge_cases").glob("*.mp4")) == sorted(EDGE_CASES)
    described = json.loads((out / "edge_cases" / "edge_cases.json").read_text())["files"]
    assert set(described) == set(EDGE_CASES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration-range", "5"], "--duration-range '5'"),
        (["--duration-range", "9:3"], "need 0.5 <= MIN <= MAX"),
        (["--size", "10x10"], "need 16x16 to 3840x3840"),
        (["--size", "100000x100000"], "need 16x16 to 3840x3840"),  # was a MemoryError
        (["--duration-range", "1e9:1e9"], "need 0.5 <= MIN <= MAX <= 10800"),  # ran forever
        (["--videos", "0"], "--videos 0"),
    ],
)
def test_cli_bad_options_exit_2_with_one_line(capsys, tmp_path, args, message):
    code, out, err = run(capsys, "data", "synth-video", str(tmp_path / "v"), *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_a_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        write_synth_videos(tmp_path, SMALL)
