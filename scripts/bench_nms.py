"""Time vectorised post-processing against the reference loops on generated videos.

A video is N (segment, class, score) candidates, as after ActionFormer's pre-NMS
top-k. Prints one table: median ms per video for `delcli.inference.batched_nms`
and for `delcli.inference.nms_oracle.reference_batched_nms`, and whether the two
keep the same candidates with the same scores.

    python scripts/bench_nms.py --videos 5 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.table import Table

from delcli.inference import Detections, batched_nms
from delcli.inference.nms_oracle import reference_batched_nms


@dataclass(frozen=True)
class Setting:
    name: str
    num_candidates: int
    num_classes: int
    options: dict = field(default_factory=dict)
    dominant_share: float = 0.0  # share of candidates in the video's 2 dominant classes


SOFT = dict(use_soft_nms=True, method="gaussian", sigma=0.5, iou_threshold=0.1)
SETTINGS = [
    Setting("hard, multiclass", 2000, 100, dict(use_soft_nms=False, iou_threshold=0.5)),
    Setting("soft, multiclass", 2000, 100, SOFT),
    Setting("soft, multiclass, 80% in 2 classes", 2000, 100, SOFT, 0.8),
    Setting("soft, class-agnostic + voting", 2000, 100, {**SOFT, "voting_threshold": 0.75}),
    Setting("soft, multiclass", 2000, 20, SOFT),
    Setting("soft, one class", 500, 1, SOFT),
]
COMMON = dict(min_score=0.001, max_seg_num=200)


def generate_video(
    setting: Setting, generator: torch.Generator, duration: float = 1000.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segments `(N, 2)` on `[0, duration]`, scores `(N,)` in (0.001, 1), class ids `(N,)`."""
    n = setting.num_candidates
    starts = torch.rand(n, generator=generator) * duration
    lengths = torch.exp(torch.rand(n, generator=generator) * torch.log(torch.tensor(duration / 4)))
    segments = torch.stack([starts, (starts + lengths).clamp(max=duration)], dim=1)
    scores = 0.001 + 0.999 * torch.rand(n, generator=generator)
    classes = torch.randint(0, setting.num_classes, (n,), generator=generator)
    dominant = torch.rand(n, generator=generator) < setting.dominant_share
    classes[dominant] = torch.randint(0, 2, (int(dominant.sum()),), generator=generator)
    return segments, scores, classes


def median_ms(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def score_gap(fast: Detections, slow: Detections) -> float:
    """Largest |score difference| over candidates both kept."""
    slow_scores = dict(zip(slow.indices.tolist(), slow.scores.tolist(), strict=True))
    gaps = [
        abs(score - slow_scores[i])
        for i, score in zip(fast.indices.tolist(), fast.scores.tolist(), strict=True)
        if i in slow_scores
    ]
    return max(gaps, default=0.0)


def bench(setting: Setting, args: argparse.Namespace) -> list[str]:
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    options = {**COMMON, **setting.options}
    fast_ms, slow_ms, same, gap = [], [], True, 0.0
    for _ in range(args.videos):
        segments, scores, classes = generate_video(setting, generator)
        on_device = (segments.to(device), scores.to(device), classes.to(device))

        def vectorised(inputs=on_device) -> Detections:
            return batched_nms(*inputs, **options)

        fast = vectorised()  # warm-up
        fast_ms.append(median_ms(vectorised, args.repeats, device))
        start = time.perf_counter()
        slow = reference_batched_nms(segments, scores, classes, **options)
        slow_ms.append((time.perf_counter() - start) * 1000)

        fast = Detections(*(t.cpu() for t in fast))
        same &= set(fast.indices.tolist()) == set(slow.indices.tolist())
        gap = max(gap, score_gap(fast, slow))

    fast_median, slow_median = statistics.median(fast_ms), statistics.median(slow_ms)
    return [
        setting.name,
        f"{setting.num_candidates:,} x {setting.num_classes}",
        f"{fast_median:.2f}",
        f"{slow_median:.1f}",
        f"{slow_median / fast_median:.0f}x",
        "yes" if same else "no",
        f"{gap:.1e}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5, help="generated videos per setting")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per video (vectorised)")
    parser.add_argument("--device", default="cpu", help="device of the vectorised run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table = Table(
        title=f"batched_nms vs reference loop, ms per video ({args.device}, "
        f"{args.threads} thread(s), {args.videos} videos, soft = gaussian sigma 0.5, "
        "max_seg_num 200)"
    )
    columns = ("setting", "cands x classes", "vectorised ms", "loop ms", "speedup", "same kept")
    for column in (*columns, "max |Δscore|"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for setting in SETTINGS:
        table.add_row(*bench(setting, args))
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
