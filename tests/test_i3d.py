"""Inception-I3D, the `i3d` extractor, optical flow methods and scripts/convert_i3d.py.

I3D at 224 px is heavy on a CPU, so the network runs on 32-px crops here; the
'same' padding makes every size work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from delcli.errors import ConfigError, WeightsError
from delcli.features import EXTRACTORS, GRID_PRESETS, FeatureGrid, StreamOutput, get_extractor
from delcli.features.flow import FLOW_METHODS, FlowMethod, get_flow_method
from delcli.features.i3d import I3DExtractor, flow_to_input, rgb_to_input, stream_weight_specs
from delcli.features.i3d_network import InceptionI3d, same_padding

from helpers import write_hf_cache

REPO_ROOT = Path(__file__).resolve().parents[1]
UNAV = GRID_PRESETS["unav100"]
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SMALL = {"size": 40, "crop": 32}  # frames for the network in these tests


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- media --------------------------------------------------------------------------------


def moving_square(t: float, height: int = 48, width: int = 64) -> np.ndarray:
    """A textured background with a bright square moving right by 1 px per frame at 25 fps."""
    y, x = np.mgrid[:height, :width]
    image = (96 + 40 * np.sin(x / 3.0) * np.cos(y / 4.0)).astype(np.uint8)
    left = 4 + round(t * 25)
    image[16:32, left : left + 16] = 230
    return np.repeat(image[:, :, None], 3, axis=2)


def write_video(path: Path, seconds: float, fps: int = 25, frame=moving_square) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(round(seconds * fps)):
            image = av.VideoFrame.from_ndarray(frame(k / fps), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 25 fps: 50 frames, 4 UnAV steps."""
    return write_video(tmp_path_factory.mktemp("video") / "square.mp4", 2.0)


# -- the network --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(2, 3, 24, 32, 32), (1, 3, 16, 40, 56), (1, 2, 9, 17, 23), (1, 3, 1, 8, 8)]
)
def test_network_maps_any_clip_to_one_1024_d_feature(shape):
    network = InceptionI3d(in_channels=shape[1]).eval()
    with torch.inference_mode():
        features = network(torch.rand(shape) * 2 - 1)
    assert features.shape == (shape[0], 1024) and torch.isfinite(features).all()


def test_parameter_count_is_inception_i3ds():
    count = sum(p.numel() for p in InceptionI3d(3).parameters())
    assert count == 12_287_264  # ≈ 12.3 M: the 1024-d feature network
    flow = sum(p.numel() for p in InceptionI3d(2).parameters())
    assert count - flow == 64 * 7 * 7 * 7  # one input channel fewer in Conv3d_1a_7x7
    head = sum(p.numel() for p in InceptionI3d(3, num_classes=400).parameters())
    assert head - count == 1024 * 400 + 400


def test_state_dict_uses_the_pytorch_i3d_names():
    state = InceptionI3d(3, num_classes=400).state_dict()
    for key in (
        "Conv3d_1a_7x7.conv3d.weight",
        "Conv3d_1a_7x7.bn.running_var",
        "Conv3d_2b_1x1.conv3d.weight",
        "Conv3d_2c_3x3.bn.bias",
        "Mixed_3b.b0.conv3d.weight",
        "Mixed_3b.b1a.bn.weight",
        "Mixed_3b.b1b.conv3d.weight",
        "Mixed_4e.b2a.conv3d.weight",
        "Mixed_4e.b2b.bn.running_mean",
        "Mixed_5c.b3b.conv3d.weight",
        "logits.conv3d.weight",
        "logits.conv3d.bias",
    ):
        assert key in state, key
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_5c.b1b.conv3d.weight"].shape == (384, 192, 3, 3, 3)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    prefixes = {key.split(".")[0] for key in state}
    assert prefixes == {"Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "logits"} | {
        f"Mixed_{name}" for name in ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")
    }


def test_same_padding_follows_tensorflow():
    # 224 px, kernel 7, stride 2: 5 pixels of padding, the extra one at the end
    padded = same_padding(torch.zeros(1, 1, 1, 224, 1), (1, 7, 1), (1, 2, 1))
    assert padded.shape[3] == 224 + 5
    # 7 px, kernel 3, stride 2 (7 mod 2 = 1): 2 pixels, output ceil(7 / 2) = 4
    x = same_padding(torch.zeros(1, 1, 7, 1, 1), (3, 1, 1), (2, 1, 1))
    assert x.shape[2] == 9 and torch.nn.functional.max_pool3d(x, (3, 1, 1), (2, 1, 1)).shape[2] == 4


