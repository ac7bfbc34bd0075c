"""`delcli.io`: probing, constant-rate frames, audio, and the one-line errors for bad files."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from delcli.errors import ConfigError, DataError
from delcli.io import MediaError, audio_blocks, frame_batches, iter_frames, probe, read_audio
from delcli.io.video import frame_count, short_side_resize
from delcli.synth.video import EDGE_CASES, SynthVideoConfig, write_edge_cases

WIDTH, HEIGHT, FPS, SECONDS = 64, 48, 25, 3.0
BITS = 8  # frame index encoded as 8 black/white vertical stripes (survives H.264)
TONE = (1.0, 2.0)  # seconds of a 440 Hz tone in the test clips


def stripes(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    band = width // BITS
    for bit in range(BITS):
        if index >> bit & 1:
            image[:, bit * band : (bit + 1) * band] = 255
    return image


def read_index(image: np.ndarray) -> int:
    band = image.shape[1] // BITS
    levels = [image[:, b * band + 2 : (b + 1) * band - 2].mean() for b in range(BITS)]
    return sum(1 << b for b, level in enumerate(levels) if level > 128)


def tone(sample_rate: int, channels: int, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = np.where((t >= TONE[0]) & (t < TONE[1]), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    return np.repeat(wave[None].astype(np.float32), channels, axis=0)


def write_clip(
    path: Path,
    frame_times: list[float] | None,
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
    rotation: int = 0,
    faststart: bool = True,
    marker: bool = False,
) -> Path:
    """An mp4 whose frame i shows `stripes(i)` at `frame_times[i]` (and, with `marker`,
    a grey block in the coded top-left corner), plus `audio` (channels, samples)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        if frame_times is not None:
            video = container.add_stream("libx264", rate=FPS)
            video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            video.options = {"crf": "18", "preset": "veryfast"}
            video.codec_context.thread_count = 1
            video.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                video.set_display_rotation(-rotation)
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "stereo" if audio.shape[0] == 2 else "mono"
        for i, t in enumerate(frame_times or []):
            image = stripes(i)
            if marker:
                image[:8, :8] = 128
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        if frame_times is not None:
            container.mux(video.encode(None))
        if audio is not None:
            for start in range(0, audio.shape[1], 1024):
                chunk = np.ascontiguousarray(audio[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=sound.layout.name)
                frame.sample_rate, frame.pts = sample_rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def constant_times(seconds: float = SECONDS, fps: float = FPS) -> list[float]:
    return [i / fps for i in range(round(seconds * fps))]


VFR_STEPS = [0.02, 0.04, 0.06]  # seconds between frames, cycling


def vfr_times(seconds: float = SECONDS) -> list[float]:
    times, t = [], 0.0
    while t < seconds - 1e-9:
        times.append(round(t, 3))
        t += VFR_STEPS[len(times) % 3]
    return times


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "cfr": write_clip(folder / "cfr.mp4", constant_times(), tone(44100, 2)),
        "vfr": write_clip(folder / "vfr.mp4", vfr_times()),
        "rotated": write_clip(folder / "rotated.mp4", constant_times(), rotation=90, marker=True),
        "no_audio": write_clip(folder / "no_audio.mp4", constant_times()),
        "audio_only": write_clip(folder / "audio_only.mp4", None, tone(16000, 1), 16000),
        # video stops at 2.5 s, audio goes on to 3 s: a clean early end, not damage
        "short_video": write_clip(
            folder / "short_video.mp4", constant_times(2.5), tone(16000, 1), 16000
        ),
    }


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("edge") / "edge_cases"
    write_edge_cases(folder, SynthVideoConfig(width=64, height=48))
    return folder


# -- probe -----------------------------------------------------------------------------------


