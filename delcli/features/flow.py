"""Optical flow between consecutive frames, for the I3D flow stream.

A `FlowMethod` turns N+1 frames into N flow fields in pixels (x right, y down).
The UnAV-100 features used a flow network, RAFT or PWC-Net
(docs/conventions.md § UnAV-100's released features); the methods here are the
ones that run without a flow network: OpenCV's Farnebäck (`pip install
del-av[flow]`), OpenCV-contrib's TV-L1 (the flow of the original I3D paper),
and `zeros` for an RGB-only run. Other methods (RAFT, …) plug in by
subclassing `FlowMethod` and passing an instance to the extractor.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from delcli.errors import ConfigError


class FlowMethod(ABC):
    """(N+1, H, W, 3) uint8 RGB frames → (N, H, W, 2) float32 flow in pixels.

    Flow k maps frame k to frame k+1: a point at (x, y) in frame k is at
    (x + flow[k, y, x, 0], y + flow[k, y, x, 1]) in frame k+1.
    """

    name: ClassVar[str]
    always_zero: ClassVar[bool] = False  # True: the flow stream carries no information

    @abstractmethod
    def compute(self, frames: np.ndarray) -> np.ndarray: ...

    @staticmethod
    def _check(frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"expected (N+1, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}"
            )


def _opencv(method: str) -> Any:
    try:
        import cv2
    except ImportError:
        raise ConfigError(
            f"optical flow '{method}' needs OpenCV: pip install del-av[flow]"
        ) from None
    return cv2


class FarnebackFlow(FlowMethod):
    """Dense polynomial-expansion flow (Farnebäck 2003) on grey frames, OpenCV's
    tutorial parameters: 3-level pyramid of scale 0.5, 15-px window, 3 iterations."""

    name = "farneback"

    def __init__(self) -> None:
        self._cv2 = _opencv(self.name)

    def compute(self, frames: np.ndarray) -> np.ndarray:
        self._check(frames)
        cv2 = self._cv2
        grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        flows = np.empty((len(frames) - 1, *frames.shape[1:3], 2), np.float32)
        for k in range(len(flows)):
            flows[k] = cv2.calcOpticalFlowFarneback(
                grey[k], grey[k + 1], None, pyr_scale=0.5, levels=3, winsize=15,
                iterations=3, poly_n=5, poly_sigma=1.2, flags=0,
            )  # fmt: skip
        return flows


class TVL1Flow(FlowMethod):
    """Dual TV-L1 flow (Zach et al. 2007), OpenCV-contrib defaults; slow on a CPU."""

    name = "tvl1"

    def __init__(self) -> None:
        cv2 = _opencv(self.name)
        if not hasattr(cv2, "optflow"):
            raise ConfigError(
                "optical flow 'tvl1' needs OpenCV's contrib modules: "
                "pip uninstall opencv-python-headless && pip install opencv-contrib-python-headless"
            )
        self._cv2 = cv2
        self._solver = cv2.optflow.DualTVL1OpticalFlow_create()

    def compute(self, frames: np.ndarray) -> np.ndarray:
        self._check(frames)
        grey = [self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY) for frame in frames]
        flows = np.empty((len(frames) - 1, *frames.shape[1:3], 2), np.float32)
        for k in range(len(flows)):
            flows[k] = self._solver.calc(grey[k], grey[k + 1], None)
        return flows


class ZeroFlow(FlowMethod):
    """No motion at all: an RGB-only run whose flow stream is zeros."""

    name = "zeros"
    always_zero = True

    def compute(self, frames: np.ndarray) -> np.ndarray:
        self._check(frames)
        return np.zeros((len(frames) - 1, *frames.shape[1:3], 2), np.float32)


FLOW_METHODS: dict[str, type[FlowMethod]] = {
    "farneback": FarnebackFlow,
    "tvl1": TVL1Flow,
    "zeros": ZeroFlow,
    "none": ZeroFlow,
}


def get_flow_method(method: str | FlowMethod) -> FlowMethod:
    """A flow method by name (see `FLOW_METHODS`), or `method` itself if it is one."""
    if isinstance(method, FlowMethod):
        return method
    if method not in FLOW_METHODS:
        close = difflib.get_close_matches(str(method), FLOW_METHODS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown flow method '{method}'{hint}; choose one of: {', '.join(FLOW_METHODS)}"
        )
    return FLOW_METHODS[method]()