def test_inputs_are_scaled_to_minus_one_one():
    rgb = rgb_to_input(np.array([0, 255], np.uint8).reshape(1, 1, 1, 2, 1).repeat(3, axis=4))
    assert rgb.shape == (1, 3, 1, 1, 2) and rgb.flatten().tolist() == [-1, 1] * 3
    flow = np.array([-100.0, -20.0, 0.0, 20.0, 100.0], np.float32)
    scaled = flow_to_input(flow.reshape(1, 1, 1, 5, 1).repeat(2, axis=4))
    # clamp ±20, round(128 + 255/40·f) into 0…255, then to [−1, 1]
    assert scaled[0, 0, 0, 0].tolist() == pytest.approx([-1, -1, 128 / 127.5 - 1, 1, 1], abs=1e-6)


# -- weights ------------------------------------------------------------------------------


def random_state(channels: int, seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = InceptionI3d(channels)
        for module in network.modules():  # non-trivial BatchNorm statistics
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.8, 1.2)
        return network.state_dict()


def test_extractor_with_hub_weights_gives_one_feature_per_step_and_stream(offline_hub, clip):
    from safetensors.torch import save

    states = {"rgb": random_state(3, seed=1), "flow": random_state(2, seed=2)}
    files = {f"i3d_{s}.safetensors": save(v) for s, v in states.items()}
    write_hf_cache(offline_hub, "del-test/i3d", files, COMMIT)
    from delcli.io import probe

    extractor = get_extractor(
        "i3d", UNAV, weights=f"hf://del-test/i3d/i3d_{{stream}}.safetensors@{COMMIT}", **SMALL
    )
    assert isinstance(extractor, I3DExtractor)
    assert extractor.outputs == [
        StreamOutput("rgb", "visual", 1024),
        StreamOutput("flow", "visual", 1024),
    ]
    for stream, network in extractor.networks.items():
        assert not network.training
        loaded = network.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in states[stream].items()), stream

    features = extractor.extract(clip, probe(clip))
    assert set(features) == {"rgb", "flow"}
    for stream, values in features.items():
        assert values.shape == (UNAV.num_steps(2.0), 1024) == (4, 1024), stream
        assert values.dtype == np.float32 and np.isfinite(values).all()
        assert np.abs(values).sum() > 0 and not np.allclose(values[0], values[-1])

    # the same numbers one clip per forward pass: batching does not change them
    single = get_extractor(
        "i3d", UNAV, weights={"rgb": f"hf://del-test/i3d/i3d_rgb.safetensors@{COMMIT}"},
        streams="rgb", batch_size=1, **SMALL,
    )  # fmt: skip
    again = single.extract(clip, probe(clip))
    assert list(again) == ["rgb"]
    np.testing.assert_allclose(again["rgb"], features["rgb"], rtol=1e-4, atol=1e-5)


def test_extractor_without_weights_says_how_to_convert_them():
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("i3d", UNAV)
    assert "scripts/convert_i3d.py" in one_line(excinfo) and "rgb_imagenet.pt" in one_line(excinfo)


def test_a_flow_file_given_for_rgb_is_a_weights_error_naming_the_channels(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "i3d_flow.safetensors"
    save_file(random_state(2, seed=0), str(path))
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("i3d", UNAV, weights=str(path), streams="rgb")
    assert "Conv3d_1a_7x7.conv3d.weight" in one_line(excinfo)
    assert "2 input channels" in one_line(excinfo)


def test_one_weights_file_for_two_streams_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\{stream\}"):
        stream_weight_specs("i3d.safetensors", ("rgb", "flow"))
    assert stream_weight_specs("w_{stream}.st", ("flow",)) == {"flow": "w_flow.st"}


def test_unknown_streams_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="rgb, flow"):
        get_extractor("i3d", UNAV, random_init=True, streams="depth")
    with pytest.raises(ConfigError, match="unknown option"):
        get_extractor("i3d", UNAV, random_init=True, window=16)
    with pytest.raises(ConfigError, match="not both"):
        get_extractor("i3d", UNAV, random_init=True, weights="x_{stream}.safetensors")


