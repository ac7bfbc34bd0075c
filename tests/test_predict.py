"""`del predict`: events of real decoded videos, long videos in windows, outputs, failures."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
import types
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delcli.cli import app as app_module
from delcli.cli import predict_cmd
from delcli.cli.app import main
from delcli.data.batch import TimeGrid
from delcli.errors import ConfigError
from delcli.evaluation.predictions import read_predictions
from delcli.features import GRID_PRESETS
from delcli.inference.video import (
    detect_events,
    plan_windows,
    predict_video,
    window_candidates,
)
from delcli.model.del_model import DELModel
from delcli.recipe import load_recipe
from delcli.synth.video import CLASSES as SYNTH_CLASSES
from delcli.synth.video import SynthVideoConfig, write_synth_videos
from delcli.weights import save_weights

CLASSES = [c.name for c in SYNTH_CLASSES]
PNG = b"\x89PNG\r\n\x1a\n"


def _stand_in_pipeline() -> None:
    """Until `delcli.features.pipeline` lands: the contract's three functions, minimally."""
    try:
        import delcli.features.pipeline  # noqa: F401
    except ImportError:
        from delcli.features import FeatureGrid, get_extractor
        from delcli.io import probe

        def recipe_extractors(recipe, device="cpu", weights=None):
            data = recipe.data
            grid = FeatureGrid(data.fps, data.stride, data.window)
            return [
                get_extractor(s.name, grid, weights=s.weights, device=device, **s.options)
                for s in recipe.features.extractors
            ]

        def extract_video(path, extractors, info=None):
            info = info if info is not None else probe(path)
            outputs = {}
            for extractor in extractors:
                outputs.update(extractor.extract(path, info))
            return outputs

        def model_inputs(outputs, recipe):
            def stream(spec, used):
                if spec is None or not used:
                    return None
                names = [f.removeprefix("{video}_").removesuffix(".npy") for f in spec.files]
                return np.concatenate([outputs[name] for name in names], axis=1)

            return (
                stream(recipe.data.visual, recipe.model.uses_visual),
                stream(recipe.data.audio, recipe.model.uses_audio),
            )

        module = types.ModuleType("delcli.features.pipeline")
        module.recipe_extractors = recipe_extractors
        module.extract_video = extract_video
        module.model_inputs = model_inputs
        sys.modules["delcli.features.pipeline"] = module


_stand_in_pipeline()
if not any(command.name == "predict" for command in app_module.app.registered_commands):
    predict_cmd.register(app_module.app)  # until the lead adds it to delcli/cli/app.py


def tiny_recipe(**model):
    grid = GRID_PRESETS["basic"]
    return load_recipe(
        {
            "name": "tiny-basic",
            "data": {
                "visual": {"files": ["{video}_basic_visual.npy"]},
                "audio": {"files": ["{video}_basic_audio.npy"]},
                "fps": grid.fps,
                "stride": grid.stride,
                "window": grid.window,
                "classes": CLASSES,
            },
            "features": {"extractors": [{"name": "basic"}]},
            "model": {
                "visual_dim": 75,
                "audio_dim": 98,
                "num_classes": len(CLASSES),
                "max_seq_len": 32,
                "embed_dim": 16,
                "n_heads": 2,
                "adapter_heads": 2,
                "n_levels": 3,
                "window_size": 3,
                "n_stem": 1,
                "head_dim": 16,
                "head_layers": 2,
                "projection_dim": 8,
                "prior_prob": 0.3,  # untrained scores near 0.3: tables and plots have events
                **model,
            },
        }
    )


def tiny_model(recipe, seed: int = 0) -> DELModel:
    torch.manual_seed(seed)
    return DELModel(recipe.model).eval()


@pytest.fixture(scope="module")
def recipe():
    return tiny_recipe()


@pytest.fixture(scope="module")
def model(recipe):
    return tiny_model(recipe)


