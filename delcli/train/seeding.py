"""Deterministic seeding, the data order of an epoch, and RNG state for resume."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_GOLDEN = 0x9E3779B97F4A7C15  # spreads (seed, epoch) pairs over the 64-bit seed space


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA); deterministic algorithms, as ActionFormer."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    """The training order of epoch `epoch`: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed((seed + _GOLDEN * (epoch + 1)) % 2**63)
    return torch.randperm(size, generator=generator).tolist()


def rng_state() -> dict:
    """Every global RNG state, as tensors and plain values (loadable with weights_only)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
