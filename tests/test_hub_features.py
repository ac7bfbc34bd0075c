"""Extractors from the Hub: `dinov2` and `mert` read the folders their authors publish
(config.json + model.safetensors), from a local folder, the Hugging Face cache or a local
HF_ENDPOINT; `hf://` extractor weights are downloaded when the network is allowed."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import online_hub
from test_features import write_media

from delcli.cli import app as cli_app
from delcli.cli import extract_cmd
from delcli.errors import ConfigError, WeightsError
from delcli.features import GRID_PRESETS, StreamOutput, get_extractor
from delcli.features.dinov2 import IMAGENET_MEAN, IMAGENET_STD
from delcli.features.mert import chunk_bounds, frame_geometry

transformers = pytest.importorskip("transformers")

UNAV = GRID_PRESETS["unav100"]
COMMIT = "c0ffee0123456789abcdef0123456789abcdef01"


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# -- tiny checkpoints in the Hub's layout -----------------------------------------------------


@pytest.fixture(scope="module")
def dinov2_folder(tmp_path_factory) -> Path:
    """A random 2-layer DINOv2 as `save_pretrained` writes it: the names of facebook/dinov2-*
    (`attention.attention.query`, …) in model.safetensors, and config.json."""
    folder = tmp_path_factory.mktemp("dinov2-tiny")
    config = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=70,
        patch_size=14,
    )
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def mert_folder(tmp_path_factory) -> Path:
    """A random MERT-v1-shaped checkpoint as m-a-p publishes MERT-v1: config.json with
    model_type mert_model, auto_map and MERT's own keys; the 7-layer 400/320-sample
    convolution front end; the position convolution's weight norm as weight_g/weight_v."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("mert-tiny")
    values = {
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "conv_dim": [8] * 7,
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "feat_extract_norm": "group",
        "feat_proj_layer_norm": True,
        "do_stable_layer_norm": False,
    }
    torch.manual_seed(1)
    transformers.HubertModel(transformers.HubertConfig(**values)).save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    renamed = {
        key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): value
        for key, value in state.items()
    }
    assert any(key.endswith("weight_g") for key in renamed)
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="mert_model",
        architectures=["MERTModel"],
        auto_map={
            "AutoConfig": "configuration_MERT.MERTConfig",
            "AutoModel": "modeling_MERT.MERTModel",
        },
        feature_extractor_cqt=False,
        feature_extractor_cqt_bins=336,
        deepnorm=False,
        attention_relax=-1.0,
        sample_rate=24000,
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s of moving colour and a chirp, written with PyAV."""

    def frame(t: float) -> np.ndarray:
        y, x = np.mgrid[0:48, 0:64]
        image = np.stack([x * 4 + 40 * t, y * 5, (x + y + 60 * t) % 255], axis=-1)
        return (image % 256).astype(np.uint8)

    folder = tmp_path_factory.mktemp("clip")
    return write_media(
        folder / "clip.mp4", 2.0, frame=frame, sound=lambda t: 0.3 * np.sin(2e3 * t * (1 + t))
    )


@pytest.fixture
def local_hub(hf_cache, monkeypatch):
    """Online, with HF_ENDPOINT at a LocalHub on 127.0.0.1 and an empty cache."""
    with online_hub(monkeypatch) as hub:
        yield hub


# -- dinov2 -----------------------------------------------------------------------------------


def reference_dinov2(folder: Path, clip: Path, grid) -> np.ndarray:
    """The same features computed another way: transformers' own loading, preprocessing by
    hand, and each step's frames picked by frame number from the grid."""
    from delcli.io import iter_frames, probe

    model = transformers.Dinov2Model.from_pretrained(str(folder)).eval()
    duration = probe(clip).duration
    steps = grid.num_steps(duration)
    frames = np.stack(list(iter_frames(clip, grid.fps, size=256, crop=224)))
    pixels = (frames.astype(np.float64) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        tokens = model(pixel_values=torch.tensor(pixels).permute(0, 3, 1, 2).float())
    hidden = tokens.last_hidden_state.double().numpy()
    per_frame = np.concatenate([hidden[:, 0], hidden[:, 1:].mean(axis=1)], axis=1)
    first, end = grid.frame_windows(steps)
    return np.stack([per_frame[a:b].mean(axis=0) for a, b in zip(first, end, strict=True)])


def test_dinov2_rows_are_the_mean_cls_and_patch_token_of_each_steps_frames(dinov2_folder, clip):
    from delcli.io import probe

    extractor = get_extractor("dinov2", UNAV, weights=str(dinov2_folder), batch_size=7)
    assert extractor.outputs == [StreamOutput("dinov2", "visual", 2 * 32)]
    info = probe(clip)
    features = extractor.extract(clip, info)["dinov2"]
    assert features.shape == (UNAV.num_steps(info.duration), 64) == (4, 64)
    assert features.dtype == np.float32
    expected = reference_dinov2(dinov2_folder, clip, UNAV)
    np.testing.assert_allclose(features, expected, atol=1e-5, rtol=0)
    assert np.abs(np.diff(features, axis=0)).max() > 1e-3  # the picture moves


def test_dinov2_may_sample_fewer_frames_and_still_fills_every_step(dinov2_folder, clip):
    from delcli.io import probe

    extractor = get_extractor("dinov2", UNAV, weights=str(dinov2_folder), sample_fps=2.0)
    features = extractor.extract(clip, probe(clip))["dinov2"]
    assert features.shape == (4, 64) and np.isfinite(features).all()


def test_a_folder_with_only_a_pickle_names_the_converter(tmp_path, dinov2_folder):
    (tmp_path / "config.json").write_bytes((dinov2_folder / "config.json").read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("dinov2", UNAV, weights=str(tmp_path))
    message = one_line(excinfo)
    assert "scripts/convert_hub_checkpoint.py" in message and "never loads" in message


def test_a_checkpoint_of_another_model_is_refused(dinov2_folder, mert_folder):
    with pytest.raises(WeightsError, match="not DINOv2"):
        get_extractor("dinov2", UNAV, weights=str(mert_folder))
    with pytest.raises(WeightsError, match="not MERT"):
        get_extractor("mert", UNAV, weights=str(dinov2_folder))


def test_a_checkpoint_missing_tensors_is_refused_not_half_loaded(tmp_path, dinov2_folder):
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_bytes((dinov2_folder / "config.json").read_bytes())
    state = load_file(dinov2_folder / "model.safetensors")
    del state["encoder.layer.1.mlp.fc2.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("dinov2", UNAV, weights=str(tmp_path))
    assert "missing" in one_line(excinfo)


def run(capsys, *args: str) -> tuple[int, str, str]:
    if not any(c.name == "extract" for c in cli_app.app.registered_commands):
        extract_cmd.register(cli_app.app)
    code = cli_app.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_del_extract_with_dinov2_from_a_local_folder(tmp_path, dinov2_folder, clip, capsys):
    out = tmp_path / "feats"
    code, _, err = run(
        capsys, "extract", str(clip), "--extractor", "dinov2", "--grid", "unav100",
        "--weights", f"dinov2={dinov2_folder}", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    written = np.load(out / "clip_dinov2.npy")
    assert written.shape == (4, 64) and written.dtype == np.float32
    np.testing.assert_allclose(written, reference_dinov2(dinov2_folder, clip, UNAV), atol=1e-5)


# -- downloads: a bare repo id, hf://, and offline --------------------------------------------


def test_a_repo_id_is_downloaded_verified_and_then_used_offline(
    local_hub, dinov2_folder, clip, hf_cache, monkeypatch
):
    from delcli.io import probe

    local_hub.add("facebook/dinov2-tiny", files_of(dinov2_folder), COMMIT)
    extractor = get_extractor("dinov2", UNAV, weights="facebook/dinov2-tiny")
    assert sorted(local_hub.downloads()) == [
        f"/facebook/dinov2-tiny/resolve/{COMMIT}/model.safetensors",
        "/facebook/dinov2-tiny/resolve/main/config.json",
    ]
    snapshot = hf_cache / "models--facebook--dinov2-tiny" / "snapshots" / COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    online = extractor.extract(clip, probe(clip))["dinov2"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local_hub.requests.clear()
    for spec in ("facebook/dinov2-tiny", f"hf://facebook/dinov2-tiny@{COMMIT}"):
        again = get_extractor("dinov2", UNAV, weights=spec).extract(clip, probe(clip))["dinov2"]
        np.testing.assert_array_equal(again, online)
    assert local_hub.requests == []


def test_a_repo_not_cached_while_offline_fails_at_once_in_one_line(hf_cache):
    started = time.perf_counter()
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("dinov2", UNAV, weights="facebook/dinov2-base")
    assert time.perf_counter() - started < 1.0
    message = one_line(excinfo)
    assert "HF_HUB_OFFLINE is set" in message
    assert "hf download facebook/dinov2-base config.json model.safetensors" in message


def test_a_repo_without_safetensors_names_the_converter(local_hub, dinov2_folder):
    files = {"config.json": (dinov2_folder / "config.json").read_bytes(), "pytorch_model.bin": b"x"}
    local_hub.add("org/pickled", files, COMMIT)
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("dinov2", UNAV, weights="hf://org/pickled")
    message = one_line(excinfo)
    assert "no file model.safetensors" in message and "convert_hub_checkpoint.py" in message
    assert not [path for path in local_hub.downloads() if path.endswith(".bin")]


def test_hf_extractor_weights_are_downloaded_when_online(local_hub, hf_cache):
    from safetensors.torch import save

    from delcli.features.weights import load_extractor_weights

    tensors = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    local_hub.add("org/weights", {"w.safetensors": save(tensors)}, COMMIT)
    loaded = load_extractor_weights("hf://org/weights/w.safetensors")
    assert torch.equal(loaded["layer.weight"], tensors["layer.weight"])
    assert local_hub.downloads() == ["/org/weights/resolve/main/w.safetensors"]
    blob = hf_cache / "models--org--weights" / "blobs"
    assert [p.name for p in blob.iterdir()] == [hashlib.sha256(save(tensors)).hexdigest()]


def test_a_download_that_differs_from_the_announced_checksum_is_not_used(
    local_hub, hf_cache, monkeypatch
):
    import hub_server
    from safetensors.torch import save

    from delcli.features.weights import load_extractor_weights

    data = save({"w": torch.zeros(2)})
    local_hub.add("org/weights", {"w.safetensors": data}, COMMIT)
    monkeypatch.setattr(hub_server, "announced_etag", lambda name, data: "ab" * 32)
    with pytest.raises(WeightsError) as excinfo:
        load_extractor_weights("hf://org/weights/w.safetensors")
    assert "does not match the checksum the Hub announced" in one_line(excinfo)


def test_an_unreachable_endpoint_fails_fast(hf_cache, monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    started = time.perf_counter()
    with pytest.raises(WeightsError) as excinfo:
        get_extractor("mert", UNAV, weights="m-a-p/MERT-v1-95M")
    assert time.perf_counter() - started < 5.0
    assert "the Hub is unreachable" in one_line(excinfo)


# -- mert -------------------------------------------------------------------------------------


def reference_mert(folder: Path, waveform: np.ndarray, grid, steps: int) -> np.ndarray:
    """HubertModel.from_pretrained on the whole (short) clip, every layer averaged, frames
    placed at their receptive field's centre, each step the mean of its frames."""
    values = json.loads((folder / "config.json").read_text())
    for key in ("model_type", "auto_map", "architectures", "transformers_version"):
        values.pop(key)
    model = transformers.HubertModel.from_pretrained(
        str(folder), config=transformers.HubertConfig(**values)
    ).eval()
    x = torch.tensor(waveform, dtype=torch.float64)
    x = ((x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)).float()[None]
    with torch.no_grad():
        states = model(input_values=x, output_hidden_states=True).hidden_states
    frames = torch.stack(states[1:]).mean(dim=0)[0].double().numpy()
    centres = (np.arange(len(frames)) * 320 + 200) / 24000
    starts = grid.window_starts(steps)
    rows = []
    for start in starts:
        inside = (centres >= start) & (centres < start + grid.window_seconds)
        rows.append(frames[inside].mean(axis=0))
    return np.stack(rows)


def test_mert_from_a_local_endpoint_gives_layer_mean_rows_on_the_grid(local_hub, mert_folder, clip):
    from delcli.io import probe, read_audio

    local_hub.add("m-a-p/MERT-tiny", files_of(mert_folder), COMMIT)
    extractor = get_extractor("mert", UNAV, weights=f"hf://m-a-p/MERT-tiny@{COMMIT}")
    assert extractor.outputs == [StreamOutput("mert", "audio", 32)]
    assert (extractor.sample_rate, frame_geometry(extractor.model.config)) == (24000, (400, 320))
    info = probe(clip)
    features = extractor.extract(clip, info)["mert"]
    assert features.shape == (UNAV.num_steps(info.duration), 32) == (4, 32)
    waveform = read_audio(clip, 24000)[: round(UNAV.window_starts(4)[-1] * 24000 + 0.96 * 24000)]
    expected = reference_mert(mert_folder, waveform, UNAV, 4)
    np.testing.assert_allclose(features, expected, atol=1e-5, rtol=0)


def test_mert_chunks_long_audio_and_joins_a_short_tail():
    assert chunk_bounds(10, 4, 3) == [(0, 4), (4, 10)]
    assert chunk_bounds(11, 4, 3) == [(0, 4), (4, 8), (8, 11)]
    assert chunk_bounds(3, 4, 3) == [(0, 3)]


def test_mert_layers_option_picks_layers(mert_folder):
    waveform = np.random.default_rng(0).standard_normal(24000 * 2).astype(np.float32) * 0.1
    first = get_extractor("mert", UNAV, weights=str(mert_folder), layers=[1])
    mean = get_extractor("mert", UNAV, weights=str(mert_folder))
    one, every = first.embed_waveform(waveform, 4), mean.embed_waveform(waveform, 4)
    assert one.shape == every.shape == (4, 32) and not np.allclose(one, every)
    with pytest.raises(ConfigError, match="layers"):
        get_extractor("mert", UNAV, weights=str(mert_folder), layers=[7])


def test_a_mert_configuration_with_extras_hubert_lacks_is_refused(tmp_path, mert_folder):
    for name, data in files_of(mert_folder).items():
        (tmp_path / name).write_bytes(data)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "feature_extractor_cqt": True}))
    with pytest.raises(WeightsError, match="feature_extractor_cqt"):
        get_extractor("mert", UNAV, weights=str(tmp_path))


# -- the paper's Table 7 recipes --------------------------------------------------------------

TABLE_7 = {  # recipe: (base recipe, tIoUs, the paper's DINOv2+MERT row, its average)
    "thumos14-dinov2-mert": (
        "thumos14",
        [0.3, 0.4, 0.5, 0.6, 0.7],
        [81.5, 79.1, 73.1, 70.8, 64.6],
        73.3,
    ),
    "unav100-dinov2-mert": (
        "unav100",
        [0.5, 0.6, 0.7, 0.8, 0.9],
        [55.0, 49.7, 44.1, 37.4, 28.4],
        52.7,
    ),
}


@pytest.mark.parametrize("name", sorted(TABLE_7))
def test_table_7_recipes_train_on_dinov2_and_mert_outputs_of_the_documented_widths(name):
    from delcli.recipe import load_recipe

    base_name, tious, row, average = TABLE_7[name]
    recipe, base = load_recipe(name), load_recipe(base_name)
    assert [spec.name for spec in recipe.features.extractors] == ["dinov2", "mert"]
    assert recipe.data.visual.files == ["{video}_dinov2.npy"]
    assert recipe.data.audio.files == ["{video}_mert.npy"]
    # DINOv2-B: CLS ‖ mean patch = 2 × 768; MERT-v1-95M: 768
    assert (recipe.data.visual.dim, recipe.data.audio.dim) == (1536, 768)
    assert (recipe.model.visual_dim, recipe.model.audio_dim) == (1536, 768)
    assert (recipe.paper.table, recipe.paper.tious, recipe.paper.map) == ("Table 7", tious, row)
    assert recipe.paper.average == average
    same = ("benchmark", "classes", "fps", "stride", "window", "train_split", "test_split")
    assert all(getattr(recipe.data, key) == getattr(base.data, key) for key in same)
    assert recipe.train == base.train and recipe.inference == base.inference


def test_del_zoo_list_shows_the_table_7_recipes(capsys):
    code = cli_app.main(["zoo", "list", "--format", "json"])
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 0
    for name in TABLE_7:
        assert listed[name]["features"]["visual_dim"] == 1536
        assert [e["name"] for e in listed[name]["features"]["extractors"]] == ["dinov2", "mert"]
        assert listed[name]["paper"]["table"] == "Table 7"


def test_a_pickled_checkpoint_converts_to_the_folder_the_extractor_reads(tmp_path, mert_folder):
    import importlib.util

    from safetensors.torch import load_file

    script = Path(__file__).parent.parent / "scripts" / "convert_hub_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_hub_checkpoint", script)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)

    downloaded = tmp_path / "dl"
    downloaded.mkdir()
    (downloaded / "config.json").write_bytes((mert_folder / "config.json").read_bytes())
    torch.save(load_file(mert_folder / "model.safetensors"), downloaded / "pytorch_model.bin")
    with pytest.raises(WeightsError, match=r"convert_hub_checkpoint\.py"):
        get_extractor("mert", UNAV, weights=str(downloaded))

    out = tmp_path / "mert"
    code = converter.main(
        [str(downloaded / "pytorch_model.bin"), "-o", str(out), "--check", "mert"]
    )
    assert code == 0
    waveform = np.random.default_rng(1).standard_normal(48000).astype(np.float32)
    converted = get_extractor("mert", UNAV, weights=str(out)).embed_waveform(waveform, 4)
    original = get_extractor("mert", UNAV, weights=str(mert_folder)).embed_waveform(waveform, 4)
    np.testing.assert_array_equal(converted, original)


def test_del_extract_downloads_hf_vggish_weights_when_online(local_hub, clip, tmp_path, capsys):
    from safetensors.torch import save

    from delcli.features.vggish import VGGish

    torch.manual_seed(0)  # float16 halves the 288 MB of float32 VGGish; loading casts it back
    state = {k: v.half() for k, v in VGGish().state_dict().items()}
    local_hub.add("org/vggish", {"vggish.safetensors": save(state)}, COMMIT)
    out = tmp_path / "feats"
    code, _, err = run(
        capsys, "extract", str(clip), "--extractor", "vggish", "--grid", "unav100",
        "--weights", "vggish=hf://org/vggish/vggish.safetensors", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert local_hub.downloads() == ["/org/vggish/resolve/main/vggish.safetensors"]
    assert np.load(out / "clip_vggish.npy").shape == (4, 128)
