"""What a run of `del extract` did: each video's result, progress events, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from delcli.extract.layout import METADATA, OutputFile
from delcli.features.base import StreamOutput


@dataclass
class VideoResult:
    video: str
    path: str
    status: Literal["done", "skipped", "failed"]
    length: int | None = None  # grid steps
    duration: float | None = None  # seconds
    reason: str | None = None  # why it failed
    seconds: float = 0.0  # wall time spent on it
    missing: tuple[str, ...] = ()  # modalities the file lacks: their features are zeros


@dataclass(frozen=True)
class ExtractEvent:
    """`planned` once (this shard's videos, how many already finished), then one `video`
    per video extracted or failed."""

    kind: Literal["planned", "video"]
    total: int = 0
    skipped: int = 0
    result: VideoResult | None = None


@dataclass
class ExtractReport:
    out: Path
    shard: tuple[int, int]
    given: int  # videos given, all shards
    files: list[OutputFile]
    streams: list[StreamOutput]
    done: list[VideoResult] = field(default_factory=list)
    skipped: list[VideoResult] = field(default_factory=list)
    failed: list[VideoResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def video_seconds(self) -> float:
        return sum(r.duration or 0.0 for r in self.done)

    @property
    def speed(self) -> float:
        """Video seconds extracted per wall-clock second."""
        return self.video_seconds / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "shard": list(self.shard),
            "videos": {
                "given": self.given,
                "this_shard": len(self.done) + len(self.skipped) + len(self.failed),
                "done": len(self.done),
                "skipped": len(self.skipped),
                "failed": len(self.failed),
            },
            "failures": [
                {"video": r.video, "path": r.path, "reason": r.reason} for r in self.failed
            ],
            "outputs": [
                {"name": s.name, "modality": s.modality, "dim": s.dim} for s in self.streams
            ],
            "files": [f.pattern for f in self.files],
            "seconds": round(self.seconds, 3),
            "video_seconds": round(self.video_seconds, 3),
            "video_seconds_per_second": round(self.speed, 3),
            "metadata": str(self.out / METADATA),
        }
