"""What a feature dataset in the UnAV-100 layout looks like, in numbers.

Event statistics (events per video, overlap, background) are read from the
annotations on the feature grid; the per-step linear probe says how much a
single step's features reveal about its label, for the audio stream, the
visual stream and both. `del data synth` reports them for the synthetic
benchmark; they work on any folder in that layout (e.g. real UnAV-100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from delcli.data.annotations import Annotations
from delcli.errors import DataError

# UnAV-100's grid: 25 fps, windows of 24 frames every 8 frames.
FPS = 25.0
STRIDE = 8
WINDOW = 24
STEP_SECONDS = STRIDE / FPS  # 0.32
OFFSET_SECONDS = WINDOW / 2 / FPS  # 0.48

STREAMS = {"A": ("vggish",), "V": ("rgb", "flow"), "AV": ("rgb", "flow", "vggish")}
PROBE_STEPS = 150
PROBE_MAX_TRAIN_STEPS = 120_000


def grid_length(duration: float) -> int:
    """Number of full 24-frame windows (stride 8) in `duration` seconds, at least 1."""
    frames = int(np.floor(duration * FPS + 1e-6))
    return max(1, (frames - WINDOW) // STRIDE + 1)


def step_centres(length: int) -> np.ndarray:
    """(T,) seconds at the centre of each step: 0.32·i + 0.48."""
    return OFFSET_SECONDS + STEP_SECONDS * np.arange(length)


def seconds_to_steps(seconds: np.ndarray | float) -> np.ndarray | float:
    return (np.asarray(seconds) - OFFSET_SECONDS) / STEP_SECONDS


def step_labels(
    segments: np.ndarray, labels: np.ndarray, length: int, background: int
) -> np.ndarray:
    """(T,) class of the shortest event covering each step centre, else `background`.

    Args:
        segments: (N, 2) seconds; labels: (N,) class indices.
    """
    result = np.full(length, background, dtype=np.int64)
    if len(labels) == 0:
        return result
    centres = step_centres(length)
    covered = (centres[None, :] >= segments[:, :1]) & (centres[None, :] <= segments[:, 1:])
    order = np.argsort(-(segments[:, 1] - segments[:, 0]), kind="stable")  # longest first
    for event in order:  # shorter events overwrite longer ones
        result[covered[event]] = labels[event]
    return result


def coverage_counts(segments: np.ndarray, length: int) -> np.ndarray:
    """(T,) number of events whose segment covers each step centre."""
    centres = step_centres(length)
    return ((centres[None, :] >= segments[:, :1]) & (centres[None, :] <= segments[:, 1:])).sum(0)


@dataclass
class ProbeResult:
    """A per-step linear classifier's accuracy on the test split's steps.

    `accuracy`: all steps (background included); `event_accuracy`: mean over
    classes of the recall on that class's steps (background excluded);
    `by_evidence`: the same mean restricted to classes of each evidence type.
    """

    accuracy: float
    event_accuracy: float
    by_evidence: dict[str, float] = field(default_factory=dict)


@dataclass
class SynthStatistics:
    videos: dict[str, int]
    events: int
    classes: int
    mean_events_per_video: float
    mean_steps: float
    overlap_share: float
    """Share of event-covered steps covered by two or more events."""
    background_share: float
    """Share of steps outside every event."""
    evidence: dict[str, int] = field(default_factory=dict)
    """Number of classes per evidence type (synthetic data only)."""
    probe: dict[str, ProbeResult] | None = None
    """Linear probe per input (A, V, AV); None without train and test steps."""


def event_statistics(annotations: Annotations) -> dict:
    """Counts and grid shares of an annotation set (videos need durations)."""
    covered = overlapped = total = 0
    lengths = []
    for index in range(annotations.num_videos):
        length = grid_length(float(annotations.durations[index]))
        counts = coverage_counts(annotations.segments[annotations.event_video == index], length)
        total += length
        covered += int((counts >= 1).sum())
        overlapped += int((counts >= 2).sum())
        lengths.append(length)
    videos = {split: annotations.subsets.count(split) for split in annotations.split_names()}
    return {
        "videos": videos,
        "events": annotations.num_events,
        "classes": len(annotations.classes),
        "mean_events_per_video": annotations.num_events / max(1, annotations.num_videos),
        "mean_steps": float(np.mean(lengths)) if lengths else 0.0,
        "overlap_share": overlapped / covered if covered else 0.0,
        "background_share": 1.0 - covered / total if total else 0.0,
    }


def read_streams(folder: Path, video_id: str) -> dict[str, np.ndarray]:
    """The video's (T, D) array of each stream (`rgb`, `flow`, `vggish`)."""
    arrays = {}
    for stream in ("rgb", "flow", "vggish"):
        path = folder / f"{video_id}_{stream}.npy"
        try:
            arrays[stream] = np.load(path)
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: unreadable feature file ({error})") from None
    return arrays