def test_probe_reports_duration_streams_and_rates(clips):
    info = probe(clips["cfr"])
    assert info.duration == pytest.approx(SECONDS, abs=0.03)
    video = info.video
    assert (video.width, video.height, video.rotation, video.frames) == (64, 48, 0, 75)
    assert video.fps == pytest.approx(25) and not video.variable_frame_rate
    assert (info.audio.sample_rate, info.audio.channels) == (44100, 2)
    assert probe(clips["vfr"]).video.variable_frame_rate
    assert probe(clips["no_audio"]).audio is None
    assert probe(clips["audio_only"]).video is None


def test_probe_gives_displayed_size_and_clockwise_rotation(clips):
    video = probe(clips["rotated"]).video
    assert (video.width, video.height, video.rotation) == (48, 64, 90)


@pytest.mark.parametrize(
    ("name", "duration", "video", "audio", "extra"),
    [
        ("no_audio.mp4", 4.0, (64, 48), False, {}),
        ("audio_only.mp4", 4.0, None, True, {}),
        ("variable_frame_rate.mp4", 4.0, (64, 48), True, {"variable_frame_rate": True}),
        ("odd_size.mp4", 4.0, (161, 97), True, {}),
        ("very_short.mp4", 0.6, (64, 48), True, {"frames": 15}),
        ("rotated.mp4", 4.0, (120, 160), True, {"rotation": 90}),
        ("broken_audio.mp4", 4.0, (64, 48), True, {}),
    ],
)
def test_probe_of_each_edge_case(edge_cases, name, duration, video, audio, extra):
    info = probe(edge_cases / name)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert (info.audio is not None) == audio
    if video is None:
        assert info.video is None
    else:
        assert (info.video.width, info.video.height) == video
        assert info.video.variable_frame_rate == extra.get("variable_frame_rate", False)
        for key, value in extra.items():
            assert getattr(info.video, key) == value


def test_every_edge_case_file_is_written_and_described(edge_cases):
    assert sorted(p.name for p in edge_cases.glob("*.mp4")) == sorted(EDGE_CASES)
    assert (edge_cases / "edge_cases.json").exists()


def bad_file(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.mp4"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video\n" * 20)
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty file"),
        ("text", "not a media file"),
        ("random", "not a media file"),
    ],
)
def test_unreadable_paths_are_one_line_media_errors(tmp_path, kind, message):
    path = bad_file(tmp_path, kind)
    for call in (probe, read_audio, lambda p: next(iter_frames(p, 25))):
        with pytest.raises(MediaError) as error:
            call(path)
        text = str(error.value)
        assert text.startswith(str(path)) and message in text and "\n" not in text
    assert issubclass(MediaError, DataError)


@pytest.mark.parametrize("name", ["truncated.mp4", "truncated_no_index.mp4"])
def test_truncated_files_are_reported_by_probe(edge_cases, name):
    with pytest.raises(MediaError, match=r"truncated"):
        probe(edge_cases / name)


def test_no_video_stream_is_a_media_error_and_no_audio_stream_is_none(clips):
    with pytest.raises(MediaError, match="no video stream"):
        next(iter_frames(clips["audio_only"], 25))
    assert read_audio(clips["no_audio"]) is None


# -- frames ----------------------------------------------------------------------------------


def decoded_indices(path: Path, fps: float, **options) -> list[int]:
    return [read_index(frame) for frame in iter_frames(path, fps, **options)]


@pytest.mark.parametrize("fps", [25, 10, 7.5, 60])
def test_frame_k_shows_time_k_over_fps(clips, fps):
    indices = decoded_indices(clips["cfr"], fps)
    assert len(indices) == math.floor(SECONDS * fps)
    assert indices == [math.floor(k / fps * FPS + 1e-9) for k in range(len(indices))]


@pytest.mark.parametrize("fps", [25, 12, 50])
def test_variable_frame_rate_is_resampled_by_timestamps(clips, fps):
    times = vfr_times()
    duration = probe(clips["vfr"]).duration
    indices = decoded_indices(clips["vfr"], fps)
    assert len(indices) == math.floor(duration * fps + 1e-6)
    expected = [
        max(i for i, t in enumerate(times) if t <= k / fps + 1e-6) for k in range(len(indices))
    ]
    assert indices == expected


