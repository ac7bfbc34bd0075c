"""`delcli.io.skip`: the decoder drops only frames that no output frame shows."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from delcli.io import iter_frames
from delcli.io.skip import UnshownFrameSkipper

WIDTH, HEIGHT, FPS, SECONDS = 64, 48, 30, 4.0


def index_image(index: int) -> np.ndarray:
    """Frame `index` written as 8 black/white vertical stripes (survives H.264)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            image[:, bit * 8 : (bit + 1) * 8] = 255
    return image


def read_index(image: np.ndarray) -> int:
    band = image.shape[1] // 8
    levels = [image[:, b * band + 2 : (b + 1) * band - 2].mean() for b in range(8)]
    return sum(1 << b for b, level in enumerate(levels) if level > 128)


@pytest.fixture(scope="module")
def b_frame_clip(tmp_path_factory) -> Path:
    """30 fps H.264 with B-frames (x264's default), frame i showing `index_image(i)`."""
    path = tmp_path_factory.mktemp("skip") / "bframes.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast", "bframes": "3"}
        video.codec_context.time_base = Fraction(1, FPS)
        for i in range(round(SECONDS * FPS)):
            frame = av.VideoFrame.from_ndarray(index_image(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


@pytest.mark.parametrize("fps", [12.5, 8, 25, 30])
def test_skipping_unshown_frames_returns_the_same_frames(b_frame_clip, fps):
    kept = np.stack(list(iter_frames(b_frame_clip, fps, skip=False)))
    skipped = np.stack(list(iter_frames(b_frame_clip, fps, skip=True)))
    assert np.array_equal(kept, skipped)
    shown = [read_index(image) for image in skipped]
    assert shown == [int(k * FPS / fps + 1e-9) for k in range(len(shown))]


def test_skipping_with_a_start_time_returns_the_same_frames(b_frame_clip):
    kept = np.stack(list(iter_frames(b_frame_clip, 12.5, start=1.3, skip=False)))
    skipped = np.stack(list(iter_frames(b_frame_clip, 12.5, start=1.3, skip=True)))
    assert np.array_equal(kept, skipped)


def decoded_frames(path: Path, fps: float, skip: bool) -> tuple[int, int]:
    """(frames the decoder returned, packets marked unshown) for a whole-file pass."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = round(SECONDS * fps)
        skipper = UnshownFrameSkipper(stream, 0.0, 0.0, fps, count)
        skipper.enabled = skip
        # the demuxer ends with an empty packet, which flushes the decoder
        decoded = sum(len(stream.decode(p)) for p in skipper.packets(container.demux(stream)))
        return decoded, skipper.skipped


def test_the_decoder_drops_unshown_b_frames_at_a_lower_rate(b_frame_clip):
    everything, none_marked = decoded_frames(b_frame_clip, 12.5, skip=False)
    fewer, marked = decoded_frames(b_frame_clip, 12.5, skip=True)
    assert (everything, none_marked) == (round(SECONDS * FPS), 0)
    assert marked > 0 and fewer < everything


def test_nothing_is_dropped_when_every_frame_is_shown(b_frame_clip):
    assert decoded_frames(b_frame_clip, 30, skip=True) == (round(SECONDS * FPS), 0)


def test_a_read_error_comes_after_the_packets_read_before_it():
    class Stream:
        class codec_context:  # stands in for PyAV's attribute
            name, skip_frame = "h264", "DEFAULT"

    def packets():
        yield from ("a", "b")
        raise OSError("read failed")

    skipper = UnshownFrameSkipper(Stream, 0.0, 0.0, 10, 5)
    skipper.seconds = lambda packet: None
    seen = []
    with pytest.raises(OSError, match="read failed"):
        seen.extend(skipper.packets(packets()))
    assert seen == ["a", "b"]
