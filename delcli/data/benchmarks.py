"""The benchmarks `del` knows: evaluation protocol and bundled ground truth.

Threshold sets follow each benchmark's standard protocol (README.md § Protocols).
UnAV-100 papers print the 0.5…0.9 columns but average over 0.1…0.9; `paper_tious`
marks the printed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from delcli.errors import ConfigError


def tiou_range(start: float, stop: float, step: float) -> tuple[float, ...]:
    """Inclusive range of thresholds, rounded so 0.1-steps print as 0.1, not 0.30000000000000004."""
    count = round((stop - start) / step) + 1
    return tuple(float(round(start + i * step, 6)) for i in range(count))


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    tious: tuple[float, ...]
    """Thresholds evaluated and printed."""
    average_tious: tuple[float, ...]
    """Thresholds whose mAP is averaged into the reported number."""
    paper_tious: tuple[float, ...]
    """Columns the papers' tables show (marked in our table)."""
    default_split: str
    annotation_file: str
    """Bundled ground truth, relative to `delcli/resources`."""
    epic_task: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="unav100",
            title="UnAV-100",
            tious=tiou_range(0.1, 0.9, 0.1),
            average_tious=tiou_range(0.1, 0.9, 0.1),
            paper_tious=tiou_range(0.5, 0.9, 0.1),
            default_split="test",
            annotation_file="annotations/unav100/unav100_annotations.json.gz",
        ),
        Benchmark(
            name="thumos14",
            title="THUMOS14",
            tious=tiou_range(0.3, 0.7, 0.1),
            average_tious=tiou_range(0.3, 0.7, 0.1),
            paper_tious=tiou_range(0.3, 0.7, 0.1),
            default_split="test",
            annotation_file="annotations/thumos14/thumos14.json.gz",
        ),
        Benchmark(
            name="anet13",
            title="ActivityNet-1.3",
            tious=tiou_range(0.5, 0.95, 0.05),
            average_tious=tiou_range(0.5, 0.95, 0.05),
            paper_tious=(0.5, 0.75, 0.95),
            default_split="validation",
            annotation_file="annotations/activitynet13/anet_anno_action.json.gz",
        ),
        *(
            Benchmark(
                name=f"epic100-{task}",
                title=f"EPIC-Kitchens-100 ({task})",
                tious=tiou_range(0.1, 0.5, 0.1),
                average_tious=tiou_range(0.1, 0.5, 0.1),
                paper_tious=tiou_range(0.1, 0.5, 0.1),
                default_split="validation",
                annotation_file="annotations/epic100/EPIC_100_validation.csv.gz",
                epic_task=task,
            )
            for task in ("verb", "noun")
        ),
    )
}

# ActivityNet's official default, used when neither a benchmark nor --tiou is given.
DEFAULT_TIOUS = tiou_range(0.5, 0.95, 0.05)


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset '{name}' (choose from: {', '.join(BENCHMARKS)})"
        ) from None


def evaluation_protocol(name: str | None) -> Benchmark:
    """The benchmark whose tIoU protocol scores a dataset.

    A dataset outside the known benchmarks (`data.benchmark: null`, e.g. the
    synthetic one, which copies UnAV-100's layout and event statistics) is
    scored with UnAV-100's protocol: 0.1:0.1:0.9, all averaged.
    """
    return get_benchmark(name or "unav100")


MAX_TIOUS = 1000  # a step typed as 1e-7 would otherwise ask for ten million thresholds


def parse_tious(text: str) -> tuple[float, ...]:
    """`0.5:0.95:0.05` (inclusive start:stop:step) or a comma list `0.3,0.5,0.7`;
    at most `MAX_TIOUS` thresholds."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or not parts[2] > 0 or not parts[1] >= parts[0]:
                raise ValueError
            count = (parts[1] - parts[0]) / parts[2] + 1
            if count > MAX_TIOUS:
                raise ConfigError(
                    f"--tiou '{text}' gives {count:,.0f} thresholds; at most {MAX_TIOUS:,}"
                )
            values = tiou_range(*parts)
        else:
            values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(
            f"--tiou '{text}' is not start:stop:step (e.g. 0.5:0.95:0.05) or a list (0.3,0.5)"
        ) from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise ConfigError(f"--tiou '{text}': thresholds must lie in (0, 1]")
    values = tuple(sorted(set(values)))
    if len(values) > MAX_TIOUS:
        raise ConfigError(
            f"--tiou '{text}' gives {len(values):,} thresholds; at most {MAX_TIOUS:,}"
        )
    return values


def format_tious(values: tuple[float, ...]) -> str:
    """`0.1:0.9:0.1` for an even range of three or more, else `0.3,0.5`."""
    if len(values) >= 3:
        steps = np.diff(values)
        if np.allclose(steps, steps[0]) and tiou_range(values[0], values[-1], steps[0]) == tuple(
            values
        ):
            return f"{values[0]:g}:{values[-1]:g}:{round(float(steps[0]), 6):g}"
    return ",".join(f"{v:g}" for v in values)