def split_steps(
    annotations: Annotations, features: Path, split: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every step of a split: features per stream (S, D_s) float32, labels (S,) (K: background)."""
    rows: dict[str, list[np.ndarray]] = {"rgb": [], "flow": [], "vggish": []}
    targets = []
    background = len(annotations.classes)
    for index, video_id in enumerate(annotations.video_ids):
        if annotations.subsets[index] != split:
            continue
        arrays = read_streams(features, video_id)
        for stream, array in arrays.items():
            rows[stream].append(array)
        events = annotations.event_video == index
        targets.append(
            step_labels(
                annotations.segments[events],
                annotations.labels[events],
                len(arrays["rgb"]),
                background,
            )
        )
    if not targets:
        raise DataError(f"{annotations.source}: no videos in split '{split}'")
    steps = {stream: np.concatenate(parts).astype(np.float32) for stream, parts in rows.items()}
    return steps, np.concatenate(targets)


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_labels: int,
    evidence: list[str] | None = None,
    seed: int = 0,
) -> ProbeResult:
    """Fit a multinomial logistic regression on the train steps, score the test steps.

    Inputs are standardised with the train statistics; Adam, full batch,
    `PROBE_STEPS` steps, a little weight decay. At most `PROBE_MAX_TRAIN_STEPS`
    train steps are used (a fixed random subset beyond that).
    """
    import torch

    x_train, y_train = train
    if len(y_train) > PROBE_MAX_TRAIN_STEPS:
        keep = np.random.default_rng(seed).choice(
            len(y_train), PROBE_MAX_TRAIN_STEPS, replace=False
        )
        x_train, y_train = x_train[np.sort(keep)], y_train[np.sort(keep)]
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xs = torch.from_numpy((x_train - mean) / std)
    ys = torch.from_numpy(y_train)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(xs.shape[1], num_labels)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(PROBE_STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(layer(xs), ys).backward()
        optimizer.step()
    x_test, y_test = test
    with torch.no_grad():
        predicted = layer(torch.from_numpy((x_test - mean) / std)).argmax(1).numpy()
    correct = predicted == y_test
    recalls = {
        label: float(correct[y_test == label].mean())
        for label in range(num_labels - 1)
        if (y_test == label).any()
    }
    by_evidence = {}
    if evidence is not None:
        for kind in dict.fromkeys(evidence):
            values = [r for label, r in recalls.items() if evidence[label] == kind]
            if values:
                by_evidence[kind] = float(np.mean(values))
    return ProbeResult(
        accuracy=float(correct.mean()) if len(correct) else 0.0,
        event_accuracy=float(np.mean(list(recalls.values()))) if recalls else 0.0,
        by_evidence=by_evidence,
    )


def dataset_statistics(
    annotations: Annotations,
    features: Path,
    evidence: list[str] | None = None,
    probe: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SynthStatistics:
    """Statistics of a UnAV-layout dataset; `evidence` gives each class's evidence type.

    `probe=False` (or a dataset without train and test videos) leaves `probe` None;
    `progress(done, total)` is called after each probe.
    """
    counts = event_statistics(annotations)
    kinds = {}
    if evidence is not None:
        for kind in evidence:
            kinds[kind] = kinds.get(kind, 0) + 1
    results = None
    splits = set(annotations.subsets)
    if probe and {"train", "test"} <= splits:
        results = {}
        num_labels = len(annotations.classes) + 1
        train, train_labels = split_steps(annotations, features, "train")
        test, test_labels = split_steps(annotations, features, "test")
        for done, (name, streams) in enumerate(STREAMS.items(), start=1):
            results[name] = linear_probe(
                (np.concatenate([train[s] for s in streams], axis=1), train_labels),
                (np.concatenate([test[s] for s in streams], axis=1), test_labels),
                num_labels,
                evidence,
            )
            if progress is not None:
                progress(done, len(STREAMS))
    return SynthStatistics(**counts, evidence=kinds, probe=results)
