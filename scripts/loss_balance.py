"""The terms of Eq. (14) at the first training step, before any update: how strongly
each one steers early training, for `loss.score_scale` sum (Eq. 9 as written) and
balanced. Real UnAV-100 training events (the bundled annotations), standardised
random features (what the network sees after input normalisation), the zoo
recipe's network at the width asked for.

    python scripts/loss_balance.py [--recipe unav100] [--embed-dim 512] [--videos 8]

Prints one table: raw and weighted terms (λ · L) per setting.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch

from delcli.data.benchmarks import get_benchmark
from delcli.data.formats import read_annotations
from delcli.model.del_model import LOSS_TERMS, DELModel
from delcli.recipe import load_recipe
from delcli.resources import resource_path


def first_step_terms(recipe, videos: int, seed: int) -> dict[str, float]:
    config = recipe.model
    torch.manual_seed(seed)
    model = DELModel(config).train()
    annotations = read_annotations(
        resource_path(get_benchmark(recipe.data.benchmark).annotation_file)
    ).select_split(recipe.data.train_split)
    classes = {name: i for i, name in enumerate(recipe.data.classes)}
    step = recipe.data.stride / recipe.data.fps
    offset = recipe.data.window / 2 / recipe.data.fps
    length = config.max_seq_len
    segments, labels = [], []
    for v in range(videos):
        rows = annotations.event_video == v
        seconds = torch.from_numpy(annotations.segments[rows]).float()
        steps = ((seconds - offset) / step).clamp(0, length - 1)
        names = [annotations.classes[i] for i in annotations.labels[rows]]
        segments.append(steps)
        labels.append(torch.tensor([classes[n] for n in names]))
    generator = torch.Generator().manual_seed(seed)
    visual = torch.randn(videos, length, config.visual_dim, generator=generator)
    audio = torch.randn(videos, length, config.audio_dim, generator=generator)
    mask = torch.ones(videos, length, dtype=torch.bool)
    with torch.no_grad():
        terms = model.losses(model(visual, audio, mask), segments, labels)
    return {name: float(terms[name]) for name in (*LOSS_TERMS, "total")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="unav100")
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    width = args.embed_dim
    widths = [f"model.embed_dim={width}", f"model.head_dim={width}"]
    table = Table(
        title=f"First-step loss terms · {args.recipe} · d={width} · {args.videos} training videos"
    )
    for column in ("score_scale", *(f"λ·{t}" for t in LOSS_TERMS), "aux / detection"):
        table.add_column(column, justify="right")
    for scale in ("sum", "balanced"):
        recipe = load_recipe(args.recipe, [*widths, f"model.loss.score_scale={scale}"])
        terms = first_step_terms(recipe, args.videos, args.seed)
        weights = dict(zip(LOSS_TERMS, recipe.model.loss.weights, strict=True))
        weighted = {t: weights[t] * terms[t] for t in LOSS_TERMS}
        detection = weighted["cls"] + weighted["reg"]
        auxiliary = max(weighted[t] for t in ("inter", "intra", "score"))
        table.add_row(
            scale,
            *(f"{weighted[t]:.3f}" for t in LOSS_TERMS),
            f"{auxiliary / detection:.1f}×",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