def test_start_and_end_select_a_window(clips):
    indices = decoded_indices(clips["cfr"], 10, start=1.0, end=2.0)
    assert indices == [math.floor((1.0 + k / 10) * FPS + 1e-9) for k in range(10)]
    assert decoded_indices(clips["cfr"], 25, start=2.0, end=2.0) == []


def test_a_video_stream_that_ends_early_holds_its_last_frame(clips):
    indices = decoded_indices(clips["short_video"], 25)
    assert len(indices) == 75  # the container lasts 3 s (its audio)
    assert indices[:62] == list(range(62)) and set(indices[61:]) == {61}


def test_short_side_resize_then_centre_crop(clips):
    frames = list(iter_frames(clips["cfr"], 5, size=32))
    assert {f.shape for f in frames} == {(32, 43, 3)} and frames[0].dtype == np.uint8
    assert next(iter_frames(clips["cfr"], 5, size=32, crop=24)).shape == (24, 24, 3)
    assert next(iter_frames(clips["cfr"], 5, crop=40)).shape == (40, 40, 3)
    with pytest.raises(ConfigError, match="crop 40 is larger"):
        next(iter_frames(clips["cfr"], 5, size=32, crop=40))


def test_rotation_metadata_is_applied(clips):
    frame = next(iter_frames(clips["rotated"], 25))
    assert frame.shape == (64, 48, 3)
    # turned clockwise, the coded top-left marker ends at the top right
    assert abs(int(frame[:6, -6:].mean()) - 128) < 20
    assert frame[-6:, :6].mean() < 20 or frame[-6:, :6].mean() > 235
    assert next(iter_frames(clips["rotated"], 25, size=24)).shape == (32, 24, 3)


def test_frame_batches_are_chunks_of_iter_frames(clips):
    batches = list(frame_batches(clips["cfr"], 25, size=24, batch=32))
    assert [b.shape for b in batches] == [(32, 24, 32, 3), (32, 24, 32, 3), (11, 24, 32, 3)]
    reference = np.stack(list(iter_frames(clips["cfr"], 25, size=24)))
    assert np.array_equal(np.concatenate(batches), reference)


def test_truncated_file_yields_what_decodes_then_raises(edge_cases):
    frames = []
    with pytest.raises(MediaError, match=r"truncated \(decoded \d\.\d of 4\.0 s"):
        for frame in iter_frames(edge_cases / "truncated.mp4", 25):
            frames.append(frame)
    assert 10 < len(frames) < 75


def test_variable_frame_rate_edge_case_gives_floor_of_duration_times_fps(edge_cases):
    path = edge_cases / "variable_frame_rate.mp4"
    assert len(list(iter_frames(path, 25))) == frame_count(probe(path).duration, 25)


@pytest.mark.parametrize(
    "options",
    [{"fps": 0}, {"fps": 25, "size": 0}, {"fps": 25, "start": 2.0, "end": 1.0}],
)
def test_bad_options_are_config_errors(clips, options):
    with pytest.raises(ConfigError):
        next(iter_frames(clips["cfr"], **options))


def test_an_end_past_the_duration_is_a_media_error(clips):
    with pytest.raises(MediaError, match="past the end"):
        next(iter_frames(clips["cfr"], 25, end=10.0))


@given(width=st.integers(1, 4000), height=st.integers(1, 4000), size=st.integers(1, 512))
def test_short_side_resize_hits_the_size_and_keeps_the_aspect(width, height, size):
    new_width, new_height = short_side_resize(width, height, size)
    assert min(new_width, new_height) == size
    assert abs(new_width / new_height - width / height) <= width / height / size + 1e-9


