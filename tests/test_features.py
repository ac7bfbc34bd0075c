"""Feature extractors: the shared grid, the registry, the VGGish front end and network,
the weight converter, extractor weights from the Hugging Face cache, and `basic`."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from delcli.errors import ConfigError, WeightsError
from delcli.features import EXTRACTORS, GRID_PRESETS, FeatureGrid, StreamOutput, get_extractor
from delcli.features.basic import AUDIO_NAMES, AUDIO_SPEC, VISUAL_NAMES, BasicExtractor
from delcli.features.logmel import (
    EXAMPLE_FRAMES,
    VGGISH,
    frame_examples,
    grid_example_starts,
    log_mel_examples,
    log_mel_frames,
    mel_band_edges,
    mel_matrix,
    pad_for_examples,
)
from delcli.features.vggish import VGGish, VGGishExtractor
from delcli.features.weights import load_extractor_weights

from helpers import write_hf_cache

REPO_ROOT = Path(__file__).resolve().parents[1]
UNAV = GRID_PRESETS["unav100"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- media for tests, written with PyAV --------------------------------------------------


def write_media(
    path: Path,
    seconds: float,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    frame=None,
    sound=None,
    sample_rate: int = 16000,
) -> Path:
    """An mp4 with H.264 video `frame(t) -> (H, W, 3) uint8` and/or AAC audio `sound(t) -> (N,)`."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        video = audio = None
        if frame is not None:
            video = container.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if sound is not None:
            audio = container.add_stream("aac", rate=sample_rate)
            audio.layout = "mono"
        if video is not None:
            for k in range(round(seconds * fps)):
                image = av.VideoFrame.from_ndarray(frame(k / fps), format="rgb24")
                container.mux(video.encode(image))
            container.mux(video.encode())
        if audio is not None:
            t = np.arange(round(seconds * sample_rate)) / sample_rate
            samples = np.asarray(sound(t), dtype=np.float32)
            chunk = 1024
            for k, lo in enumerate(range(0, len(samples), chunk)):
                piece = samples[None, lo : lo + chunk]
                block = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), "flt", "mono")
                block.sample_rate = sample_rate
                block.pts = k * chunk
                block.time_base = Fraction(1, sample_rate)
                container.mux(audio.encode(block))
            container.mux(audio.encode())
    return path


def grey_frame(height: int = 48, width: int = 64):
    return lambda t: np.full((height, width, 3), 128, dtype=np.uint8)


@pytest.fixture
def media_io():
    """`delcli.io`, the decoder the extractors call."""
    import delcli.io

    return delcli.io


# -- the grid ---------------------------------------------------------------------------


def test_unav_grid_gives_29_steps_for_10_seconds_centred_at_0_32i_plus_0_48():
    assert UNAV.num_steps(10.0) == 29
    centres = UNAV.step_centres(29)
    np.testing.assert_allclose(centres, 0.32 * np.arange(29) + 0.48)
    time_grid = UNAV.time_grid()
    assert time_grid.to_seconds(3.0) == pytest.approx(0.32 * 3 + 0.48)
    first, end = UNAV.frame_windows(29)
    assert first[-1] == 224 and end[-1] == 248 <= 250


def test_grid_presets_have_the_benchmarks_geometry():
    assert GRID_PRESETS["unav100"] == FeatureGrid(25, 8, 24)
    assert GRID_PRESETS["thumos14"] == FeatureGrid(30, 4, 16)
    assert GRID_PRESETS["epic100"] == FeatureGrid(30, 16, 32)
    basic = GRID_PRESETS["basic"]
    assert basic.step_seconds == pytest.approx(0.32)  # UnAV-100's step


def test_a_video_shorter_than_one_window_still_has_one_step():
    assert UNAV.num_steps(0.1) == 1
    assert UNAV.num_steps(0.96) == 1
    assert UNAV.num_steps(1.28) == 2


def test_floating_point_durations_do_not_lose_a_step():
    # 9.96 · 25 is 248.99999999999997 in floating point; 249 − 24 = 225 = 28·8 + 1
    assert UNAV.num_steps(9.96) == 29


@given(duration=st.floats(0.05, 600.0), grid=st.sampled_from(list(GRID_PRESETS.values())))
def test_num_steps_counts_exactly_the_full_windows(duration, grid):
    steps = grid.num_steps(duration)
    frames = duration * grid.fps
    assert steps >= 1
    if frames >= grid.window + 1e-6:
        assert (steps - 1) * grid.stride + grid.window <= frames + 1e-6  # the last fits
        assert steps * grid.stride + grid.window > frames - 1e-6  # one more would not


