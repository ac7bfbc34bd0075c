"""Score a predictions file against ground truth: the library behind `del eval`
(`evaluate_model` scores a model's detections with `score_loaded`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from delcli.data.annotations import Annotations
from delcli.data.benchmarks import DEFAULT_TIOUS, Benchmark, get_benchmark
from delcli.data.formats import read_annotations
from delcli.errors import ConfigError
from delcli.evaluation.detection_map import DetectionMAP, align_predictions, detection_map
from delcli.evaluation.predictions import Predictions, read_predictions
from delcli.resources import resource_path

Results = dict[str, list[dict]]  # ActivityNet results: {video: [{label, score, segment}]}


@dataclass(frozen=True)
class EvaluationReport:
    """What `del eval` prints: the mAP table plus what was scored.

    `results` and `skipped` are filled when a model was evaluated (`evaluate_model`): its
    detections, and the videos of the split left out for missing or unreadable features.
    """

    dataset: str | None
    split: str
    ground_truth: str
    predictions: str
    result: DetectionMAP
    average_tious: tuple[float, ...]
    paper_tious: tuple[float, ...]
    average_map: float
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    results: Results = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def maps(self) -> dict[str, float]:
        """mAP per tIoU as fractions, keyed `f"{t:g}"`."""
        tious = [float(t) for t in self.result.tious]
        return {f"{t:g}": float(m) for t, m in zip(tious, self.result.mean_ap, strict=True)}

    def to_dict(self, per_class: bool = False) -> dict:
        tious = [float(t) for t in self.result.tious]
        out = {
            "dataset": self.dataset,
            "split": self.split,
            "ground_truth": self.ground_truth,
            "predictions": self.predictions,
            "tious": tious,
            "map": self.maps,
            "average_tious": list(self.average_tious),
            "average_map": self.average_map,
            "counts": self.counts,
            "notes": self.notes,
        }
        if per_class:
            out["per_class"] = {
                name: {f"{t:g}": float(a) for t, a in zip(tious, row, strict=True)}
                for name, row in zip(self.result.classes, self.result.ap, strict=True)
            }
        return out


def load_ground_truth(
    ground_truth: Path | str | None, benchmark: Benchmark | None
) -> tuple[Annotations, str]:
    """Annotations from a file, or the benchmark's bundled ones; and a display name."""
    if ground_truth is None:
        if benchmark is None:
            raise ConfigError(
                "give --ground-truth FILE, or --dataset NAME to use bundled ground truth"
            )
        path = resource_path(benchmark.annotation_file)
        display = f"bundled {benchmark.title} ({path.name.removesuffix('.gz')})"
    else:
        path, display = Path(ground_truth), str(ground_truth)
    task = benchmark.epic_task if benchmark else None
    return read_annotations(path, epic_task=task), display


def score_predictions(
    predictions: Path | str | Predictions,
    ground_truth: Path | str | None = None,
    dataset: str | None = None,
    split: str | None = None,
    tious: tuple[float, ...] | None = None,
    ignore_unknown_labels: bool = False,
    clean_ground_truth: bool = False,
) -> EvaluationReport:
    """Official ActivityNet detection mAP of a predictions file.

    Args:
        predictions: ActivityNet (or ActionFormer) results JSON or
            `video,start,end,label,score` CSV, or detections already read.
        ground_truth: annotation file; None → the bundled file of `dataset`.
        dataset: benchmark name: sets thresholds, default split, bundled ground truth.
        split: subset to score; default: the benchmark's (else `validation`).
        tious: thresholds; default: the benchmark's (else 0.5:0.05:0.95). All are averaged.
        ignore_unknown_labels: drop predictions whose label is not a known class
            (OpenTAD's behaviour) instead of stopping with an error.
        clean_ground_truth: drop zero-length and duplicate ground truth
            (ActionFormer/OpenTAD's behaviour; the official scorer keeps them).
    """
    benchmark = get_benchmark(dataset) if dataset else None
    annotations, display = load_ground_truth(ground_truth, benchmark)
    split = split or (benchmark.default_split if benchmark else "validation")
    return score_loaded(
        annotations.select_split(split),
        predictions if isinstance(predictions, Predictions) else read_predictions(predictions),
        benchmark,
        dataset=benchmark.name if benchmark else None,
        split=split,
        tious=tious,
        ignore_unknown_labels=ignore_unknown_labels,
        clean_ground_truth=clean_ground_truth,
        ground_truth=display,
    )


def score_loaded(
    annotations: Annotations,
    predictions: Predictions,
    benchmark: Benchmark | None,
    dataset: str | None,
    split: str,
    tious: tuple[float, ...] | None = None,
    ignore_unknown_labels: bool = False,
    clean_ground_truth: bool = False,
    ground_truth: str = "",
) -> EvaluationReport:
    """Official ActivityNet mAP of in-memory predictions against one split's annotations.

    The same report as `score_predictions` (which reads both from files).

    Args:
        annotations: the split's ground truth.
        predictions: detections, e.g. from `results_to_predictions`.
        benchmark: its thresholds (table, average, paper columns) unless `tious` is given.
        dataset: the benchmark name shown in the report (None: not a known benchmark).
        split: the split's name, for the report.
    """
    notes: list[str] = []
    if clean_ground_truth:
        annotations, zero, duplicate = annotations.without_degenerate_events()
        notes.append(f"dropped {zero} zero-length and {duplicate} duplicate ground-truth events")
    if tious is not None:
        table_tious = average_tious = tuple(tious)
        paper_tious: tuple[float, ...] = ()
    elif benchmark is not None:
        table_tious, average_tious = benchmark.tious, benchmark.average_tious
        paper_tious = benchmark.paper_tious
    else:
        table_tious = average_tious = DEFAULT_TIOUS
        paper_tious = ()
    all_tious = np.array(sorted(set(table_tious) | set(average_tious)))

    aligned = align_predictions(annotations, predictions, ignore_unknown_labels)
    result = detection_map(annotations, aligned, all_tious)
    counts = {
        "videos": annotations.num_videos,
        "ground_truth": annotations.num_events,
        "classes": len(result.classes),
        **aligned.counts,
    }
    counts["negative_start"] = int((predictions.segments[:, 0] < 0).sum())
    if counts["negative_start"]:
        notes.append(
            f"{counts['negative_start']} predictions start before 0 s "
            "(scored as given, unclamped, as the official scorer does)"
        )
    if counts["unknown_label"]:
        notes.append(f"ignored {counts['unknown_label']} predictions with unknown labels")
    per_class = np.bincount(annotations.labels, minlength=len(annotations.classes))
    counts["class_without_ground_truth"] = int((per_class[aligned.label] == 0).sum())
    if counts["class_without_ground_truth"]:
        notes.append(
            f"{counts['class_without_ground_truth']} predictions are of classes with no "
            f"ground truth in split '{split}' (not part of the mean, so they cannot change it)"
        )
    if counts["outside_split"]:
        notes.append(
            f"{counts['outside_split']} predictions are on videos outside split '{split}' "
            "(scored as false positives, as the official scorer does)"
        )
    covered = set(aligned.video.tolist())
    missing = annotations.num_videos - len(covered - {-1})
    if missing:
        notes.append(f"{missing} of {annotations.num_videos} videos have no predictions")
    return EvaluationReport(
        dataset=dataset,
        split=split,
        ground_truth=ground_truth,
        predictions=predictions.source,
        result=result,
        average_tious=tuple(average_tious),
        paper_tious=paper_tious,
        average_map=result.average(average_tious),
        counts=counts,
        notes=notes,
    )
