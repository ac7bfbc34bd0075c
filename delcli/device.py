"""Which torch device a command runs on."""

from __future__ import annotations

import os

import torch

from delcli.errors import ConfigError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """`None` → CUDA when available, else CPU; `cuda` under torchrun → this process's GPU."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name}: allowed: cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available (use --device cpu)")
    if name == "cuda" and launched_by_torchrun():
        name = f"cuda:{local_rank}"
    return torch.device(name)
