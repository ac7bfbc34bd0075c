"""Shared fixtures: the bundled real annotations, read once per session; offline
Hugging Face caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from delcli.data.annotations import Annotations
from delcli.data.benchmarks import BENCHMARKS
from delcli.data.formats import read_annotations
from delcli.resources import resource_path


def pytest_configure(config: pytest.Config) -> None:
    # Tests use tiny tensors: one thread avoids contention on small CI machines.
    torch.set_num_threads(1)
    config.addinivalue_line("markers", "cuda: needs a CUDA device (scripts/gpu_check.sh runs them)")


@pytest.fixture(scope="session")
def real_annotations() -> dict[str, Annotations]:
    """Every bundled benchmark's ground truth, read once per test session."""
    return {
        name: read_annotations(resource_path(b.annotation_file), epic_task=b.epic_task)
        for name, b in BENCHMARKS.items()
    }


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty HF_HOME in tmp, offline: the cache is HF_HOME/hub."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return tmp_path / "hf" / "hub"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache (HF_HUB_CACHE) in tmp, offline."""
    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return cache