def test_a_grid_needs_positive_numbers():
    with pytest.raises(ConfigError, match="stride"):
        FeatureGrid(25, 0, 24)


def test_a_grid_of_more_than_a_thousand_steps_a_second_is_refused():
    FeatureGrid(1000, 1, 1)  # the limit itself
    with pytest.raises(ConfigError, match=r"a step every 1e-09 s .*at most 1000 steps per second"):
        FeatureGrid(1e9, 1, 1)


# -- the registry -----------------------------------------------------------------------


def test_registry_names_the_three_extractors():
    assert set(EXTRACTORS) >= {"basic", "vggish", "i3d"}
    assert EXTRACTORS["basic"] is BasicExtractor
    assert EXTRACTORS["vggish"] is VGGishExtractor


def test_an_unknown_extractor_is_a_config_error_listing_the_names():
    with pytest.raises(ConfigError) as excinfo:
        get_extractor("resnet", UNAV)
    message = one_line(excinfo)
    assert "resnet" in message and "basic" in message and "vggish" in message


def test_an_unknown_option_is_a_config_error_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: batch_size, size"):
        get_extractor("basic", UNAV, colour=True)


def test_importing_the_package_loads_neither_torch_nor_av():
    code = "import sys, delcli.features; print('torch' in sys.modules, 'av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the log-mel front end --------------------------------------------------------------


def numpy_log_mel(x: np.ndarray) -> np.ndarray:
    """VGGish's log-mel written out directly in float64 numpy, band by band."""
    x = x.astype(np.float64)
    count = 1 + (len(x) - 400) // 160
    frames = x[np.arange(400)[None, :] + 160 * np.arange(count)[:, None]]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    magnitude = np.abs(np.fft.rfft(frames * hann, n=512))

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    bin_mel = mel(np.linspace(0.0, 8000.0, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for band in range(64):
        low, centre, high = edges[band : band + 3]
        for k in range(1, 257):  # the DC bin gets no weight
            rising = (bin_mel[k] - low) / (centre - low)
            falling = (high - bin_mel[k]) / (high - centre)
            weights[k, band] = max(0.0, min(rising, falling))
    return np.log(magnitude @ weights + 0.01)


@pytest.fixture(scope="module")
def test_audio() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(2.3 * 16000)) / 16000
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))).astype(
        np.float64
    )