@pytest.fixture(scope="module")
def extractors(recipe):
    from delcli.features.pipeline import recipe_extractors

    return recipe_extractors(recipe)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Two 2–3 s videos with their annotations, one 8 s video, a broken file, the weights."""
    root = tmp_path_factory.mktemp("predict")
    short = SynthVideoConfig(
        videos=2, min_duration=2, max_duration=3, width=64, height=48, fps=12.5
    )
    write_synth_videos(root / "short", short)
    write_synth_videos(
        root / "long", replace(short, videos=1, min_duration=8, max_duration=8, seed=1)
    )
    (root / "long" / "videos" / "synv_00000.mp4").rename(root / "long.mp4")
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    recipe = tiny_recipe()
    save_weights(root / "tiny.safetensors", tiny_model(recipe).state_dict(), recipe)
    return types.SimpleNamespace(
        videos=sorted((root / "short" / "videos").glob("*.mp4")),
        annotations=root / "short" / "annotations.json",
        long=root / "long.mp4",
        broken=broken,
        weights=root / "tiny.safetensors",
        root=root,
    )


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- predict_video ---------------------------------------------------------------------------


def test_predict_video_gives_sorted_events_inside_the_video(media, model, recipe, extractors):
    first = predict_video(media.videos[0], model, recipe, extractors)
    assert first.video_id == media.videos[0].stem and first.path == str(media.videos[0])
    assert 2.0 <= first.duration <= 3.0
    assert first.events, "an untrained model near score 0.3 still detects something"
    for event in first.events:
        assert 0.0 <= event.start < event.end <= first.duration
        assert event.label in CLASSES and 0.0 < event.score <= 1.0
    keys = [(e.start, -e.score) for e in first.events]
    assert keys == sorted(keys)
    assert first.windows == 1 and first.extract_seconds > 0 and first.model_seconds > 0
    again = predict_video(media.videos[0], model, recipe, extractors)
    assert again.events == first.events


def test_threshold_and_top_k_filter_by_score(media, model, recipe, extractors):
    every = predict_video(media.videos[1], model, recipe, extractors)
    scores = sorted((e.score for e in every.events), reverse=True)
    cut = scores[len(scores) // 2]
    kept = predict_video(media.videos[1], model, recipe, extractors, threshold=cut)
    assert kept.events == [e for e in every.events if e.score >= cut]
    best = predict_video(media.videos[1], model, recipe, extractors, top_k=3)
    assert sorted(e.score for e in best.events) == sorted(scores[:3])


# -- windows ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    steps=st.integers(1, 600),
    units=st.integers(1, 12),
    level=st.integers(0, 5),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
)
def test_windows_cover_the_video_and_each_step_has_one_owner(steps, units, level, overlap):
    divisor = 2**level
    length = units * divisor
    windows = plan_windows(steps, length, divisor, overlap)
    assert windows[0].own_start == 0 and windows[-1].own_stop == steps
    shared = min(length - divisor, round(length * overlap / divisor) * divisor)
    for window, following in itertools.pairwise(windows):
        assert window.own_stop == following.own_start  # owned ranges tile [0, steps)
        assert following.start > window.start
    for i, w in enumerate(windows):
        assert w.start % divisor == 0 and (w.stop - w.start) % divisor == 0
        assert w.stop - w.start <= max(length, divisor)
        assert w.start <= w.own_start < w.own_stop <= min(w.stop, steps)
        if len(windows) > 1:  # context: owned steps keep half the overlap from inner edges
            assert i == 0 or w.own_start - w.start >= shared // 2
            assert i == len(windows) - 1 or w.stop - w.own_stop >= shared // 2


def test_a_video_that_fits_takes_one_padded_window():
    assert plan_windows(13, 32, 4) == plan_windows(13, 400, 4)
    (window,) = plan_windows(13, 32, 4)
    assert (window.start, window.stop, window.own_start, window.own_stop) == (0, 16, 0, 13)


def test_windows_give_the_single_pass_detections_when_the_model_is_local(recipe):
    """Without AAC and PAN (global over the sequence), the network's receptive field is
    ±12 steps here; half-window overlaps of 64-step windows leave ≥ 16 steps of context,
    so ownership must reproduce a single pass over all 100 steps exactly."""
    local = replace(recipe, model=replace(recipe.model, n_aac=0, pan=False, max_seq_len=256))
    model = tiny_model(local, seed=3)
    rng = np.random.default_rng(0)
    visual = rng.standard_normal((100, 75)).astype(np.float32)
    audio = rng.standard_normal((100, 98)).astype(np.float32)
    grid = GRID_PRESETS["basic"].time_grid()
    single, one = detect_events(model, local, visual, audio, 32.5, grid)
    windowed, count = detect_events(model, local, visual, audio, 32.5, grid, window_length=64)
    assert (one, count) == (1, 3)
    assert len(windowed) == len(single) == local.inference.max_detections
    assert [e.label for e in windowed] == [e.label for e in single]
    got = np.array([(e.start, e.end, e.score) for e in windowed])
    want = np.array([(e.start, e.end, e.score) for e in single])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_full_model_windows_score_every_point_once(recipe):
    """DEL's attention is global, so windowed scores differ from a single pass's; what must
    hold is that every pyramid point of the video is decoded exactly once, in video steps."""
    every = replace(recipe, model=replace(recipe.model, pre_nms_thresh=0.0, min_duration=-1.0))
    model = tiny_model(every)
    steps, classes = 23, len(CLASSES)
    rng = np.random.default_rng(1)
    visual = torch.from_numpy(rng.standard_normal((steps, 75)).astype(np.float32))
    audio = torch.from_numpy(rng.standard_normal((steps, 98)).astype(np.float32))
    single = window_candidates(model, visual, audio, plan_windows(steps, 32, 4))
    windows = plan_windows(steps, 16, 4)
    assert len(windows) == 2
    for batch_size in (1, 2):
        split = window_candidates(model, visual, audio, windows, batch_size)
        points = steps + 12 + 6  # levels at strides 1, 2, 4
        assert len(split.scores) == len(single.scores) == points * classes
        centres = split.segments.mean(dim=1)
        assert centres.min() < 4 and centres.max() > steps - 4  # both ends are scored
    one_by_one = window_candidates(model, visual, audio, windows, 1)
    together = window_candidates(model, visual, audio, windows, 2)
    torch.testing.assert_close(together.scores, one_by_one.scores)


def test_a_model_with_short_max_seq_len_runs_long_videos_in_windows(media, recipe, extractors):
    short = replace(recipe, model=replace(recipe.model, max_seq_len=16))
    windowed_model = DELModel(short.model).eval()
    windowed_model.load_state_dict(tiny_model(recipe).state_dict())
    result = predict_video(media.long, windowed_model, short, extractors)
    assert result.windows == 2 and 7.9 <= result.duration <= 8.1
    assert all(0 <= e.start < e.end <= result.duration for e in result.events)
    assert max(e.end for e in result.events) > result.duration - 1.0  # the end is covered
    whole = predict_video(media.long, tiny_model(recipe), recipe, extractors)
    assert whole.windows == 1
    assert {e.label for e in result.events} <= set(CLASSES)


def test_resize_length_models_see_the_fixed_length_and_use_the_video_duration(recipe):
    resized = replace(recipe, data=replace(recipe.data, resize_length=16))
    model = tiny_model(resized)
    rng = np.random.default_rng(2)
    visual = rng.standard_normal((50, 75)).astype(np.float32)
    audio = rng.standard_normal((50, 98)).astype(np.float32)
    unused = TimeGrid(step_seconds=99.0, offset_seconds=99.0)  # replaced by the resize grid
    events, windows = detect_events(model, resized, visual, audio, 16.0, unused)
    assert windows == 1 and events
    assert all(0 <= e.start < e.end <= 16.0 for e in events)


# -- the command -----------------------------------------------------------------------------


def test_every_format_parses_and_carries_the_same_events(capsys, media, tmp_path):
    videos = [str(v) for v in media.videos]
    common = ["predict", *videos, "--weights", media.weights]
    code, out, err = run(capsys, *common, "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["video"] for r in records] == [v.stem for v in media.videos]
    total = sum(len(r["events"]) for r in records)
    assert total > 0 and set(records[0]["events"][0]) == {"start", "end", "label", "score"}
    assert "predicted 2 videos" in err

    code, out, _ = run(capsys, *common, "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == total
    assert {line["video"] for line in lines} == {v.stem for v in media.videos}
    assert lines[0] == {"video": records[0]["video"], **records[0]["events"][0]}

    code, out, _ = run(capsys, *common, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["video", "start", "end", "label", "score"]
    assert len(rows) == total + 1

    results = tmp_path / "results.json"
    code, out, _ = run(capsys, *common, "--format", "anet", "--output", results)
    assert code == 0 and out == ""
    predictions = read_predictions(results)
    assert len(predictions) == total and set(predictions.videos) == {v.stem for v in media.videos}
    assert set(json.loads(results.read_text())) == {"version", "results", "external_data"}

    code, out, _ = run(capsys, *common, "--format", "csv", "--threshold", "0.3", "--top-k", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert all(float(r["score"]) >= 0.3 for r in rows)
    assert all(sum(r["video"] == v.stem for r in rows) <= 2 for v in media.videos)


def test_table_shows_each_video_above_the_readable_threshold(capsys, media):
    code, out, _ = run(capsys, "predict", media.videos[0], "-w", media.weights)
    assert code == 0
    assert f"{media.videos[0].stem} · " in out and "scoring ≥ 0.2" in out
    for column in ("start", "end", "duration", "label", "score"):
        assert column in out


def test_output_is_written_atomically(capsys, media, tmp_path, monkeypatch):
    target = tmp_path / "events.jsonl.gz"
    code, out, _ = run(
        capsys, "predict", *media.videos, "-w", media.weights, "-f", "jsonl", "-o", target
    )
    assert code == 0 and out == ""
    import gzip

    written = gzip.decompress(target.read_bytes())
    assert written and all(json.loads(line) for line in written.splitlines())

    import delcli.inference.video as video

    calls = []

    def interrupted(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    real = video.predict_video
    monkeypatch.setattr(video, "predict_video", interrupted)
    code = main(
        [
            "predict",
            *map(str, media.videos),
            "-w",
            str(media.weights),
            "-f",
            "jsonl",
            "-o",
            str(target),
        ]
    )
    assert code == 130
    assert gzip.decompress(target.read_bytes()) == written  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left


def test_plot_writes_a_png_with_ground_truth(capsys, media, tmp_path):
    picture = tmp_path / "timeline.png"
    code, _, err = run(
        capsys,
        "predict",
        media.videos[0],
        "-w",
        media.weights,
        "--plot",
        picture,
        "--annotations",
        media.annotations,
    )
    assert code == 0, err
    assert picture.read_bytes().startswith(PNG) and picture.stat().st_size > 1000
    folder = tmp_path / "plots"
    code, _, err = run(
        capsys, "predict", *media.videos, "-w", media.weights, "-f", "json", "--plot", f"{folder}/"
    )
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [f"{v.stem}.png" for v in media.videos]
    assert all(p.read_bytes().startswith(PNG) for p in folder.iterdir())


def test_plot_without_matplotlib_says_how_to_install_it(capsys, media, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(
        capsys, "predict", media.videos[0], "-w", media.weights, "--plot", tmp_path / "t.png"
    )
    assert code == 2 and "pip install del-av[plot]" in err
    from delcli.inference.timeline import plot_timeline
    from delcli.inference.video import VideoEvents

    with pytest.raises(ConfigError, match=r"del-av\[plot\]"):
        plot_timeline(VideoEvents("v", "v.mp4", 1.0), tmp_path / "t.png")


def test_a_broken_video_is_reported_and_the_others_printed(capsys, media):
    good = media.videos
    code, out, err = run(
        capsys, "predict", good[0], media.broken, good[1], "-w", media.weights, "-f", "jsonl"
    )
    assert code == 1
    assert str(media.broken) in err and "failed" in err and "1 failed" in err
    assert {json.loads(line)["video"] for line in out.splitlines()} == {v.stem for v in good}


def test_a_missing_path_or_a_folder_in_a_batch_is_skipped_like_a_broken_video(capsys, media):
    good, missing = media.videos, media.root / "missing.mp4"
    args = ["predict", good[0], missing, media.root, good[1], "-w", media.weights, "-f", "jsonl"]
    code, out, err = run(capsys, *args)
    assert code == 1
    assert f"failed {missing}: no such file" in err and "is a directory" in err
    assert "2 failed" in err
    assert {json.loads(line)["video"] for line in out.splitlines()} == {v.stem for v in good}


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda m: ["predict", m.videos[0], "-w", "no-such-model"], "not a run directory"),
        (lambda m: ["predict", m.videos[0], "-w", m.root / "nope.safetensors"], "no such file"),
        (lambda m: ["predict", "-w", m.weights], "no videos"),
        (
            lambda m: ["predict", *m.videos, "-w", m.weights, "--plot", m.root / "one.png"],
            "give a folder",
        ),
        (lambda m: ["predict", m.videos[0], "-w", m.weights, "-g", m.annotations], "--plot"),
        (lambda m: ["predict", m.videos[0], "-w", m.weights, "-f", "xml"], "xml"),
    ],
)
def test_bad_usage_is_one_line_with_exit_code_2(capsys, media, make_args, message):
    code, out, err = run(capsys, *make_args(media))
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_demo_model_says_so(capsys, media):
    from delcli.errors import WeightsError
    from delcli.weights import resolve_weights

    try:
        resolve_weights("demo")
        pytest.skip("the demo model is shipped")
    except WeightsError:
        pass
    code, _, err = run(capsys, "predict", media.videos[0])
    assert code == 2 and "demo model" in err and len(err.strip().splitlines()) == 1


def test_paths_are_read_from_stdin_and_lists(capsys, media, tmp_path, monkeypatch):
    listing = "\n".join(str(v) for v in media.videos) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    code, out, _ = run(capsys, "predict", "-", "-w", media.weights, "-f", "json")
    assert code == 0 and [r["video"] for r in json.loads(out)] == [v.stem for v in media.videos]

    list_file = tmp_path / "videos.txt"
    list_file.write_text(f"# my videos\n\n{listing}{media.videos[0]}\n")  # a repeat runs once
    code, out, _ = run(capsys, "predict", "--list", list_file, "-w", media.weights, "-f", "json")
    assert code == 0 and [r["video"] for r in json.loads(out)] == [v.stem for v in media.videos]
