"""`del export` and `--backend onnxruntime`: the exported network is the network.

One tiny model (the demo's features, random weights) is exported once per format
through the CLI; ONNX Runtime must reproduce the eager logits at lengths and batch
sizes the export never saw, and give the same detections.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from delcli.cli.app import main
from delcli.data.batch import TimeGrid
from delcli.errors import ConfigError, ExportError
from delcli.export.graph import ExportGraph, example_inputs, min_steps, time_multiple
from delcli.export.runtime import OnnxNetwork
from delcli.export.writers import _compare, export_format, export_model
from delcli.files import atomic_path
from delcli.inference.predictor import video_detections
from delcli.model.del_model import DELModel
from delcli.recipe import load_recipe, recipe_to_dict
from delcli.synth.video import CLASSES as SYNTH_CLASSES
from delcli.weights import load_model, save_weights

pytest.importorskip("onnxruntime")

CLASSES = [c.name for c in SYNTH_CLASSES]


def tiny_recipe(**model):
    """The demo's feature recipe (basic extractor, 75 + 98 channels) on a tiny network
    (export time grows with the number of operations, not their size)."""
    return load_recipe(
        {
            "name": "tiny-export",
            "title": "tiny network for export tests",
            "data": {
                "visual": {"files": ["{video}_basic_visual.npy"], "dim": 75},
                "audio": {"files": ["{video}_basic_audio.npy"], "dim": 98},
                "fps": 12.5,
                "stride": 4,
                "window": 8,
                "classes": CLASSES,
            },
            "features": {"extractors": [{"name": "basic"}]},
            "model": {
                "visual_dim": 75,
                "audio_dim": 98,
                "num_classes": len(CLASSES),
                "max_seq_len": 16,  # level 1 (8 steps) is shorter than the window: global
                "embed_dim": 32,
                "n_heads": 2,
                "adapter_heads": 2,
                "n_aac": 1,
                "n_stem": 1,
                "n_levels": 2,
                "window_size": 9,
                "head_dim": 32,
                "head_layers": 1,
                "projection_dim": 8,
                "prior_prob": 0.3,  # untrained scores near 0.3: every video has events
                **model,
            },
        }
    )


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny model's weights, and its ONNX export written by `del export`."""
    root = tmp_path_factory.mktemp("export")
    recipe = tiny_recipe()
    torch.manual_seed(0)
    network = DELModel(recipe.model)
    for norm in network.normalizations().values():  # statistics travel into the graph
        dim = norm.mean.shape[0]
        norm.set_statistics(torch.linspace(-2.0, 3.0, dim), torch.linspace(0.5, 2.0, dim), 99)
    weights = root / "tiny.safetensors"
    save_weights(weights, network.state_dict(), recipe)
    onnx_file = root / "tiny.onnx"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["export", "--model", str(weights), "-o", str(onnx_file)])
    assert code == 0, stderr.getvalue()
    model, _ = load_model(str(weights))
    return {
        "root": root,
        "recipe": recipe,
        "weights": weights,
        "onnx": onnx_file,
        "summary": stderr.getvalue(),
        "model": model,
        "network": OnnxNetwork(onnx_file),
    }