# -- audio -----------------------------------------------------------------------------------


def band_energy(audio: np.ndarray, rate: int, lo: float, hi: float) -> tuple[float, float]:
    """(peak frequency, RMS) of `audio[lo:hi]` seconds."""
    part = audio[round(lo * rate) : round(hi * rate)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(part.size)))
    return float(np.argmax(spectrum) * rate / part.size), float(np.sqrt(np.mean(part**2)))


@pytest.mark.parametrize("rate", [16000, 22050, 8000])
def test_audio_is_mono_at_the_rate_with_the_exact_length(clips, rate):
    audio = read_audio(clips["cfr"], sample_rate=rate)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == round(probe(clips["cfr"]).duration * rate)
    assert np.abs(audio).max() <= 1.0


@pytest.mark.parametrize(("start", "end"), [(0.0, None), (0.5, 2.5), (1.25, 1.75), (2.9, None)])
def test_audio_windows_have_the_exact_length(clips, start, end):
    duration = probe(clips["cfr"]).duration
    audio = read_audio(clips["cfr"], 16000, start=start, end=end)
    assert audio.size == round(((end if end is not None else duration) - start) * 16000)


def test_a_440_hz_tone_is_where_it_was_put(clips):
    audio = read_audio(clips["cfr"])  # 44.1 kHz stereo → 16 kHz mono
    peak, rms = band_energy(audio, 16000, TONE[0] + 0.05, TONE[1] - 0.05)
    assert peak == pytest.approx(440, abs=3)
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.1)  # channel mean keeps the level
    assert band_energy(audio, 16000, 0.0, TONE[0] - 0.05)[1] < 0.01
    assert band_energy(audio, 16000, TONE[1] + 0.05, SECONDS)[1] < 0.01
    window = read_audio(clips["cfr"], start=0.5, end=1.5)  # the tone starts at 0.5 s here
    onset = np.argmax(np.abs(window) > 0.1) / 16000
    assert onset == pytest.approx(0.5, abs=0.003)


@pytest.mark.parametrize("block", [777, 16000, 1 << 18])
@pytest.mark.parametrize(("start", "end"), [(0.0, None), (0.5, 2.5)])
def test_audio_blocks_are_read_audio_cut_into_blocks(clips, block, start, end, monkeypatch):
    import delcli.io.audio as audio

    whole = read_audio(clips["cfr"], 16000, start, end)
    monkeypatch.setattr(audio, "REWRITE_MARGIN", 100)  # hand blocks out as early as allowed
    blocks = audio_blocks(clips["cfr"], 16000, start, end, block=block)
    parts = list(blocks)
    assert blocks.total == whole.size == sum(part.size for part in parts)
    assert all(part.size == block for part in parts[:-1])
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_audio_blocks_of_a_file_without_audio_is_none_and_damage_fails_while_reading(
    clips, edge_cases
):
    assert audio_blocks(clips["no_audio"]) is None
    blocks = audio_blocks(edge_cases / "truncated.mp4", block=1000)
    with pytest.raises(MediaError, match="truncated"):
        list(blocks)


def test_broken_audio_stream_is_a_media_error_naming_the_file(edge_cases):
    path = edge_cases / "broken_audio.mp4"
    with pytest.raises(MediaError, match=r"audio stream broken from 1\.\d s") as error:
        read_audio(path)
    assert str(error.value).startswith(str(path))
    assert len(list(iter_frames(path, 25))) == 100  # the video is fine


def test_truncated_audio_is_a_media_error(edge_cases):
    with pytest.raises(MediaError, match="truncated"):
        read_audio(edge_cases / "truncated.mp4")


def test_a_very_short_clip_gives_its_frames_and_samples(edge_cases):
    path = edge_cases / "very_short.mp4"
    assert len(list(iter_frames(path, 25))) == 15
    assert len(list(iter_frames(path, 4))) == 2
    assert read_audio(path).size == 9600
