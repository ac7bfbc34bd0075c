"""Shared fixtures: the bundled real annotations, read once per session."""

from __future__ import annotations

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
