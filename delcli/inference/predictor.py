"""Detections of a dataset split: network → candidates → seconds → NMS → results.

`predict_dataset` runs a `DELModel` over a `FeatureDataset` in batches and
returns ActivityNet results, `{video: [{"label", "score", "segment"}]}`. Per
video (docs/model.md §9):

1. `model.candidates` decodes the heads into segments on the grid (steps);
2. the item's `TimeGrid` maps steps to seconds of the original video; segments
   are clamped to `[0, duration]` and those left empty are dropped;
3. `batched_nms` with `recipe.inference.nms` (Soft-NMS, per class or class-agnostic);
4. with external video-level class scores (below) the kept segments are labelled;
5. the best `recipe.inference.max_detections` are kept, by descending score.

Clamping before NMS follows docs/model.md §9 (ActionFormer clamps after NMS; the
difference only touches segments that cross the video's ends). The seconds map is
affine with a positive scale, so NMS in seconds equals NMS in steps otherwise.

**External classification scores** (ActivityNet; where they come from:
docs/conventions.md § External classification scores): the model localises
class-agnostically (`num_classes: 1`, trained with every event in one class); a
video-level classifier names the events. As ActionFormer's
`postprocess_results`, the segments that survive NMS become proposals (their
labels, if the model has several classes, are ignored); each proposal is emitted
once for each of the video's `recipe.inference.external_top_k` best external
classes (those with a positive score), scored `sqrt(proposal score × class
probability)`.

Batches are padded to their longest video; the network masks padding, so a video
gets the same detections in a batch as alone (up to float rounding).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from delcli.errors import ConfigError, DataError
from delcli.files import write_bytes_atomic
from delcli.inference.nms import Detections, NMSConfig, batched_nms

if TYPE_CHECKING:
    from delcli.data.batch import TimeGrid
    from delcli.data.dataset import FeatureDataset
    from delcli.model.del_model import DELModel
    from delcli.recipe import Recipe

ExternalScores = dict[str, dict[str, float]]


@torch.no_grad()
def predict_dataset(
    model: DELModel,
    dataset: FeatureDataset,
    recipe: Recipe,
    indices: list[int] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    external_scores: ExternalScores | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[dict]]:
    """ActivityNet results of the videos `indices` (default: all) of `dataset`.

    Args:
        model: the network; moved to `device`, run in eval mode (its mode is restored).
        dataset: yields `VideoItem`s; `dataset.classes` names the labels.
        recipe: `inference` (NMS, batch size, caps, external top-k) and
            `train.precision` (bf16 autocast on CUDA unless `fp32`).
        indices: dataset positions to predict, in output order.
        batch_size: videos per forward pass; default `recipe.inference.batch_size`.
        external_scores: `{video: {class name: probability}}` video-level class scores;
            see the module docstring.
        progress: called with the number of videos finished after every batch.

    Returns:
        `{video_id: [{"label": class name, "score": float, "segment": [start_s, end_s]}]}`
        with every video of `indices`, detections by descending score.
    """
    from delcli.data.batch import collate

    indices = list(range(len(dataset))) if indices is None else list(indices)
    classes = list(dataset.classes)
    check_class_count(model.config.num_classes, classes, external_scores is not None)
    class_probabilities = None
    if external_scores is not None:
        videos = [dataset.video_ids[i] for i in indices]
        class_probabilities = external_score_table(external_scores, videos, classes)

    inference = recipe.inference
    device = torch.device(device)
    bf16 = device.type == "cuda" and recipe.train.precision in ("auto", "bf16")
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size or inference.batch_size,
        shuffle=False,
        num_workers=recipe.train.num_workers,
        collate_fn=list,
    )
    was_training = model.training
    model.to(device).eval()
    results: dict[str, list[dict]] = {}
    try:
        for items in loader:
            batch = collate(items, model.config.length_divisor).to(device)
            with autocast:
                output = model(batch.visual, batch.audio, batch.mask)
            for item, found in zip(items, model.candidates(output), strict=True):
                detections = video_detections(
                    found.segments.cpu(),
                    found.scores.cpu(),
                    found.labels.cpu(),
                    item.grid,
                    item.duration,
                    inference.nms,
                    inference.max_detections,
                    None if class_probabilities is None else class_probabilities[item.video_id],
                    inference.external_top_k,
                )
                results[item.video_id] = result_entries(detections, classes)
            if progress is not None:
                progress(len(items))
    finally:
        model.train(was_training)
    return results


def check_class_count(num_classes: int, classes: list[str], external: bool) -> None:
    """The model's outputs must name the dataset's classes, unless external scores do."""
    if external or num_classes == len(classes):
        return
    if num_classes == 1:
        raise ConfigError(
            f"the model is class-agnostic (1 class) and the dataset has {len(classes)} "
            "classes: give external video-level class scores (del eval --external-scores FILE)"
        )
    raise ConfigError(
        f"the model predicts {num_classes} classes but the dataset has {len(classes)}"
    )


def video_detections(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    grid: TimeGrid,
    duration: float,
    nms: NMSConfig,
    max_detections: int,
    class_probabilities: torch.Tensor | None = None,
    external_top_k: int = 2,
) -> Detections:
    """One video's candidates (grid steps) → its final detections (seconds).

    Args:
        segments: `(K, 2)` candidate segments in grid steps.
        scores: `(K,)`.
        labels: `(K,) long` class indices.
        grid: maps steps to seconds of the video.
        duration: seconds; segments are clamped to `[0, duration]` (NaN: no upper bound).
        nms: post-processing settings, passed to `batched_nms`.
        max_detections: at most this many are returned.
        class_probabilities: `(C,)` external video-level class scores, or None.
        external_top_k: classes taken from `class_probabilities`.

    Returns:
        `Detections` in seconds by descending score; `indices` point into the input.
    """
    seconds = grid.to_seconds(segments.to(torch.float64))
    seconds = seconds.clamp(min=0.0)
    if math.isfinite(duration):
        seconds = seconds.clamp(max=float(duration))
    nonempty = torch.nonzero(seconds[:, 1] > seconds[:, 0]).squeeze(1)
    kept = batched_nms(
        seconds[nonempty],
        scores[nonempty].to(torch.float64),
        labels[nonempty],
        **asdict(nms),
    )
    kept = Detections(kept.segments, kept.scores, kept.class_ids, nonempty[kept.indices])
    if class_probabilities is not None:
        kept = label_with_external_scores(kept, class_probabilities, external_top_k)
    return Detections(*(field[:max_detections] for field in kept))


def label_with_external_scores(
    proposals: Detections, class_probabilities: torch.Tensor, top_k: int
) -> Detections:
    """Every proposal once per top-k external class, scored `sqrt(score × probability)`.

    Args:
        proposals: `P` class-agnostic detections (their class ids are ignored).
        class_probabilities: `(C,)` the video's class scores.
        top_k: how many of the video's best classes to emit.

    Returns:
        `k · P` detections by descending score (ties: better class first), `k` the number
        of top-k classes with a positive probability.
    """
    order = torch.sort(class_probabilities, descending=True, stable=True).indices[:top_k]
    order = order[class_probabilities[order] > 0]  # a class the video surely lacks adds nothing
    probability = class_probabilities[order].to(proposals.scores.dtype)
    k, count = order.numel(), proposals.scores.numel()
    scores = torch.sqrt(probability[:, None] * proposals.scores[None, :]).flatten()
    rank = torch.sort(scores, descending=True, stable=True).indices
    return Detections(
        segments=proposals.segments.repeat(k, 1)[rank],
        scores=scores[rank],
        class_ids=order[:, None].expand(k, count).flatten()[rank],
        indices=proposals.indices.repeat(k)[rank],
    )


def result_entries(detections: Detections, classes: list[str]) -> list[dict]:
    """ActivityNet result records of one video's detections."""
    return [
        {"label": classes[label], "score": score, "segment": segment}
        for label, score, segment in zip(
            detections.class_ids.tolist(),
            detections.scores.tolist(),
            detections.segments.tolist(),
            strict=True,
        )
    ]


