"""The audio track as mono samples at a fixed rate: `read_audio`.

Decoded frames are resampled (FFmpeg's swresample) to the rate, averaged over
channels to mono, and placed by their timestamps, so the result is exactly
`round((end - start)·rate)` samples however many the codec produced (an AAC
stream decodes to up to one frame more than its declared duration; its
priming samples are removed by FFmpeg from the mp4 edit list). Gaps in the
timestamps, an audio track that starts late or ends early, and up to 1 s of
undecodable packets are silence; more damage than that is a `MediaError`
(see `delcli.io.media`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from delcli.errors import ConfigError
from delcli.io.media import (
    TOLERANCE,
    DecodeLog,
    MediaError,
    container_duration,
    decodable_extent,
    decode_stream,
    first_stream,
    frame_seconds,
    open_media,
    time_origin,
)


def read_audio(
    path: str | Path, sample_rate: int = 16000, start: float = 0.0, end: float | None = None
) -> np.ndarray | None:
    """The first audio stream as mono float32 in [-1, 1] at `sample_rate`, exactly
    `round((end - start)·sample_rate)` samples (`end` defaults to the container
    duration); None when the file has no audio stream."""
    if sample_rate < 1:
        raise ConfigError(f"sample rate {sample_rate}: must be positive")
    if start < 0 or (end is not None and end < start):
        raise ConfigError(f"start {start} / end {end}: need 0 <= start <= end")
    with open_media(path) as container:
        stream = first_stream(container, "audio")
        if stream is None:
            return None
        duration = container_duration(container)
        stop = duration if end is None else end
        if stop > duration + TOLERANCE:
            raise MediaError(
                f"{path}: requested end {stop:.1f} s is past the end ({duration:.1f} s)"
            )
        out = np.zeros(round((stop - start) * sample_rate), dtype=np.float32)
        if out.size == 0:
            return out
        extent = decodable_extent(container, path)
        origin = time_origin(container)
        if start > 0:
            container.seek(int((start + origin) / stream.time_base), stream=stream, backward=True)
        log = DecodeLog()
        placer = Placer(out, start, sample_rate)
        for frame in decode_stream(container, stream, path, origin, log):
            time = frame_seconds(frame, origin)
            if time is not None and time >= stop:
                break
            placer.add(frame, time)
        placer.flush()
        missing = min(stop, duration) - placer.decoded_to
        if (log.damaged or extent is not None) and missing > TOLERANCE:
            reason = f": {log.first_error}" if log.first_error else ""
            raise MediaError(
                f"{path}: truncated (decoded {placer.decoded_to:.1f} of {duration:.1f} s of "
                f"audio{reason})"
            )
        np.clip(out, -1.0, 1.0, out=out)
        return out


class Placer:
    """Resamples decoded frames and writes them into `out` at their timestamps.

    A resampler runs over a stretch of contiguous frames; a timestamp jump of more
    than half a frame (a gap, a skipped packet) flushes it and starts a new one at
    the new time, so later audio never drifts."""

    def __init__(self, out: np.ndarray, start: float, sample_rate: int) -> None:
        self.out, self.start, self.rate = out, start, sample_rate
        self.resampler = None
        self.kind = None  # (layout, rate, format) of the frames of the current stretch
        self.anchor = 0.0  # time of the first frame of the current stretch
        self.fed = 0.0  # seconds fed into the current stretch
        self.written = 0  # samples the current stretch has produced
        self.decoded_to = start  # end of the audio placed so far, seconds

    def add(self, frame, time: float | None) -> None:
        frame_length = frame.samples / frame.sample_rate
        expected = self.anchor + self.fed
        if time is None:
            time = expected
        kind = (frame.layout.name, frame.sample_rate, frame.format.name)
        if self.resampler is None or kind != self.kind or abs(time - expected) > 0.5 * frame_length:
            self.flush()
            self.resampler = av_resampler(frame.layout.name, self.rate)
            self.kind, self.anchor, self.fed, self.written = kind, time, 0.0, 0
        frame.pts = None  # placement times the samples, not the resampler
        for chunk in self.resampler.resample(frame):
            self.place(chunk)
        self.fed += frame_length

    def flush(self) -> None:
        if self.resampler is not None:
            for chunk in self.resampler.resample(None):
                self.place(chunk)
            self.resampler = None

    def place(self, chunk) -> None:
        samples = chunk.to_ndarray().mean(axis=0)  # planar (channels, n): mono = channel mean
        first = round((self.anchor - self.start) * self.rate) + self.written
        self.written += samples.size
        lo, hi = max(first, 0), min(first + samples.size, self.out.size)
        if hi > lo:
            self.out[lo:hi] = samples[lo - first : hi - first]
        end = first + samples.size
        self.decoded_to = max(self.decoded_to, self.start + end / self.rate)


def av_resampler(layout: str, rate: int):
    """Planar float at `rate`, channels kept (they are averaged afterwards: FFmpeg's
    own mono downmix adds channels at -3 dB, which can exceed 1)."""
    import av

    return av.AudioResampler(format="fltp", layout=layout, rate=rate)