def test_registry_finds_the_i3d_extractor():
    assert EXTRACTORS["i3d"] is I3DExtractor


# -- clips on the grid --------------------------------------------------------------------


class FrameIndexFlow(FlowMethod):
    """'Flow' that records which frames it came from: (mean of frame k+1) − (mean of frame k)."""

    name = "index"

    def compute(self, frames: np.ndarray) -> np.ndarray:
        means = frames.reshape(len(frames), -1).mean(axis=1)
        return np.broadcast_to(
            np.diff(means)[:, None, None, None], (len(frames) - 1, *frames.shape[1:3], 2)
        ).astype(np.float32)


def numbered_frame(t: float) -> np.ndarray:
    """Frame k (at 25 fps) is a flat grey of 8·k (mod 256): its index survives H.264."""
    return np.full((48, 64, 3), (8 * round(t * 25)) % 256, np.uint8)


@pytest.mark.parametrize(
    ("seconds", "grid"),
    [(2.0, FeatureGrid(25, 8, 24)), (1.0, FeatureGrid(25, 4, 16)), (0.4, FeatureGrid(25, 8, 24)),
     (1.2, FeatureGrid(25, 12, 5))],
)  # fmt: skip
def test_clips_are_the_grids_windows_with_the_flow_of_consecutive_frames(tmp_path, seconds, grid):
    from delcli.io import iter_frames, probe

    video = write_video(tmp_path / "numbered.mp4", seconds, frame=numbered_frame)
    extractor = get_extractor(
        "i3d", grid, random_init=True, flow_method=FrameIndexFlow(), size=None, crop=None
    )
    steps = grid.num_steps(probe(video).duration)
    clips = list(extractor.clips(video, steps))
    frames = np.stack(list(iter_frames(video, grid.fps)))
    # a video shorter than its windows repeats its last frame, whose flow is zero
    padded = np.concatenate([frames, np.repeat(frames[-1:], 64, axis=0)])
    flows = FrameIndexFlow().compute(padded)
    starts, stops = grid.frame_windows(steps)
    assert len(clips) == steps
    for (rgb, flow), start, stop in zip(clips, starts, stops, strict=True):
        assert rgb.shape == (stop - start, 48, 64, 3) and flow.shape == (stop - start, 48, 64, 2)
        np.testing.assert_array_equal(rgb, padded[start:stop])
        np.testing.assert_array_equal(flow, flows[start:stop])


def test_a_video_without_a_video_track_gives_zeros():
    from delcli.io import MediaInfo

    extractor = get_extractor("i3d", UNAV, random_init=True, **SMALL)
    features = extractor.extract("silent.m4a", MediaInfo("silent.m4a", 3.0, None, None))
    assert {k: v.shape for k, v in features.items()} == {"rgb": (7, 1024), "flow": (7, 1024)}
    assert not any(v.any() for v in features.values())


def test_zero_flow_gives_a_zero_flow_stream_without_a_flow_network(clip):
    from delcli.io import probe

    extractor = get_extractor("i3d", UNAV, random_init=True, flow_method="none", **SMALL)
    assert list(extractor.networks) == ["rgb"]
    features = extractor.extract(clip, probe(clip))
    assert features["flow"].shape == (4, 1024) and not features["flow"].any()
    assert features["rgb"].any()


# -- optical flow -------------------------------------------------------------------------


