"""Decoding video and audio (PyAV / FFmpeg): `probe`, `iter_frames`, `frame_batches`,
`read_audio`, `audio_blocks`. PyAV itself is imported on first use, not with this package."""

from delcli.io.audio import audio_blocks, read_audio
from delcli.io.media import AudioStreamInfo, MediaError, MediaInfo, VideoStreamInfo, probe
from delcli.io.video import frame_batches, iter_frames

__all__ = [
    "AudioStreamInfo",
    "MediaError",
    "MediaInfo",
    "VideoStreamInfo",
    "audio_blocks",
    "frame_batches",
    "iter_frames",
    "probe",
    "read_audio",
]
