"""Small hand-made ground truth and prediction files for tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from delcli.data.annotations import Annotations, build_annotations

TINY_MODEL = {
    "visual_dim": 12,
    "audio_dim": 6,
    "num_classes": 3,
    "max_seq_len": 32,
    "embed_dim": 32,
    "n_heads": 4,
    "adapter_heads": 4,
    "n_levels": 3,
    "window_size": 5,
    "head_dim": 32,
    "projection_dim": 16,
}
"""A DEL small enough to build, save and load in milliseconds (a `ModelConfig` dict)."""


def tiny_training_batch():
    """`visual, audio, mask, segments, labels` for `TINY_MODEL`: two videos of 32 steps
    (the second 24 valid), three events."""
    import torch

    g = torch.Generator().manual_seed(3)
    mask = torch.arange(32)[None] < torch.tensor([32, 24])[:, None]
    visual = torch.randn(2, 32, 12, generator=g) * mask[..., None]
    audio = torch.randn(2, 32, 6, generator=g) * mask[..., None]
    segments = [torch.tensor([[2.0, 9.0], [15.0, 30.0]]), torch.tensor([[4.0, 20.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    return visual, audio, mask, segments, labels


def make_ground_truth(
    events: list[tuple[str, float, float, str]],
    videos: list[str] | None = None,
    classes: list[str] | None = None,
) -> Annotations:
    """Annotations of one 'test' split from (video, start, end, label) rows."""
    names = videos or sorted({v for v, *_ in events})
    index = {v: i for i, v in enumerate(names)}
    return build_annotations(
        [(v, 100.0, "test") for v in names],
        [(index[v], s, e, label) for v, s, e, label in events],
        classes,
        source="hand-made",
    )


def write_results(path: Path, rows: list[tuple[str, float, float, str, float]]) -> Path:
    """An ActivityNet results JSON from (video, start, end, label, score) rows."""
    results: dict[str, list] = {}
    for video, start, end, label, score in rows:
        results.setdefault(video, []).append(
            {"label": label, "score": score, "segment": [start, end]}
        )
    path.write_text(json.dumps({"version": "test", "results": results, "external_data": {}}))
    return path


def write_database(path: Path, events: list[tuple[str, float, float, str]], subset="test") -> Path:
    database: dict[str, dict] = {}
    for video, start, end, label in events:
        entry = database.setdefault(video, {"subset": subset, "duration": 100.0, "annotations": []})
        entry["annotations"].append({"label": label, "segment": [start, end]})
    path.write_text(json.dumps({"version": "test", "database": database}))
    return path


def write_hf_cache(root: Path, repo: str, files: dict[str, bytes], commit: str) -> Path:
    """A Hugging Face cache laid out by hand: blobs by sha256, snapshot links, refs/main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (folder / "blobs" / digest).write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (len(Path(name).parts) + 1)) / "blobs" / digest)
    return root
