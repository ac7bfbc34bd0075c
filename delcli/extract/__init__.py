"""`del extract` as a library: feature extractors run over many videos into one folder.

- `layout`: where each video's arrays go (`--naming unav | actionformer | recipe`), video ids,
  the videos a command is given (`gather_videos`);
- `markers`: files written atomically, and the per-video markers that let a rerun resume;
- `metadata`: `OUT/features.json`, the folder's settings and videos, written under a lock;
- `report`: what a run did, video by video;
- `run`: `extract_folder`, with its shards and worker processes.
"""

from delcli.extract.layout import (
    LAYOUTS,
    METADATA,
    NAMINGS,
    OutputFile,
    gather_videos,
    output_files,
    video_ids,
)
from delcli.extract.metadata import read_metadata
from delcli.extract.report import ExtractEvent, ExtractReport, VideoResult
from delcli.extract.run import extract_folder

__all__ = [
    "LAYOUTS",
    "METADATA",
    "NAMINGS",
    "ExtractEvent",
    "ExtractReport",
    "OutputFile",
    "VideoResult",
    "extract_folder",
    "gather_videos",
    "output_files",
    "read_metadata",
    "video_ids",
]
