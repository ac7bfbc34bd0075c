"""What a media file holds (`probe`), and the rules every decoder here shares.

Decoding goes through PyAV (FFmpeg). Times are seconds from the start of the
container (a positive container start offset, as MPEG-TS files have, is
subtracted; samples before zero, e.g. AAC priming, are dropped).

Damaged files follow one rule, `TOLERANCE` (1 s): a stream whose decodable
data end, or whose undecodable packets add up to, less than a second is
accepted (the video holds its last frame, the audio gets zeros there); more
than that is a `MediaError`:
- `probe` reports a truncated file at once when the index of the container
  (an mp4's `moov`) points past the end of the file, or is missing;
- `iter_frames` / `read_audio` first yield or decode what is there and then
  raise "truncated (decoded 3.2 of 10.0 s)" or "… stream broken at 3.2 s".
Nothing hangs: decoding is bounded by the packets in the file.
"""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from delcli.errors import DataError

TOLERANCE = 1.0  # seconds of missing or undecodable data accepted silently (see above)
AV_TIME_BASE = 1_000_000


class MediaError(DataError):
    """A media file that cannot be decoded as asked; one line naming the file."""


@dataclass(frozen=True)
class VideoStreamInfo:
    """The first video stream. `width`/`height` as displayed (after rotation);
    `rotation`: degrees the coded frames are turned clockwise for display
    (0, 90, 180 or 270, the convention of the legacy `rotate` tag); `frames`:
    the count the container declares, None when it declares none."""

    fps: float
    width: int
    height: int
    rotation: int
    frames: int | None
    variable_frame_rate: bool


@dataclass(frozen=True)
class AudioStreamInfo:
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float  # seconds, the container's
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None


def probe(path: str | Path) -> MediaInfo:
    """Streams, duration, rotation and frame-rate kind of a media file.

    Reads the container header and decodes one video frame (the display
    rotation travels with decoded frames). Raises `MediaError` for a missing,
    unreadable, empty or non-media path, a directory, a file with neither
    video nor audio, and a truncated file (more than `TOLERANCE` missing).
    """
    with open_media(path) as container:
        video_stream = first_stream(container, "video")
        audio_stream = first_stream(container, "audio")
        if video_stream is None and audio_stream is None:
            raise MediaError(f"{path}: no video or audio stream")
        duration = container_duration(container)
        check_not_truncated(container, path, duration)
        video = video_info(container, video_stream, path) if video_stream is not None else None
        audio = None
        if audio_stream is not None:
            context = audio_stream.codec_context
            audio = AudioStreamInfo(
                sample_rate=int(context.sample_rate or 0), channels=int(context.channels or 0)
            )
        return MediaInfo(path=str(path), duration=duration, video=video, audio=audio)


# -- shared helpers (used by video.py and audio.py) ---------------------------------------


@contextmanager
def open_media(path: str | Path):
    """`av.open` for reading, with the path checked first and FFmpeg's errors turned
    into one-line `MediaError`s. Metadata must be read inside the block (PyAV
    returns garbage for stream fields after the container is closed)."""
    import av

    check_path(path)
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise MediaError(f"{path}: {unreadable_reason(Path(path), error)}") from None
    try:
        yield container
    finally:
        container.close()


def check_path(path: str | Path) -> None:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{path}: no such file")
    if p.is_dir():
        raise MediaError(f"{path}: is a directory, expected a media file")
    if not os.access(p, os.R_OK):
        raise MediaError(f"{path}: permission denied")
    if p.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")


def unreadable_reason(path: Path, error: Exception) -> str:
    """Why FFmpeg could not open `path`: a cut-off mp4 (no `moov` index) or not media."""
    boxes = mp4_top_level_boxes(path)
    if boxes and boxes[0] == "ftyp" and "moov" not in boxes:
        return "truncated (the mp4 index 'moov' is missing: the recording or copy was cut off)"
    detail = getattr(error, "strerror", None) or str(error)
    return f"not a media file ({detail})"


def mp4_top_level_boxes(path: Path, limit: int = 64) -> list[str]:
    """Names of the top-level ISO-BMFF boxes, [] when the file is not one."""
    names: list[str] = []
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset + 8 <= size and len(names) < limit:
            handle.seek(offset)
            header = handle.read(16)
            length = int.from_bytes(header[:4], "big")
            name = header[4:8]
            if not name.isascii() or not name.decode("ascii").isprintable():
                return names if names else []
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                length = size - offset
            if length < 8:
                break
            names.append(name.decode("ascii"))
            offset += length
    return names if names and names[0] == "ftyp" else []


def first_stream(container, kind: str):
    streams = getattr(container.streams, kind)
    return streams[0] if streams else None


def time_origin(container) -> float:
    """Seconds subtracted from every timestamp: a positive container start offset."""
    start = container.start_time
    return max(0.0, start / AV_TIME_BASE) if start is not None else 0.0


def container_duration(container) -> float:
    """The container's duration in seconds; else the longest stream's; else the end
    of the last packet (a full demux, for formats that declare no duration)."""
    if container.duration is not None and container.duration > 0:
        return container.duration / AV_TIME_BASE
    ends = [
        float(s.duration * s.time_base)
        for s in container.streams
        if s.duration is not None and s.time_base is not None and s.duration > 0
    ]
    if ends:
        return max(ends)
    origin = time_origin(container)
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    container.seek(0)
    return max(0.0, end - origin)


