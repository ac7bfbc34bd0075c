"""A video's events as a timeline picture, like the paper's Fig. 1 and 4.

Time runs left to right in seconds; each class that occurs gets a row. In a row,
predictions are bars in the class's colour whose opacity grows with their score
(the score is written on bars wide enough to hold it); with ground truth, the
row's upper lane holds the annotated events as hatched outlines and the lower
lane the predictions, so misses and false alarms show at a glance.

matplotlib is an optional extra (`pip install del-av[plot]`), imported only here,
through its object-oriented API (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from delcli.errors import ConfigError
from delcli.files import atomic_path

if TYPE_CHECKING:
    from delcli.inference.video import Event, VideoEvents

FORMATS = (".png", ".svg", ".pdf")
MIN_ALPHA = 0.15  # a score-0 bar stays visible


def require_matplotlib() -> None:
    """`ConfigError` with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--plot needs matplotlib, an optional extra: pip install del-av[plot]"
        ) from None


def plot_timeline(
    events: VideoEvents,
    out: Path | str,
    ground_truth: list[Event] | None = None,
    classes: list[str] | None = None,
) -> Path:
    """Draw `events` (and `ground_truth`) and write the picture to `out` atomically.

    Args:
        events: the video's predictions.
        out: `.png` (or `.svg`, `.pdf`); its folder must exist.
        ground_truth: annotated events of the video (their scores are ignored).
        classes: the model's class list: fixes each class's colour and the row order.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {out}: the picture must end in {', '.join(FORMATS)}")
    truth = list(ground_truth or [])
    rows = _row_order([*events.events, *truth], classes)
    colour = _colours(rows if classes is None else [*classes, *rows])
    span = max([events.duration, *(e.end for e in [*events.events, *truth])], default=1.0)
    span = span if span > 0 else 1.0

    height = 1.6 + 0.45 * max(1, len(rows)) * (1.6 if truth else 1.0)
    figure = Figure(figsize=(11, height), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    lane = 0.38 if truth else 0.7
    for row, name in enumerate(rows):
        # the axis runs downwards: ground truth above the row's centre, predictions below
        base = row + 0.02 if truth else row - lane / 2
        labelled: list[float] = []  # where scores are written in this row
        for event in sorted((e for e in events.events if e.label == name), key=lambda e: -e.score):
            alpha = MIN_ALPHA + (1 - MIN_ALPHA) * min(max(event.score, 0.0), 1.0)
            axes.add_patch(
                Rectangle(
                    (event.start, base),
                    event.end - event.start,
                    lane,
                    facecolor=to_rgba(colour[name], alpha),
                    edgecolor=colour[name],
                    linewidth=0.6,
                )
            )
            roomy = (event.end - event.start) / span > 0.035
            if roomy and all(abs(event.start - x) > 0.04 * span for x in labelled):
                labelled.append(event.start)
                axes.text(
                    event.start + 0.005 * span,
                    base + lane / 2,
                    f"{event.score:.2f}",
                    ha="left",
                    va="center",
                    fontsize=7,
                    color="black",
                )
        for event in (e for e in truth if e.label == name):
            axes.add_patch(
                Rectangle(
                    (event.start, row - 0.02 - lane),
                    event.end - event.start,
                    lane,
                    facecolor="none",
                    edgecolor=colour[name],
                    hatch="///",
                    linewidth=1.0,
                )
            )

    axes.set_xlim(0, span)
    axes.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first class on top
    axes.set_yticks(range(len(rows)), rows if rows else [])
    axes.set_xlabel("time (s)")
    axes.grid(axis="x", linestyle=":", linewidth=0.6)
    axes.set_axisbelow(True)
    count = len(events.events)
    title = (
        f"{Path(events.path).name} · {events.duration:.1f} s · {count} event{'s' * (count != 1)}"
    )
    axes.set_title(title, loc="left", fontsize=10)
    if not rows:
        axes.text(span / 2, 0, "no events", ha="center", va="center", color="grey")
    legend = [
        Patch(
            facecolor=to_rgba("grey", 0.7), edgecolor="grey", label="prediction (opacity = score)"
        )
    ]
    if truth:
        legend.append(Patch(facecolor="none", edgecolor="grey", hatch="///", label="ground truth"))
    axes.legend(
        handles=legend,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=2,
        fontsize=7,
        frameon=False,
        borderaxespad=0.2,
    )
    figure.tight_layout()
    _save_atomically(figure, out)
    return out


def _row_order(events: list[Event], classes: list[str] | None) -> list[str]:
    """Classes that occur: in the model's class order, then unknown labels by first use."""
    present = list(dict.fromkeys(e.label for e in events))
    if classes is None:
        return present
    known = [name for name in classes if name in present]
    return known + [name for name in present if name not in classes]


def _colours(names: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab20" if len(set(names)) > 10 else "tab10"]
    unique = list(dict.fromkeys(names))
    return {name: palette(i % palette.N) for i, name in enumerate(unique)}


def _save_atomically(figure, out: Path) -> None:
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format=out.suffix.lower().lstrip("."))