def find_video_key(table: dict[str, Any], video_id: str) -> str | None:
    """The key of `video_id` in `table`, trying ActivityNet's `v_` prefix both ways."""
    if video_id in table:
        return video_id
    alias = video_id[2:] if video_id.startswith("v_") else "v_" + video_id
    return alias if alias in table else None


def external_score_table(
    external_scores: ExternalScores, videos: list[str], classes: list[str]
) -> dict[str, torch.Tensor]:
    """`{video: (C,) float64}` in the dataset's class order; 0 for classes a video lacks.

    Raises `DataError` naming the first videos without scores or unknown class names.
    """
    index = {name: i for i, name in enumerate(classes)}
    table: dict[str, torch.Tensor] = {}
    missing = []
    for video in videos:
        key = find_video_key(external_scores, video)
        if key is None:
            missing.append(video)
            continue
        vector = torch.zeros(len(classes), dtype=torch.float64)
        for name, probability in external_scores[key].items():
            if name not in index:
                raise DataError(
                    f"external scores of video '{key}' name class '{name}', "
                    "which is not a class of the dataset"
                )
            vector[index[name]] = float(probability)
        table[video] = vector
    if missing:
        raise DataError(
            f"external scores lack {len(missing)} of {len(videos)} videos "
            f"(e.g. {', '.join(missing[:3])})"
        )
    return table