def test_log_mel_matches_the_numpy_formula_in_float64(test_audio):
    ours = log_mel_frames(torch.from_numpy(test_audio)).numpy()
    reference = numpy_log_mel(test_audio)
    assert ours.shape == reference.shape == (1 + (len(test_audio) - 400) // 160, 64)
    assert np.abs(ours - reference).max() <= 1e-10


def test_log_mel_matches_the_numpy_formula_in_float32(test_audio):
    ours = log_mel_frames(torch.from_numpy(test_audio.astype(np.float32)))
    assert ours.dtype == torch.float32
    assert np.abs(ours.numpy() - numpy_log_mel(test_audio)).max() <= 1e-4


def test_log_mel_in_chunks_equals_one_pass_with_a_ragged_last_chunk(test_audio, monkeypatch):
    import delcli.features.logmel as logmel

    whole = log_mel_frames(torch.from_numpy(test_audio))
    monkeypatch.setattr(logmel, "FRAMES_PER_CHUNK", 37)  # 227 frames: 6 chunks + 5
    chunked = log_mel_frames(torch.from_numpy(test_audio))
    # bit-equal on some CPUs only: BLAS/FFT kernels may round differently per batch size
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


def test_mel_matrix_gives_the_dc_bin_no_weight():
    weights = mel_matrix()
    assert weights.shape == (257, 64)
    assert torch.all(weights[0] == 0) and torch.all(weights.sum(0) > 0)


def test_too_short_audio_has_no_frames():
    assert log_mel_frames(np.zeros(399, np.float32)).shape == (0, 64)


def test_examples_are_96_frames_every_hop(test_audio):
    frames = log_mel_frames(torch.from_numpy(test_audio))
    for hop_seconds, hop in ((0.96, 96), (0.32, 32)):
        examples = log_mel_examples(test_audio, hop_seconds)
        assert examples.shape == (1 + (frames.shape[0] - 96) // hop, EXAMPLE_FRAMES, 64)
        torch.testing.assert_close(examples[1], frames[hop : hop + 96])


def test_unav_grid_examples_start_at_each_steps_window_and_all_steps_get_one():
    duration = 3.0
    steps = UNAV.num_steps(duration)
    starts = grid_example_starts(UNAV, steps)
    np.testing.assert_array_equal(starts, 32 * np.arange(steps))
    waveform = np.zeros(int(duration * 16000), np.float32)
    padded, shifted = pad_for_examples(waveform, starts)
    frames = log_mel_frames(padded)
    assert frames.shape[0] >= shifted[-1] + EXAMPLE_FRAMES


def test_unav_grid_examples_are_vggish_own_examples_at_a_0_32_s_hop(test_audio):
    steps = UNAV.num_steps(len(test_audio) / 16000)
    starts = grid_example_starts(UNAV, steps)
    padded, shifted = pad_for_examples(test_audio, starts)
    on_grid = frame_examples(log_mel_frames(padded), shifted)
    own = log_mel_examples(test_audio, 0.32)
    assert len(own) == steps  # 2.3 s: both give 5
    torch.testing.assert_close(on_grid, own)


def test_a_grid_shorter_than_one_example_pads_its_audio_at_both_ends():
    # THUMOS14's 0.53 s windows: the 0.96 s example of step 0 is centred at 0.27 s
    thumos = GRID_PRESETS["thumos14"]
    waveform = np.ones(16000, np.float32)
    starts = grid_example_starts(thumos, thumos.num_steps(1.0))
    assert starts[0] == round((8 / 30 - 0.48) * 100) < 0
    padded, shifted = pad_for_examples(waveform, starts)
    assert shifted[0] == 0 and padded[: -starts[0] * 160].max() == 0 and padded[-1] == 0
    assert log_mel_frames(padded).shape[0] >= shifted[-1] + EXAMPLE_FRAMES


# -- the VGGish network and its weights -------------------------------------------------

TORCHVGGISH_KEYS = [
    f"{part}.{i}.{kind}"
    for part, indices in (("features", (0, 3, 6, 8, 11, 13)), ("embeddings", (0, 2, 4)))
    for i in indices
    for kind in ("weight", "bias")
]


@pytest.fixture(scope="module")
def vggish_state() -> dict[str, torch.Tensor]:
    """A random VGGish state dict with PCA parameters, the layout of the converted release."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        state = VGGish(pca=True).state_dict()
        rotation = torch.linalg.qr(torch.randn(128, 128, dtype=torch.float64))[0]
        state["pca_eigen_vectors"] = rotation.contiguous()
        state["pca_means"] = torch.randn(128, dtype=torch.float64) * 0.1
    return state


@pytest.fixture(scope="module")
def vggish_bytes(vggish_state) -> bytes:
    from safetensors.torch import save

    return save(vggish_state)


def test_vggish_state_dict_uses_torchvggish_names():
    state = VGGish().state_dict()
    assert list(state) == TORCHVGGISH_KEYS
    assert state["embeddings.0.weight"].shape == (4096, 512 * 4 * 6)
    assert state["embeddings.4.weight"].shape == (128, 4096)
    assert set(VGGish(pca=True).state_dict()) - set(state) == {"pca_eigen_vectors", "pca_means"}


def test_vggish_from_the_hub_cache_gives_one_quantised_embedding_per_step(
    offline_hub, vggish_bytes, vggish_state, media_io, tmp_path
):
    write_hf_cache(offline_hub, "del-test/vggish", {"vggish.safetensors": vggish_bytes}, COMMIT)
    extractor = get_extractor(
        "vggish", UNAV, weights="hf://del-test/vggish/vggish.safetensors@main"
    )
    assert extractor.outputs == [StreamOutput("vggish", "audio", 128)]
    clip = write_media(
        tmp_path / "tone.mp4", 2.0, frame=grey_frame(), sound=lambda t: 0.3 * np.sin(2e3 * t)
    )
    info = media_io.probe(clip)
    features = extractor.extract(clip, info)["vggish"]
    assert features.shape == (UNAV.num_steps(info.duration), 128)
    assert features.dtype == np.float32
    assert features.min() >= 0 and features.max() <= 255
    assert np.all(features == np.round(features)) and features.std() > 0

    # the same network without post-processing: raw ReLU embeddings
    raw = get_extractor(
        "vggish",
        UNAV,
        weights=f"hf://del-test/vggish/vggish.safetensors@{COMMIT}",
        postprocess=False,
    )
    waveform = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    embedded = raw.embed_waveform(waveform, UNAV.num_steps(2.0))
    assert embedded.shape == (4, 128) and embedded.min() >= 0
    model = VGGish()
    model.load_state_dict({k: v for k, v in vggish_state.items() if not k.startswith("pca")})
    first = log_mel_frames(torch.from_numpy(waveform))[None, :96]
    torch.testing.assert_close(torch.from_numpy(embedded[:1]), model.eval()(first))


def test_vggish_without_weights_says_where_to_get_them():
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("vggish", UNAV)
    assert "scripts/convert_vggish.py" in one_line(excinfo)
    assert "vggish-10086976.pth" in str(excinfo.value)


def test_vggish_random_init_is_for_tests_only_and_excludes_weights(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        get_extractor("vggish", UNAV, weights=str(tmp_path / "w.safetensors"), random_init=True)
    extractor = get_extractor("vggish", UNAV, random_init=True)
    silent = extractor.embed_waveform(np.zeros(8000, np.float32), 1)
    assert silent.shape == (1, 128) and np.isfinite(silent).all()


def test_vggish_asked_for_pca_without_pca_weights_is_a_weights_error(tmp_path, vggish_state):
    from safetensors.torch import save_file

    path = tmp_path / "no_pca.safetensors"
    save_file({k: v for k, v in vggish_state.items() if not k.startswith("pca")}, str(path))
    with pytest.raises(WeightsError, match="PCA"):
        get_extractor("vggish", UNAV, weights=str(path), postprocess=True)


def test_vggish_gives_zeros_for_a_video_without_audio(media_io, tmp_path):
    clip = write_media(tmp_path / "mute.mp4", 1.5, frame=grey_frame())
    extractor = get_extractor("vggish", UNAV, random_init=True)
    features = extractor.extract(clip, media_io.probe(clip))["vggish"]
    assert features.shape == (UNAV.num_steps(1.5), 128) and not features.any()


# -- scripts/convert_vggish.py ----------------------------------------------------------


@pytest.fixture(scope="module")
def converter():
    spec = importlib.util.spec_from_file_location(
        "convert_vggish", REPO_ROOT / "scripts" / "convert_vggish.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_checks_every_key_and_writes_loadable_safetensors(
    converter, vggish_state, tmp_path
):
    network = {k: v for k, v in vggish_state.items() if not k.startswith("pca")}
    torch.save(network, tmp_path / "vggish-10086976.pth")
    # torchvggish's PCA file holds numpy arrays, the means as a (128, 1) column
    pca = {
        "pca_eigen_vectors": vggish_state["pca_eigen_vectors"].numpy(),
        "pca_means": vggish_state["pca_means"].numpy().reshape(-1, 1),
    }
    torch.save(pca, tmp_path / "pca.pth")
    output = tmp_path / "vggish.safetensors"
    report = converter.convert(tmp_path / "vggish-10086976.pth", tmp_path / "pca.pth", output)
    assert len(report) == len(vggish_state) and all(line.startswith("ok") for line in report)

    loaded = load_extractor_weights(str(output))
    assert set(loaded) == set(vggish_state)
    for name, tensor in vggish_state.items():
        assert torch.equal(loaded[name], tensor), name
    from safetensors import safe_open

    with safe_open(str(output), "pt") as handle:
        metadata = handle.metadata()
    source = (tmp_path / "vggish-10086976.pth").read_bytes()
    assert metadata["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert metadata["converter"] == f"convert_vggish.py {converter.CONVERTER_VERSION}"
    assert "pca_sha256" in metadata


def test_converter_maps_torchvggish_module_names(converter, vggish_state):
    wrapped = {f"module.{k}": v for k, v in vggish_state.items() if not k.startswith("pca")}
    wrapped["pproc.pca_means"] = vggish_state["pca_means"].reshape(128, 1)
    mapped = converter.map_keys(wrapped)
    assert "features.0.weight" in mapped and mapped["pca_means"].shape == (128,)


def test_converter_rejects_a_wrong_shape_or_a_missing_key_and_writes_nothing(
    converter, vggish_state, tmp_path
):
    network = {k: v for k, v in vggish_state.items() if not k.startswith("pca")}
    output = tmp_path / "out.safetensors"

    wrong = dict(network, **{"features.0.weight": torch.zeros(32, 1, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(WeightsError) as excinfo:
        converter.convert(tmp_path / "wrong.pth", None, output)
    assert "features.0.weight (32, 1, 3, 3), expected (64, 1, 3, 3)" in one_line(excinfo)

    missing = {k: v for k, v in network.items() if k != "embeddings.4.bias"}
    missing["classifier.weight"] = torch.zeros(2)
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError) as excinfo:
        converter.convert(tmp_path / "missing.pth", None, output)
    message = one_line(excinfo)
    assert "MISSING embeddings.4.bias" in message and "UNEXPECTED classifier.weight" in message
    assert not output.exists()


def test_converter_refuses_a_pickle_with_code(converter, tmp_path):
    torch.save({"features.0.weight": torch.zeros(1), "hook": print}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="not a loadable tensor-only"):
        converter.convert(tmp_path / "evil.pth", None, tmp_path / "out.safetensors")


def test_converter_command_line_reports_errors_in_one_line(converter, tmp_path, capsys):
    assert converter.main([str(tmp_path / "absent.pth"), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().endswith("absent.pth: no such file")


# -- load_extractor_weights -------------------------------------------------------------


@pytest.fixture
def small_weights() -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}


def test_hub_weights_resolve_by_ref_by_commit_and_by_default(offline_hub, small_weights):
    from safetensors.torch import save

    write_hf_cache(offline_hub, "org/model", {"sub/w.safetensors": save(small_weights)}, COMMIT)
    for spec in (
        "hf://org/model/sub/w.safetensors@main",
        f"hf://org/model/sub/w.safetensors@{COMMIT}",
        "hf://org/model/sub/w.safetensors",
    ):
        loaded = load_extractor_weights(spec)
        assert torch.equal(loaded["layer.weight"], small_weights["layer.weight"]), spec


def test_hub_weights_not_in_the_cache_fail_fast_in_one_line(offline_hub, small_weights):
    from safetensors.torch import save

    write_hf_cache(offline_hub, "org/model", {"w.safetensors": save(small_weights)}, COMMIT)
    for spec in (
        "hf://org/model/other.safetensors",
        "hf://org/absent/w.safetensors@main",
        "hf://org/model/w.safetensors@v2",
    ):
        started = time.perf_counter()
        with pytest.raises(WeightsError) as excinfo:
            load_extractor_weights(spec)
        assert time.perf_counter() - started < 1.0
        message = one_line(excinfo)
        assert "not in the Hugging Face cache" in message and "hf download" in message


def test_hub_weights_that_are_not_safetensors_are_refused(offline_hub):
    import pickle

    blob = pickle.dumps({"layer.weight": [1.0, 2.0]})
    write_hf_cache(offline_hub, "org/model", {"w.pth": blob, "w.safetensors": b"\x00" * 40}, COMMIT)
    for name in ("w.pth", "w.safetensors"):
        with pytest.raises(WeightsError, match="not a safetensors file"):
            load_extractor_weights(f"hf://org/model/{name}")


def test_local_weights_load_and_a_missing_path_is_named(tmp_path, small_weights):
    from safetensors.torch import save_file

    save_file(small_weights, str(tmp_path / "w.safetensors"))
    assert set(load_extractor_weights(str(tmp_path / "w.safetensors"))) == {"layer.weight"}
    with pytest.raises(WeightsError, match="no such file"):
        load_extractor_weights(str(tmp_path / "absent.safetensors"))
    torch.save(small_weights, tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="convert it to safetensors"):
        load_extractor_weights(str(tmp_path / "w.pth"))


def test_a_malformed_hub_spec_is_a_weights_error():
    with pytest.raises(WeightsError, match="hf://ORG/NAME/FILE"):
        load_extractor_weights("hf://org/model")


# -- basic ------------------------------------------------------------------------------

BASIC = GRID_PRESETS["basic"]


def square_frame(start: float, end: float, height: int = 48, width: int = 64):
    """Grey frames with a red square in the top-left quarter while start ≤ t < end."""

    def frame(t):
        image = np.full((height, width, 3), 100, dtype=np.uint8)
        if start <= t < end:
            image[4:20, 4:28] = (230, 20, 20)
        return image

    return frame


def tone(frequency: float, start: float, end: float):
    return lambda t: np.where((t >= start) & (t < end), 0.5 * np.sin(2 * np.pi * frequency * t), 0)


@pytest.fixture
def square_and_tone(tmp_path) -> Path:
    return write_media(
        tmp_path / "av.mp4", 4.0, frame=square_frame(1.0, 2.5), sound=tone(1000.0, 2.0, 3.5)
    )


def test_basic_gives_finite_deterministic_features_of_the_declared_shapes(
    media_io, square_and_tone
):
    extractor = get_extractor("basic", BASIC)
    info = media_io.probe(square_and_tone)
    first = extractor.extract(square_and_tone, info)
    second = extractor.extract(square_and_tone, info)
    steps = BASIC.num_steps(info.duration)
    for output in extractor.outputs:
        assert first[output.name].shape == (steps, output.dim)
        assert first[output.name].dtype == np.float32
        assert np.isfinite(first[output.name]).all()
        np.testing.assert_array_equal(first[output.name], second[output.name])
    assert [o.dim for o in extractor.outputs] == [len(VISUAL_NAMES), len(AUDIO_NAMES)]


def test_a_red_square_shows_in_the_colour_statistics(media_io, square_and_tone):
    extractor = get_extractor("basic", BASIC)
    visual = extractor.extract(square_and_tone, media_io.probe(square_and_tone))["basic_visual"]
    starts = BASIC.window_starts(len(visual))
    inside = (starts >= 1.0) & (starts + BASIC.window_seconds <= 2.5)
    outside = (starts + BASIC.window_seconds <= 1.0) | (starts >= 2.5)

    def column(name):
        return visual[:, VISUAL_NAMES.index(name)]

    for name in ("mean_r.mean", "quad0_r.mean", "hue0.mean"):
        assert column(name)[inside].min() > column(name)[outside].max() + 0.02, name
    assert column("quad3_r.mean")[inside].max() - column("quad3_r.mean")[outside].min() < 0.02
    # the square appearing and vanishing is motion in the top-left quarter
    # (a frame's motion is its difference to the previous frame)
    entering = (starts < 1.0) & (starts + BASIC.window_seconds > 1.0)
    still = (starts + BASIC.window_seconds <= 1.0) | (starts - 1 / BASIC.fps >= 2.5)
    assert column("motion_quad0.max")[entering].min() > 0.02
    assert column("motion_quad0.max")[still].max() < 0.002


def frame_statistics_before(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`frame_statistics` as computed before 2026-12-07, the oracle the faster one is
    held to: sums as float32 matrix products (BLAS), variance as E[x²] − mean²."""
    from delcli.features.basic import HUE_BINS, LUMA

    def means(a, axes):
        flat = a.reshape(*a.shape[: a.ndim - axes], -1)
        return flat @ np.full(flat.shape[-1], 1 / flat.shape[-1], dtype=a.dtype)

    n = frames.shape[0]
    x = frames.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
    mean = means(x, 2)
    std = np.sqrt(np.maximum(means(x * x, 2) - mean * mean, 0))
    quads = quarter_means_before(x).transpose(0, 2, 3, 1).reshape(n, 12)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    value = means(np.maximum(np.maximum(r, g), b), 2)
    sub = x[:, :, ::2, ::2]
    r2, g2, b2 = sub[:, 0], sub[:, 1], sub[:, 2]
    high = np.maximum(np.maximum(r2, g2), b2)
    chroma = high - np.minimum(np.minimum(r2, g2), b2)
    saturation = means(chroma / np.maximum(high, 1e-6), 2)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(
        high == r2,
        ((g2 - b2) / safe) % 6,
        np.where(high == g2, (b2 - r2) / safe + 2, (r2 - g2) / safe + 4),
    )
    bins = np.minimum((hue * (HUE_BINS / 6)).astype(np.int64), HUE_BINS - 1)
    index = bins.reshape(n, -1) + np.arange(n)[:, None] * HUE_BINS
    totals = np.bincount(index.ravel(), weights=chroma.ravel(), minlength=n * HUE_BINS)
    hue_bins = (totals.reshape(n, HUE_BINS) / chroma[0].size).astype(np.float32)
    luma = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    edges = [means(np.abs(np.diff(luma, axis=axis)), 2) for axis in (2, 1)]
    columns = np.stack([saturation, value, *edges], axis=1)
    return np.concatenate([mean, std, quads, hue_bins, columns], axis=1), luma


def quarter_means_before(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2:]
    rows = np.zeros((2, h), dtype=a.dtype)
    rows[0, : h // 2], rows[1, h // 2 : h // 2 * 2] = 1 / (h // 2), 1 / (h // 2)
    cols = np.zeros((w, 2), dtype=a.dtype)
    cols[: w // 2, 0], cols[w // 2 : w // 2 * 2, 1] = 1 / (w // 2), 1 / (w // 2)
    return rows @ a @ cols


def motion_statistics_before(luma: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    before = np.concatenate([luma[:1] if previous is None else previous[None], luma[:-1]])
    diff = np.abs(luma - before)
    flat = diff.reshape(len(diff), -1)
    overall = flat @ np.full(flat.shape[1], 1 / flat.shape[1], dtype=np.float32)
    return np.concatenate([overall[:, None], quarter_means_before(diff).reshape(-1, 4)], axis=1)


def colourful_frame(t: float, height: int = 90, width: int = 160) -> np.ndarray:
    """Moving colour gradients with noise, a flat grey band and a saturated block."""
    rng = np.random.default_rng(int(t * 100))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [128 + 100 * np.sin(xx / 20 + 3 * t), 128 + 100 * np.sin(yy / 15 - 2 * t), (xx + yy) % 256],
        axis=-1,
    )
    image = image + rng.normal(0, 8, image.shape)
    image[: height // 3] = 200  # flat: the hardest case for a one-pass variance
    image[50:70, int(40 * t) % 120 : int(40 * t) % 120 + 30] = (250, 30, 200)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colourful_video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("colourful")
    return write_media(folder / "colour.mp4", 3.0, size=(160, 90), frame=colourful_frame)


def test_frame_statistics_match_the_previous_arithmetic_within_float32_rounding(
    media_io, colourful_video
):
    from delcli.features.basic import FRAME_STATS, frame_statistics, motion_statistics

    frames = np.concatenate(list(media_io.frame_batches(colourful_video, BASIC.fps, size=64)))
    frames = np.concatenate([frames, np.full_like(frames[:4], 200)])  # and whole flat frames
    stats, luma = frame_statistics(frames)
    before, luma_before = frame_statistics_before(frames)
    np.testing.assert_array_equal(luma, luma_before)  # the same formula
    hue = [i for i, name in enumerate(FRAME_STATS) if name.startswith("hue")]
    np.testing.assert_array_equal(stats[:, hue], before[:, hue])  # the same bins, same sums
    std = [i for i, name in enumerate(FRAME_STATS) if name.startswith("std")]
    rest = [i for i in range(len(FRAME_STATS)) if i not in hue + std]
    # Sums of 7296 float32 terms: both ways round to ~1e-7 relative on varied frames; the
    # matrix products drifted by up to 1.3e-5 on a flat frame (measured), hence 5e-5,
    # a hundredth of one grey level (1/255).
    np.testing.assert_allclose(stats[:, rest], before[:, rest], rtol=0, atol=5e-5)
    # The old E[x²] − mean² lost up to 2.7e-3 of a flat frame's std (≈ 0.7 grey levels)
    # to cancellation (measured: 200-grey frames); the two-pass variance is exact to 1e-6.
    np.testing.assert_allclose(stats[:, std], before[:, std], rtol=0, atol=4e-3)
    x = frames.transpose(0, 3, 1, 2).astype(np.float32).astype(np.float64) / 255
    np.testing.assert_allclose(stats[:, std], x.std(axis=(2, 3)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        motion_statistics(luma, None), motion_statistics_before(luma, None), rtol=0, atol=5e-5
    )


def test_the_demo_model_finds_the_same_events_with_the_previous_arithmetic(monkeypatch):
    from delcli.features import basic
    from delcli.features.pipeline import extract_video, model_inputs, recipe_extractors
    from delcli.inference.video import detect_events
    from delcli.io import probe
    from delcli.resources import resource_path
    from delcli.weights import load_model

    model, recipe = load_model("demo")
    extractors = recipe_extractors(recipe)
    video = resource_path("demo/demo.mp4")
    info = probe(video)

    def events():
        inputs = model_inputs(extract_video(video, extractors, info), recipe)
        grid = extractors[0].grid.time_grid()
        found, _ = detect_events(model, recipe, *inputs, info.duration, grid)
        return sorted(found, key=lambda e: (e.label, e.start, e.end))

    now = events()
    monkeypatch.setattr(basic, "frame_statistics", frame_statistics_before)
    monkeypatch.setattr(basic, "motion_statistics", motion_statistics_before)
    before = events()
    assert [e.label for e in now] == [e.label for e in before] and len(now) > 10
    for a, b in zip(now, before, strict=True):  # measured: 1e-6 s, 3.6e-6 in score
        assert a.start == pytest.approx(b.start, abs=1e-4)
        assert a.end == pytest.approx(b.end, abs=1e-4)
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_a_tone_shows_in_the_mel_band_holding_its_frequency(media_io, square_and_tone):
    extractor = get_extractor("basic", BASIC)
    audio = extractor.extract(square_and_tone, media_io.probe(square_and_tone))["basic_audio"]
    bands = AUDIO_SPEC.bands
    means = audio[:, :bands]
    starts = BASIC.window_starts(len(audio))
    during = (starts >= 2.05) & (starts + BASIC.window_seconds <= 3.45)
    silent = starts + BASIC.window_seconds <= 1.95
    centres = mel_band_edges(AUDIO_SPEC)[1:-1]
    band = int(np.argmin(np.abs(centres - 1000.0)))
    assert np.all(means[during].argmax(axis=1) == band)
    assert means[during, band].min() > means[silent, band].max() + 3.0
    onset = (starts < 2.0) & (starts + BASIC.window_seconds > 2.0)
    flux_max = audio[:, AUDIO_NAMES.index("flux.max")]
    assert flux_max[onset].max() > 10 * flux_max[silent].max()


def test_basic_gives_zeros_for_a_missing_audio_or_video_track(media_io, tmp_path):
    extractor = get_extractor("basic", BASIC)
    mute = write_media(tmp_path / "mute.mp4", 2.0, frame=square_frame(0.5, 1.0))
    features = extractor.extract(mute, media_io.probe(mute))
    assert not features["basic_audio"].any() and features["basic_visual"].any()

    sound_only = write_media(tmp_path / "sound.mp4", 2.0, sound=tone(440.0, 0.0, 2.0))
    info = media_io.probe(sound_only)
    features = extractor.extract(sound_only, info)
    steps = BASIC.num_steps(info.duration)
    assert features["basic_visual"].shape == (steps, len(VISUAL_NAMES))
    assert not features["basic_visual"].any() and features["basic_audio"].any()


def test_a_clip_shorter_than_one_window_gives_one_step_from_what_there_is(media_io, tmp_path):
    clip = write_media(
        tmp_path / "short.mp4", 0.4, frame=square_frame(0.0, 1.0), sound=tone(1000.0, 0.0, 1.0)
    )
    features = get_extractor("basic", BASIC).extract(clip, media_io.probe(clip))
    visual, audio = features["basic_visual"], features["basic_audio"]
    assert visual.shape == (1, len(VISUAL_NAMES)) and audio.shape == (1, len(AUDIO_NAMES))
    assert np.isfinite(visual).all() and visual[0, VISUAL_NAMES.index("hue0.mean")] > 0


def test_basic_audio_runs_torch_on_one_thread_and_gives_the_count_back(
    media_io, square_and_tone, monkeypatch
):
    extractor = BasicExtractor(BASIC)
    seen = []
    monkeypatch.setattr(
        extractor, "audio_features", lambda blocks, steps: seen.append(torch.get_num_threads())
    )
    torch.set_num_threads(2)  # conftest runs the tests on one
    try:
        extractor.audio_of(square_and_tone, 5)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_basic_audio_of_silence_is_the_log_floor_with_no_spread():
    extractor = BasicExtractor(BASIC)
    audio = extractor.audio_features(np.zeros(16000 * 2, np.float32), BASIC.num_steps(2.0))
    bands = AUDIO_SPEC.bands
    np.testing.assert_allclose(audio[:, :bands], math.log(VGGISH.log_offset), rtol=1e-6)
    assert np.all(audio[:, bands : 2 * bands] < 1e-3)


def whole_file_basic_audio(waveform: np.ndarray, num_steps: int) -> np.ndarray:
    """`basic_audio` the direct way: log-mel of the whole (padded) waveform, then pooled."""
    from delcli.features.basic import pool_windows

    spec = AUDIO_SPEC
    per_window = max(1, spec.num_frames(round(BASIC.window_seconds * spec.sample_rate)))
    first = np.rint(BASIC.window_starts(num_steps) * spec.frame_rate).astype(np.int64)
    end = first + per_window
    needed = spec.samples_for(int(end[-1]))
    padded = np.pad(waveform, (0, max(0, needed - waveform.size)))
    mel = log_mel_frames(torch.from_numpy(padded).double(), spec).numpy()
    flux = np.maximum(np.diff(mel, axis=0, prepend=mel[:1]), 0).mean(axis=1, keepdims=True)
    return np.concatenate(
        [
            pool_windows(mel, first, end, ("mean", "std", "max")),
            pool_windows(flux, first, end, ("mean", "max")),
        ],
        axis=1,
    )


@pytest.mark.parametrize("block", [1_000, 4_321, 16_000, 10**6])
def test_basic_audio_from_blocks_equals_the_whole_file_computation(block):
    rng = np.random.default_rng(3)
    seconds = 23.7
    t = np.arange(int(seconds * 16000)) / 16000
    waveform = (0.3 * np.sin(2 * np.pi * (300 + 40 * t) * t) * (t % 3 < 1.5)).astype(np.float32)
    waveform += (0.05 * rng.standard_normal(t.size)).astype(np.float32)
    num_steps = BASIC.num_steps(seconds)
    expected = whole_file_basic_audio(waveform, num_steps)
    blocks = (waveform[i : i + block] for i in range(0, waveform.size, block))
    streamed = BasicExtractor(BASIC).audio_features(blocks, num_steps)
    assert streamed.shape == expected.shape == (num_steps, len(AUDIO_NAMES))
    np.testing.assert_allclose(streamed, expected, rtol=1e-4, atol=1e-4)