def decodable_extent(container, path: str | Path) -> float | None:
    """Seconds of media the file still holds when the container's index (an mp4's
    sample table) points past the end of the file; None when it does not (or the
    format has no full index: such files are judged while decoding)."""
    size = Path(path).stat().st_size
    origin = time_origin(container)
    extent = None
    for stream in container.streams:
        if stream.type not in ("video", "audio") or stream.time_base is None:
            continue
        entries = stream.index_entries
        if len(entries) == 0:
            continue
        last = entries[len(entries) - 1]
        if last.pos + last.size <= size:
            continue
        present = [e.timestamp for e in entries if e.pos + e.size <= size]
        end = float(max(present) * stream.time_base) - origin if present else 0.0
        extent = max(0.0, end) if extent is None else min(extent, max(0.0, end))
    return extent


def check_not_truncated(container, path: str | Path, duration: float) -> None:
    extent = decodable_extent(container, path)
    if extent is not None and extent < duration - TOLERANCE:
        raise MediaError(f"{path}: truncated (data for {extent:.1f} of {duration:.1f} s)")


@dataclass
class DecodeLog:
    """What went wrong while decoding one stream (see the module's rule)."""

    lost_seconds: float = 0.0  # duration of packets that failed to decode
    first_error: str | None = None
    first_error_at: float | None = None
    demux_failed: bool = False  # reading the file stopped early with an error

    @property
    def damaged(self) -> bool:
        return self.demux_failed or self.first_error is not None


def decode_stream(container, stream, path: str | Path, origin: float, log: DecodeLog, packets=None):
    """Decoded frames of one stream, packet by packet: a packet that fails to decode
    is skipped and logged (its time stays a gap); more than `TOLERANCE` of them is a
    `MediaError`. A read error ends the stream (flushing the decoder). `packets`:
    the stream's packets when the caller filters them (default: demuxed here)."""
    import av

    packets = container.demux(stream) if packets is None else packets
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as error:
            log.demux_failed = True
            log.first_error = log.first_error or error_text(error)
            with suppress(av.FFmpegError):
                yield from stream.decode(None)
            return
        try:
            frames = stream.decode(packet)
        except av.FFmpegError as error:
            at = packet_seconds(packet, origin)
            if log.first_error is None:
                log.first_error, log.first_error_at = error_text(error), at
            log.lost_seconds += packet_duration(packet, stream)
            if log.lost_seconds > TOLERANCE:
                where = (
                    f" from {log.first_error_at:.1f} s" if log.first_error_at is not None else ""
                )
                raise MediaError(
                    f"{path}: {stream.type} stream broken{where} "
                    f"(over {TOLERANCE:g} s undecodable: {log.first_error})"
                ) from None
            continue
        yield from frames


def error_text(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.rstrip(".")


def packet_seconds(packet, origin: float) -> float | None:
    return timestamp_seconds(packet.pts, packet.time_base, origin)


def timestamp_seconds(pts: int | None, time_base: Fraction | None, origin: float) -> float | None:
    """`pts · time_base − origin` in seconds, None without a pts. `pts · num / den` in
    integers is the correctly rounded value of the exact fraction, the same float as
    `float(pts * time_base)`, without making a `Fraction` (Python's fractions cost more
    per packet than the rest of the decoding loop's bookkeeping)."""
    if pts is None or time_base is None:
        return None
    return pts * time_base.numerator / time_base.denominator - origin


def packet_duration(packet, stream) -> float:
    if packet.duration and packet.time_base is not None:
        return float(packet.duration * packet.time_base)
    if stream.type == "audio":
        rate = stream.codec_context.sample_rate or 44100
        return (stream.codec_context.frame_size or 1024) / rate
    fps = stream_fps(stream)
    return 1.0 / fps if fps > 0 else 0.04


def video_info(container, stream, path: str | Path) -> VideoStreamInfo:
    context = stream.codec_context
    rotation = first_frame_rotation(container, stream, path)
    width, height = int(context.width), int(context.height)
    if rotation in (90, 270):
        width, height = height, width
    frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
    return VideoStreamInfo(
        fps=stream_fps(stream),
        width=width,
        height=height,
        rotation=rotation,
        frames=frames,
        variable_frame_rate=is_variable_frame_rate(stream),
    )


def first_frame_rotation(container, stream, path: str | Path) -> int:
    """Clockwise display rotation of the first decodable frame (0 when none decodes)."""
    import av

    try:
        for packet in container.demux(stream):
            for frame in stream.decode(packet):
                return clockwise_rotation(frame)
    except av.FFmpegError:
        pass
    finally:
        container.seek(0)
    return 0


def clockwise_rotation(frame) -> int:
    """The frame's display-matrix rotation as clockwise degrees in {0, 90, 180, 270}
    (PyAV's `frame.rotation` is counter-clockwise in [-180, 180])."""
    return round(-float(frame.rotation or 0) / 90.0) % 4 * 90


def stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return 0.0


def is_variable_frame_rate(stream) -> bool:
    """Frame durations differ by more than 5 %: judged from the full index when the
    container has one (mp4), else from the average rate against FFmpeg's base rate."""
    entries = stream.index_entries
    if stream.frames and len(entries) >= max(3, stream.frames - 1):
        stamps = sorted({e.timestamp for e in entries})
        steps = [b - a for a, b in itertools.pairwise(stamps)]
        if steps:
            return max(steps) > 1.05 * min(steps)
    average, base = stream.average_rate, stream.base_rate
    if average and base and base > 0:
        return abs(Fraction(average) / Fraction(base) - 1) > 0.01
    return False


def frame_seconds(frame: Any, origin: float) -> float | None:
    """A decoded frame's time in seconds from the start, None when it has no pts."""
    return timestamp_seconds(frame.pts, frame.time_base, origin)