def read_external_scores(path: Path | str, classes: list[str] | None = None) -> ExternalScores:
    """Video-level class scores from JSON (`.gz` allowed), as `{video: {class: score}}`.

    Formats:
        - CUHK's ActivityNet file (`cuhk_val_simp_share.json`):
          `{"results": {video: [score per class]}, "class": [class names]}`;
          without `"class"`, the columns are `classes` when given and of that length;
        - plain `{video: {class name: score}}`, optionally under `"results"`.
    Video ids are kept as written (matching tries the `v_` prefix both ways).
    Scores must be finite and non-negative.
    """
    from delcli.data.formats import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a JSON object mapping videos to class scores")
    results = data.get("results", data)
    if not isinstance(results, dict) or not results:
        raise DataError(f"{path}: 'results' must map video ids to class scores")
    names = data.get("class", data.get("classes")) if "results" in data else None
    scores: ExternalScores = {}
    for video, row in results.items():
        where = f"{path}: video '{video}'"
        if isinstance(row, list):
            columns = names if names is not None else classes
            if columns is None or len(columns) != len(row):
                raise DataError(
                    f"{where}: {len(row)} scores but no class list of that length "
                    "(the file needs a 'class' list naming the columns)"
                )
            row = dict(zip(map(str, columns), row, strict=True))
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a list of scores or a {{class: score}} object")
        scores[str(video)] = {str(name): _score(value, where, name) for name, value in row.items()}
    return scores


def _score(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: score of '{name}' is not a number: {value!r}")
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{where}: score of '{name}' must be finite and >= 0, got {value!r}")
    return float(value)


def write_results(
    path: Path | str,
    results: dict[str, list[dict]],
    external_used: bool = False,
    details: str = "",
) -> None:
    """Write ActivityNet results JSON atomically (temp file + rename); `.gz` compresses.

    `external_used`/`details` fill the format's `external_data` (whether data beyond the
    benchmark's went into the results, e.g. external class scores, and a description).
    """
    path = Path(path)
    document = {
        "version": "VERSION 1.3",
        "results": results,
        "external_data": {"used": external_used, "details": details},
    }
    payload = json.dumps(document).encode("utf-8")
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    write_bytes_atomic(path, payload)
