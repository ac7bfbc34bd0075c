"""What training reports: running means of the loss terms, and `metrics.jsonl`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from delcli.train import distributed


class MetricsLog:
    """`metrics.jsonl`, one JSON object per line, flushed at once.

    A fresh run starts the file anew; a resumed run keeps the lines of the
    epochs its checkpoint holds and drops those of the interrupted epoch.
    """

    def __init__(self, path: Path, completed_epochs: int, resumed: bool) -> None:
        if resumed and path.is_file():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("epoch", 0) <= completed_epochs
            ]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def write(self, event: dict) -> None:
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class RunningMeans:
    """Loss terms, videos and time accumulated since a point in training."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.videos = 0
        self.grad_norm = 0.0
        self.lr = 0.0
        self.started = time.perf_counter()

    def add(self, terms: dict[str, torch.Tensor], videos: int, grad_norm: float, lr: float):
        for name, value in terms.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.steps += 1
        self.videos += videos
        self.grad_norm += grad_norm
        self.lr = lr

    def summary(self, context: distributed.Context) -> dict:
        """Means over the steps (and over processes), lr, videos/s of all processes together."""
        steps = max(1, self.steps)
        means = {name: float(total) / steps for name, total in self.sums.items()}
        means = distributed.mean_across(means, context)
        seconds = time.perf_counter() - self.started
        videos = distributed.sum_across(float(self.videos), context)
        return {
            **means,
            "grad_norm": self.grad_norm / steps,
            "lr": self.lr,
            "videos_per_s": videos / seconds if seconds > 0 else 0.0,
            "seconds": seconds,
        }