def test_farneback_flow_of_a_translating_pattern_is_the_shift():
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (24, 24)), np.ones((8, 8))).astype(np.float32)
    # smooth the blocks so the pattern has gradients everywhere
    kernel = np.ones(5) / 5
    for axis in (0, 1):
        texture = np.apply_along_axis(np.convolve, axis, texture, kernel, mode="same")
    texture = texture.astype(np.uint8)
    dx, dy = 2, 1  # pixels per frame, right and down
    frames = np.stack(
        [texture[40 - k * dy : 104 - k * dy, 40 - k * dx : 104 - k * dx] for k in range(3)]
    )
    flow = get_flow_method("farneback").compute(np.repeat(frames[..., None], 3, axis=3))
    assert flow.shape == (2, 64, 64, 2) and flow.dtype == np.float32
    inner = flow[:, 8:-8, 8:-8]
    assert np.median(inner[..., 0]) == pytest.approx(dx, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(dy, abs=0.2)


def test_zero_flow_has_the_flow_shape():
    frames = np.zeros((5, 6, 7, 3), np.uint8)
    flow = get_flow_method("zeros").compute(frames)
    assert flow.shape == (4, 6, 7, 2) and not flow.any()
    assert get_flow_method("none").always_zero


def test_an_unknown_flow_method_is_a_config_error_listing_the_names():
    with pytest.raises(ConfigError) as excinfo:
        get_flow_method("farnback")
    message = one_line(excinfo)
    assert "did you mean 'farneback'" in message
    assert all(name in message for name in FLOW_METHODS)


def test_tvl1_without_opencv_contrib_says_what_to_install():
    import cv2

    if hasattr(cv2, "optflow"):
        pytest.skip("opencv-contrib is installed")
    with pytest.raises(ConfigError) as excinfo:
        get_flow_method("tvl1")
    assert "opencv-contrib-python-headless" in one_line(excinfo)


def test_flow_without_opencv_says_to_install_the_flow_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    with pytest.raises(ConfigError, match=r"pip install del-av\[flow\]"):
        get_flow_method("farneback")
    with pytest.raises(ConfigError, match=r"pip install del-av\[flow\]"):
        get_extractor("i3d", UNAV, random_init=True)


# -- scripts/convert_i3d.py ---------------------------------------------------------------


@pytest.fixture(scope="module")
def converter():
    spec = importlib.util.spec_from_file_location(
        "convert_i3d", REPO_ROOT / "scripts" / "convert_i3d.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_round_trip_drops_the_classifier_and_loads_in_the_extractor(converter, tmp_path):
    from safetensors import safe_open

    with torch.random.fork_rng():
        torch.manual_seed(3)
        checkpoint = InceptionI3d(2, num_classes=400).state_dict()
    # older checkpoints have no BatchNorm counters
    legacy = {k: v for k, v in checkpoint.items() if not k.endswith("num_batches_tracked")}
    torch.save(legacy, tmp_path / "flow_imagenet.pt")
    output = tmp_path / "i3d_flow.safetensors"
    argv = [str(tmp_path / "flow_imagenet.pt"), "-o", str(output), "--stream", "flow"]
    assert converter.main(argv) == 0

    with safe_open(str(output), "pt") as handle:
        metadata = handle.metadata()
        converted = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    assert metadata["stream"] == "flow" and metadata["extractor"] == "i3d"
    source = (tmp_path / "flow_imagenet.pt").read_bytes()
    assert metadata["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert set(converted) == set(InceptionI3d(2).state_dict())
    for key, tensor in converted.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(tensor, checkpoint[key]), key

    extractor = get_extractor("i3d", UNAV, weights=str(output), streams="flow")
    assert torch.equal(
        extractor.networks["flow"].state_dict()["Mixed_4c.b1b.conv3d.weight"],
        checkpoint["Mixed_4c.b1b.conv3d.weight"],
    )


def test_converter_rejects_a_wrong_shape_or_stream_and_writes_nothing(converter, tmp_path, capsys):
    state = InceptionI3d(3).state_dict()
    output = tmp_path / "out.safetensors"
    wrong = dict(state, **{"Mixed_3c.b2b.conv3d.weight": torch.zeros(96, 32, 3, 3, 1)})
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(WeightsError) as excinfo:
        converter.convert(tmp_path / "wrong.pt", output, "rgb")
    assert "Mixed_3c.b2b.conv3d.weight has shape (96, 32, 3, 3, 1)" in one_line(excinfo)
    assert "expects (96, 32, 3, 3, 3)" in one_line(excinfo)

    torch.save(state, tmp_path / "rgb.pt")
    assert converter.main([str(tmp_path / "rgb.pt"), "-o", str(output), "--stream", "flow"]) == 2
    assert "input channels" in capsys.readouterr().err

    missing = {k: v for k, v in state.items() if not k.startswith("Mixed_5c.b0")}
    torch.save({"state_dict": missing}, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="missing keys"):
        converter.convert(tmp_path / "missing.pt", output, "rgb")
    assert not output.exists() and list(tmp_path.glob(".out*")) == []
