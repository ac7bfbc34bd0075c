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

BLOCK_SAMPLES = 1 << 18
"""Samples per block of `audio_blocks` (16.4 s at 16 kHz, 1 MiB of float32)."""

REWRITE_MARGIN = 1 << 14
"""Samples `audio_blocks` holds back past a block before handing it out (1 s at 16 kHz):
a timestamp that jumps back by less than this rewrites audio exactly as `read_audio`."""


def read_audio(
    path: str | Path, sample_rate: int = 16000, start: float = 0.0, end: float | None = None
) -> np.ndarray | None:
    """The first audio stream as mono float32 in [-1, 1] at `sample_rate`, exactly
    `round((end - start)·sample_rate)` samples (`end` defaults to the container
    duration); None when the file has no audio stream."""
    blocks = audio_blocks(path, sample_rate, start, end)
    if blocks is None:
        return None
    out = np.empty(blocks.total, dtype=np.float32)
    filled = 0
    for block in blocks:
        out[filled : filled + block.size] = block
        filled += block.size
    return out


class AudioBlocks:
    """`read_audio`'s samples in consecutive blocks, decoded as they are consumed:
    memory stays at a few blocks however long the track. `total` is the number of
    samples all blocks hold together; every block but the last has `block` samples."""

    def __init__(
        self, path: str | Path, sample_rate: int, start: float, stop: float, duration: float,
        block: int,
    ) -> None:  # fmt: skip
        self.path, self.rate, self.start, self.stop = path, sample_rate, start, stop
        self.duration, self.block = duration, block
        self.total = round((stop - start) * sample_rate)

    def __iter__(self):
        if self.total == 0:
            return
        sink = _BlockSink(self.total, self.block)
        with open_media(self.path) as container:
            stream = first_stream(container, "audio")
            extent = decodable_extent(container, self.path)
            origin = time_origin(container)
            if self.start > 0:
                position = int((self.start + origin) / stream.time_base)
                container.seek(position, stream=stream, backward=True)
            log = DecodeLog()
            placer = Placer(sink.write, self.start, self.rate)
            for frame in decode_stream(container, stream, self.path, origin, log):
                time = frame_seconds(frame, origin)
                if time is not None and time >= self.stop:
                    break
                placer.add(frame, time)
                yield from sink.ready()
            placer.flush()
            missing = min(self.stop, self.duration) - placer.decoded_to
            if (log.damaged or extent is not None) and missing > TOLERANCE:
                reason = f": {log.first_error}" if log.first_error else ""
                raise MediaError(
                    f"{self.path}: truncated (decoded {placer.decoded_to:.1f} of "
                    f"{self.duration:.1f} s of audio{reason})"
                )
        yield from sink.rest()


def audio_blocks(
    path: str | Path,
    sample_rate: int = 16000,
    start: float = 0.0,
    end: float | None = None,
    block: int = BLOCK_SAMPLES,
) -> AudioBlocks | None:
    """`read_audio(path, sample_rate, start, end)` as an iterable of consecutive float32
    blocks (see `AudioBlocks`), or None when the file has no audio stream. Bad arguments
    and unreadable files fail here; damage found while decoding fails during iteration."""
    if sample_rate < 1:
        raise ConfigError(f"sample rate {sample_rate}: must be positive")
    if start < 0 or (end is not None and end < start):
        raise ConfigError(f"start {start} / end {end}: need 0 <= start <= end")
    if block < 1:
        raise ConfigError(f"block {block}: must be positive")
    with open_media(path) as container:
        if first_stream(container, "audio") is None:
            return None
        duration = container_duration(container)
    stop = duration if end is None else end
    if stop > duration + TOLERANCE:
        raise MediaError(f"{path}: requested end {stop:.1f} s is past the end ({duration:.1f} s)")
    return AudioBlocks(path, sample_rate, start, stop, duration, block)


class _BlockSink:
    """Placed samples in a sliding buffer; a block is handed out (clipped to [-1, 1]) once
    writing has moved `REWRITE_MARGIN` samples past its end. Samples nobody wrote are
    silence; writes before the oldest block still held are dropped."""

    def __init__(self, total: int, block: int) -> None:
        self.total, self.block = total, block
        self.base = 0  # absolute index of buffer[0]
        self.buffer = np.zeros(0, dtype=np.float32)
        self.high = 0  # one past the furthest sample written

    def write(self, first: int, samples: np.ndarray) -> None:
        lo, hi = max(first, self.base), min(first + samples.size, self.total)
        if hi <= lo:
            return
        if hi - self.base > self.buffer.size:
            grown = np.zeros(max(hi - self.base, 2 * self.buffer.size), dtype=np.float32)
            grown[: self.buffer.size] = self.buffer
            self.buffer = grown
        self.buffer[lo - self.base : hi - self.base] = samples[lo - first : hi - first]
        self.high = max(self.high, hi)

    def ready(self):
        while self.high - self.base >= self.block + REWRITE_MARGIN:
            yield self._take(self.block)

    def rest(self):
        while self.base < self.total:
            yield self._take(min(self.block, self.total - self.base))

    def _take(self, count: int) -> np.ndarray:
        out = np.zeros(count, dtype=np.float32)
        held = min(count, self.buffer.size)
        out[:held] = self.buffer[:held]
        self.buffer = self.buffer[held:].copy()  # drop the block: memory stays bounded
        self.base += count
        np.clip(out, -1.0, 1.0, out=out)
        return out


class Placer:
    """Resamples decoded frames and hands them to `write(first, samples)` at their
    timestamps (`first`: sample index from `start`).

    A resampler runs over a stretch of contiguous frames; a timestamp jump of more
    than half a frame (a gap, a skipped packet) flushes it and starts a new one at
    the new time, so later audio never drifts."""

    def __init__(self, write, start: float, sample_rate: int) -> None:
        self.write, self.start, self.rate = write, start, sample_rate
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
        self.write(first, samples)  # absolute index `first` (may be negative: before start)
        end = first + samples.size
        self.decoded_to = max(self.decoded_to, self.start + end / self.rate)


RESAMPLED_FRAME = 4096
"""Samples per frame the resampler hands out (the last of a stretch may be shorter)."""


def av_resampler(layout: str, rate: int):
    """Planar float at `rate`, channels kept (they are averaged afterwards: FFmpeg's
    own mono downmix adds channels at -3 dB, which can exceed 1), in frames of
    `RESAMPLED_FRAME` samples: one per decoded frame (~370 samples of an AAC frame at
    16 kHz) made the Python work per frame — an array, the channel mean, placing it —
    cost as much as decoding and resampling together. The samples are the same."""
    import av

    return av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=RESAMPLED_FRAME)