def inputs(config, batch: int, length: int, valid: list[int], seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(length)[None, :] < torch.tensor(valid)[:, None]
    visual = torch.randn(batch, length, config.visual_dim, generator=generator)
    audio = torch.randn(batch, length, config.audio_dim, generator=generator)
    return visual * mask[..., None], audio * mask[..., None], mask


# -- parity ----------------------------------------------------------------------------------


def test_the_export_command_summarises_the_file(exported):
    summary = exported["summary"]
    assert "time_multiple" not in summary  # people's words: "a multiple of 4"
    assert f"a multiple of {time_multiple(exported['recipe'].model)}" in summary
    assert "visual (batch, time, 75)" in summary and "cls_logits (batch, points, 8)" in summary
    assert exported["onnx"].stat().st_mode & 0o777 == 0o644
    assert [p.name for p in exported["root"].iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("batch", "length", "valid"),
    [
        (1, 4, [3]),  # shorter than the graph's shortest input (8)
        (3, 10, [10, 7, 1]),  # not a multiple of time_multiple (4)
        (2, 44, [44, 29]),  # longer than the example traced at export (8)
        (1, 64, [61]),  # longer than max_seq_len: as a window of a long video
    ],
)
def test_onnx_runtime_matches_eager_logits_and_detections(exported, batch, length, valid):
    model, network, recipe = exported["model"], exported["network"], exported["recipe"]
    visual, audio, mask = inputs(model.config, batch, length, valid)
    with torch.no_grad():
        eager = model(visual, audio, mask)
    found = network(visual, audio, mask)
    for name in ("cls_logits", "offsets", "masks"):
        for e, f in zip(getattr(eager, name), getattr(found, name), strict=True):
            assert e.shape == f.shape, name
            if name == "masks":
                assert torch.equal(e, f)
    for level, level_mask in enumerate(eager.masks):
        for name in ("cls_logits", "offsets"):
            e, f = getattr(eager, name)[level], getattr(found, name)[level]
            assert (e - f)[level_mask].abs().max() <= 1e-4, (name, level)

    grid = TimeGrid.from_frames(12.5, 4, 8)
    for e, f, steps in zip(model.candidates(eager), network.candidates(found), valid, strict=True):
        duration = grid.to_seconds(float(steps))
        kept = [
            video_detections(
                c.segments, c.scores, c.labels, grid, duration, recipe.inference.nms, 100
            )
            for c in (e, f)
        ]
        assert len(kept[0].scores) == len(kept[1].scores) > 0
        assert torch.equal(kept[0].class_ids, kept[1].class_ids)
        assert torch.allclose(kept[0].segments, kept[1].segments, atol=1e-4, rtol=0)
        assert torch.allclose(kept[0].scores, kept[1].scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "variant",
    [
        {"modalities": "v"},
        {"modalities": "a"},
        {"aac": False, "pan": False},
        {"n_levels": 3, "window_size": 5, "max_seq_len": 64},  # local attention on 3 levels
        {"position_encoding": True, "max_seq_len": 48},
        {"window_size": 0},  # global attention everywhere
        {"pan_dim": 8},  # a PAN narrower than the model
    ],
    ids=[
        "visual-only",
        "audio-only",
        "aac-pan-off",
        "three-local-levels",
        "position",
        "global",
        "narrow-pan",
    ],
)
def test_the_traced_onnx_graph_is_the_network_for_every_model_shape(variant, tmp_path):
    """The ONNX graph is traced once on two videos of `min_steps`: every model shape must
    still follow other batch sizes and lengths (sizes are traced, not baked in)."""
    import onnxruntime as ort

    recipe = tiny_recipe(**variant)
    torch.manual_seed(0)
    model = DELModel(recipe.model).eval()
    summary = export_model(model, recipe, tmp_path / "m.onnx", "onnx")
    assert summary.max_abs_diff is not None and summary.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    multiple = time_multiple(model.config)
    longest = 48 if variant.get("position_encoding") else 9 * multiple
    for batch, length in ((1, min_steps(model.config)), (3, 5 * multiple), (2, longest)):
        feeds = example_inputs(model.config, batch, length)
        with torch.no_grad():
            eager = [t.numpy() for t in ExportGraph(model)(*feeds)]
        found = session.run(None, {n: x.numpy() for n, x in zip(names, feeds, strict=True)})
        for e, f in zip(eager, found, strict=True):
            assert e.shape == f.shape
            assert np.abs(e - f).max() <= 1e-4, (batch, length)


def test_the_onnx_file_runs_with_onnxruntime_and_numpy_alone(exported, tmp_path):
    """A consumer without del: metadata, padding to the time multiple, one run."""
    config = exported["recipe"].model
    visual, audio, mask = inputs(config, 2, 21, [21, 9])
    np.savez(tmp_path / "in.npz", visual=visual.numpy(), audio=audio.numpy(), mask=mask.numpy())
    script = f"""
import json, sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession({str(exported["onnx"])!r}, providers=["CPUExecutionProvider"])
meta = {{k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}}
data = dict(np.load({str(tmp_path / "in.npz")!r}))
T = data["mask"].shape[1]
padded = max(meta["min_steps"], -(-T // meta["time_multiple"]) * meta["time_multiple"])
feeds = {{n: np.pad(data[n], [(0, 0), (0, padded - T)] + [(0, 0)] * (data[n].ndim - 2))
         for n in meta["inputs"]}}
logits, offsets = session.run(meta["outputs"], feeds)
np.savez({str(tmp_path / "out.npz")!r}, logits=logits, offsets=offsets, padded=padded)
print(json.dumps({{"delcli": "delcli" in sys.modules, "classes": meta["classes"],
                  "strides": meta["strides"]}}))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"delcli": False, "classes": CLASSES, "strides": [1, 2]}
    out = np.load(tmp_path / "out.npz")
    padded = int(out["padded"])
    pad = [torch.nn.functional.pad(x, (0, 0, 0, padded - 21)) for x in (visual, audio)]
    with torch.no_grad():
        logits, offsets = ExportGraph(exported["model"])(
            *pad, torch.nn.functional.pad(mask, (0, padded - 21))
        )
    assert np.abs(out["logits"] - logits.numpy()).max() <= 1e-4
    assert np.abs(out["offsets"] - offsets.numpy()).max() <= 1e-4


def test_the_export_command_shows_each_stage_on_stderr(exported):
    lines = [line for line in exported["summary"].splitlines() if "export " in line]
    stages = [line.split("note: ", 1)[-1].rsplit(" (", 1)[0] for line in lines[:2]]
    assert stages == [
        "export 1/2: tracing the network to ONNX (opset 23)",
        "export 2/2: writing and checking the ONNX file with ONNX Runtime",
    ]


@pytest.mark.parametrize("length", [1, 3, 37, 200])
def test_the_onnx_graph_takes_any_length_and_pads_inside(exported, length):
    """A bare ONNX Runtime user feeds T steps as they are: the graph pads to its time
    multiple itself and returns each level's ⌈T / stride⌉ points, as the eager network
    gives on the padded input."""
    import onnxruntime as ort

    config = exported["recipe"].model
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    visual, audio, mask = inputs(config, 2, length, [length, max(1, length // 2)])
    feeds = {"visual": visual.numpy(), "audio": audio.numpy(), "mask": mask.numpy()}
    logits, offsets = session.run(["cls_logits", "offsets"], feeds)

    padded = max(min_steps(config), -(-length // time_multiple(config)) * time_multiple(config))
    grow = padded - length
    with torch.no_grad():
        expected = ExportGraph(exported["model"])(
            torch.nn.functional.pad(visual, (0, 0, 0, grow)),
            torch.nn.functional.pad(audio, (0, 0, 0, grow)),
            torch.nn.functional.pad(mask, (0, grow)),
        )
    strides = [2**level for level in range(config.n_levels)]
    for found, full in zip((logits, offsets), expected, strict=True):
        levels = full.split([padded // s for s in strides], dim=1)
        kept = torch.cat([p[:, : -(-length // s)] for p, s in zip(levels, strides, strict=True)], 1)
        assert found.shape == tuple(kept.shape)
        assert np.abs(found - kept.numpy()).max() <= 1e-4


def test_the_metadata_carries_recipe_classes_and_geometry(exported):
    import onnx

    network, recipe = exported["network"], exported["recipe"]
    info = network.info
    assert recipe_to_dict(info.recipe) == recipe_to_dict(recipe)
    assert info.classes == CLASSES
    assert info.time_multiple == time_multiple(recipe.model) == 4
    assert info.min_steps == min_steps(recipe.model) == 8
    assert info.inputs == ["visual", "audio", "mask"]
    assert info.outputs == ["cls_logits", "offsets"]
    shapes = {i.name: i.shape for i in network.session.get_inputs()}
    assert shapes == {"visual": ["batch", "time", 75], "audio": ["batch", "time", 98],
                      "mask": ["batch", "time"]}  # fmt: skip
    props = {p.key: json.loads(p.value) for p in onnx.load(exported["onnx"]).metadata_props}
    assert props["format"] == "del-export-1"
    assert (props["feature_fps"], props["feature_stride"], props["feature_window"]) == (12.5, 4, 8)
    assert props["extractors"] == ["basic"]


def test_pt2_round_trip_gives_the_eager_outputs(exported, capsys):
    # a one-stream model without AAC and PAN: cheaper to trace, and its graph takes two inputs
    recipe = tiny_recipe(modalities="v", aac=False, pan=False, scl=False)
    torch.manual_seed(1)
    model = DELModel(recipe.model).eval()
    weights, out = exported["root"] / "visual.safetensors", exported["root"] / "visual.pt2"
    save_weights(weights, model.state_dict(), recipe)
    code, _, err = run(capsys, "export", "--model", weights, "-o", out)
    assert code == 0, err
    extra = {"del_export.json": ""}
    program = torch.export.load(out, extra_files=extra)
    metadata = json.loads(extra["del_export.json"])
    assert json.loads(metadata["inputs"]) == ["visual", "mask"]
    assert json.loads(metadata["classes"]) == CLASSES
    for batch, blocks in ((1, 2), (3, 5)):
        example = example_inputs(model.config, batch, blocks * time_multiple(model.config))
        with torch.no_grad():
            expected = ExportGraph(model)(*example)
            found = program.module()(*example)
        for e, f in zip(expected, found, strict=True):
            assert (e - f).abs().max() <= 1e-5


def test_safetensors_export_is_the_weights_with_their_recipe(exported, capsys):
    out = exported["root"] / "copy.safetensors"
    code, _, err = run(capsys, "export", "-m", exported["weights"], "-o", out)
    assert code == 0, err
    model, recipe = load_model(str(out))
    assert recipe_to_dict(recipe) == recipe_to_dict(exported["recipe"])
    for name, tensor in exported["model"].state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)


# -- the onnxruntime backend -----------------------------------------------------------------


def test_predict_with_onnxruntime_gives_the_torch_backends_events(exported, capsys):
    results = {}
    for backend, weights in (("torch", exported["weights"]), ("onnxruntime", exported["onnx"])):
        code, out, err = run(
            capsys, "predict", "--demo", "--format", "json", "--backend", backend, "-w", weights
        )
        assert code == 0, err
        [video] = json.loads(out)
        results[backend] = video["events"]
    torch_events, ort_events = results["torch"], results["onnxruntime"]
    assert len(torch_events) == len(ort_events) > 0
    for e, f in zip(torch_events, ort_events, strict=True):
        assert e["label"] == f["label"]
        assert abs(e["start"] - f["start"]) <= 1e-3 and abs(e["end"] - f["end"]) <= 1e-3
        assert abs(e["score"] - f["score"]) <= 1e-5


def test_eval_with_onnxruntime_scores_as_the_torch_backend(exported, capsys, tmp_path):
    rng = np.random.default_rng(0)
    database = {}
    for video, steps in (("v0", 40), ("v1", 23)):
        for stream, dim in (("visual", 75), ("audio", 98)):
            features = rng.standard_normal((steps, dim)).astype(np.float32)
            np.save(tmp_path / f"{video}_basic_{stream}.npy", features)
        events = [{"label": CLASSES[0], "segment": [1.0, 4.0]}]
        database[video] = {"subset": "test", "duration": steps * 0.32, "annotations": events}
    annotations = tmp_path / "gt.json"
    annotations.write_text(json.dumps({"version": "t", "database": database}))
    maps = {}
    for backend, weights in (("torch", exported["weights"]), ("onnxruntime", exported["onnx"])):
        code, out, err = run(
            capsys, "eval", "-w", weights, "--backend", backend, "--features", tmp_path,
            "-g", annotations, "--format", "json",
        )  # fmt: skip
        assert code == 0, err
        maps[backend] = json.loads(out)["average_map"]
    assert maps["onnxruntime"] == pytest.approx(maps["torch"], abs=1e-6)


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":1}')
    broken_onnx = tmp_path / "broken.onnx"
    broken_onnx.write_bytes(b"not a protobuf at all")
    return {"corrupt": corrupt, "broken_onnx": broken_onnx, "dir": tmp_path}


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda e, b: ["export", "--model", "unav10", "-o", b["dir"] / "x.onnx"],
         "did you mean 'unav100'"),
        (lambda e, b: ["export", "--model", b["corrupt"], "-o", b["dir"] / "x.onnx"],
         "not a safetensors file, or corrupt"),
        (lambda e, b: ["export", "--model", "thumos14", "-o", b["dir"] / "x.onnx"],
         "not published yet"),
        (lambda e, b: ["export", "--model", e["weights"], "-o", b["dir"] / "x.bin"],
         "cannot tell the format from the suffix '.bin'"),
        (lambda e, b: ["export", "--model", e["weights"], "-o", b["dir"] / "no" / "x.onnx"],
         "does not exist"),
        (lambda e, b: ["export", "--model", e["onnx"], "-o", b["dir"] / "x.pt2"],
         "an exported ONNX model, not weights"),
        (lambda e, b: ["predict", "--demo", "--weights", e["onnx"]],
         "run it with --backend onnxruntime"),
        (lambda e, b: ["predict", "--demo", "--backend", "onnxruntime", "-w", e["weights"]],
         "--backend onnxruntime runs an exported .onnx file"),
        (lambda e, b: ["predict", "--demo", "--backend", "onnxruntime"],
         "del export --model demo -o demo.onnx"),
        (lambda e, b: ["predict", "--demo", "--backend", "onnxruntime", "-w", b["broken_onnx"]],
         "not a readable ONNX model"),
        (lambda e, b: ["eval", "-d", "unav100", "-p", "x.json", "--backend", "onnxruntime"],
         "--backend needs --weights"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_code_2(capsys, exported, bad_files, make_args, message):
    code, _, err = run(capsys, *make_args(exported, bad_files))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("del: error: "), err
    assert message in err
    assert not (bad_files["dir"] / "x.onnx").exists()


def test_without_onnxruntime_the_backend_says_how_to_install_it(capsys, exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    code, _, err = run(
        capsys, "predict", "--demo", "--backend", "onnxruntime", "-w", exported["onnx"]
    )
    assert code == 2
    assert "pip install 'del-av[export]'" in err and err.count("\n") == 1


def test_the_format_comes_from_the_suffix_unless_given():
    assert export_format(Path("m.ONNX"), None) == "onnx"
    assert export_format(Path("m.pt2"), None) == "pt2"
    assert export_format(Path("model"), "safetensors") == "safetensors"
    with pytest.raises(ConfigError, match="give --format"):
        export_format(Path("model"), None)


def test_an_interrupted_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "m.onnx"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        Path(temporary).write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_diverges_from_eager_is_refused():
    expected = [np.zeros((1, 4, 2), np.float32)]
    assert _compare(expected, [expected[0] + 1e-6], "x") == pytest.approx(1e-6)
    with pytest.raises(ExportError, match="not faithful"):
        _compare(expected, [expected[0] + 0.5], "ONNX Runtime's output")
    with pytest.raises(ExportError):
        _compare(expected, [expected[0] * np.nan], "ONNX Runtime's output")


@pytest.mark.parametrize(("name", "multiple"), [("unav100", 64), ("thumos14", 288)])
def test_time_multiple_of_the_zoo_geometries(name, multiple):
    assert time_multiple(load_recipe(name).model) == multiple
