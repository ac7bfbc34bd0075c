"""`del extract`: videos in, a feature folder that `del train` / `del eval` read, out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from delcli.cli import app as cli_app
from delcli.cli import extract_cmd
from delcli.data.batch import TimeGrid
from delcli.data.dataset import FeatureDataset
from delcli.errors import ConfigError
from delcli.extract import METADATA, extract_folder, read_metadata
from delcli.features import GRID_PRESETS, FeatureGrid, get_extractor
from delcli.features.pipeline import (
    extract_video,
    model_inputs,
    output_modalities,
    recipe_extractors,
    recipe_grid,
)
from delcli.io import MediaError, probe
from delcli.recipe import load_recipe
from delcli.synth.video import SynthVideoConfig, write_synth_videos

GRID = GRID_PRESETS["basic"]
DIMS = {"basic_visual": 75, "basic_audio": 98}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Four synthetic mp4s of 2–3 s, 64×48, with their annotations (all in one split)."""
    folder = tmp_path_factory.mktemp("videos")
    config = SynthVideoConfig(
        videos=4, seed=5, min_duration=2.0, max_duration=3.0, width=64, height=48
    )
    write_synth_videos(folder, config)
    annotations = json.loads((folder / "annotations.json").read_text())
    for entry in annotations["database"].values():
        entry["subset"] = "test"
    (folder / "annotations.json").write_text(json.dumps(annotations))
    return sorted((folder / "videos").glob("*.mp4"))


@pytest.fixture(scope="module")
def basic():
    return [get_extractor("basic", GRID)]


def tiny_i3d(grid: FeatureGrid = GRID):
    """A randomly initialised RGB-only I3D on 32-px frames: another extractor, cheaply."""
    return get_extractor(
        "i3d", grid, streams="rgb", random_init=True, size=32, crop=32, batch_size=4
    )


def recipe_for(features: Path, annotations: Path, visual: list[str], audio: list[str], **data):
    """A recipe reading `basic` features with the given file patterns."""
    return load_recipe(
        {
            "name": "test",
            "data": {
                "annotations": str(annotations),
                "features": str(features),
                "visual": {"files": visual},
                "audio": {"files": audio},
                "fps": GRID.fps,
                "stride": GRID.stride,
                "window": GRID.window,
                "test_split": "test",
                **data,
            },
            "model": {"visual_dim": 75, "audio_dim": 98, "num_classes": 8},
            "features": {"extractors": [{"name": "basic"}]},
        }
    )


def annotations_of(videos: list[Path]) -> Path:
    return videos[0].parent.parent / "annotations.json"


def arrays(folder: Path) -> dict[str, np.ndarray]:
    return {
        str(p.relative_to(folder)): np.load(p)
        for p in sorted(folder.rglob("*.npy"))
        if ".del-extract" not in p.parts
    }


def run(capsys, *args: str) -> tuple[int, str, str]:
    """`del ARGS` through the real entry point, with `del extract` registered."""
    if not any(c.name == "extract" for c in cli_app.app.registered_commands):
        extract_cmd.register(cli_app.app)
    code = cli_app.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- layouts the readers read -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("naming", "visual", "audio"),
    [
        ("unav", "{video}_basic_visual.npy", "{video}_basic_audio.npy"),
        ("actionformer", "basic_visual/{video}.npy", "basic_audio/{video}.npy"),
    ],
)
def test_extracted_folders_load_with_feature_dataset_on_the_grid(
    tmp_path, videos, basic, naming, visual, audio
):
    report = extract_folder(videos, tmp_path, basic, GRID, naming=naming)
    assert len(report.done) == len(videos) and not report.failed
    for video in videos:
        assert (tmp_path / visual.replace("{video}", video.stem)).exists()

    recipe = recipe_for(tmp_path, annotations_of(videos), [visual], [audio])
    dataset = FeatureDataset(recipe.data, recipe.model, "test")
    assert sorted(dataset.video_ids) == sorted(v.stem for v in videos)
    metadata = read_metadata(tmp_path)
    for item in dataset:
        steps = GRID.num_steps(probe(videos[0].parent / f"{item.video_id}.mp4").duration)
        assert item.visual.shape == (steps, 75) and item.audio.shape == (steps, 98)
        assert metadata["videos"][item.video_id]["length"] == steps

    assert metadata["naming"] == naming
    assert metadata["grid"]["fps"] == GRID.fps and metadata["grid"]["stride"] == GRID.stride
    assert {name: o["dim"] for name, o in metadata["outputs"].items()} == DIMS
    assert [f["pattern"] for f in metadata["files"]] == [visual, audio]
    assert metadata["extractors"][0]["name"] == "basic" and metadata["extractors"][0]["version"]


def test_recipe_naming_writes_the_files_the_recipe_reads(tmp_path, videos, basic):
    out = tmp_path / "feats"
    recipe = recipe_for(
        out,
        annotations_of(videos),
        ["visual/{video}.npy"],  # one file, named after no output: every visual output
        ["audio/{video}.npz"],
    )
    extract_folder(videos, out, basic, naming="recipe", recipe=recipe)
    assert sorted(p.name for p in (out / "visual").iterdir()) == [f"{v.stem}.npy" for v in videos]
    items = list(FeatureDataset(recipe.data, recipe.model, "test"))
    assert len(items) == len(videos) and items[0].audio.shape[1] == 98


def test_metadata_maps_steps_to_seconds_as_the_grid_does(tmp_path, videos, basic):
    extract_folder(videos[:1], tmp_path, basic)
    grid = read_metadata(tmp_path)["grid"]
    time_grid = TimeGrid(grid["step_seconds"], grid["offset_seconds"])
    assert time_grid == GRID.time_grid()
    length = read_metadata(tmp_path)["videos"][videos[0].stem]["length"]
    steps = np.arange(length, dtype=np.float64)
    np.testing.assert_allclose(time_grid.to_seconds(steps), GRID.step_centres(length))
    np.testing.assert_allclose(time_grid.to_steps(time_grid.to_seconds(steps)), steps)
    assert grid["step_seconds"] == pytest.approx(GRID.stride / GRID.fps)
    assert grid["offset_seconds"] == pytest.approx(GRID.window / 2 / GRID.fps)


# -- resuming and atomic writes -----------------------------------------------------------------


def test_an_interrupted_run_resumes_and_skips_finished_videos(tmp_path, videos, basic):
    def stop_after_first(event):
        if event.kind == "video":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_folder(videos, tmp_path, basic, on_event=stop_after_first)
    assert len(read_metadata(tmp_path)["videos"]) == 1  # listed although interrupted
    first = next(iter(read_metadata(tmp_path)["videos"]))
    written = (tmp_path / f"{first}_basic_visual.npy").stat().st_mtime_ns

    report = extract_folder(videos, tmp_path, basic)
    assert [r.video for r in report.skipped] == [first]
    assert len(report.done) == len(videos) - 1
    assert (tmp_path / f"{first}_basic_visual.npy").stat().st_mtime_ns == written
    assert sorted(read_metadata(tmp_path)["videos"]) == sorted(v.stem for v in videos)


def test_a_deleted_output_makes_its_video_extracted_again(tmp_path, videos, basic):
    extract_folder(videos, tmp_path, basic)
    (tmp_path / f"{videos[1].stem}_basic_audio.npy").unlink()
    report = extract_folder(videos, tmp_path, basic)
    assert [r.video for r in report.done] == [videos[1].stem]
    assert len(report.skipped) == len(videos) - 1
    again = extract_folder(videos, tmp_path, basic, skip_existing=False)  # --force
    assert len(again.done) == len(videos)


def test_a_failure_while_writing_leaves_no_partial_npy_file(tmp_path, videos, basic, monkeypatch):
    def save_half_then_fail(handle, array, **kwargs):
        handle.write(b"\x93NUMPY half an array")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", save_half_then_fail)
    report = extract_folder(videos[:2], tmp_path, basic)
    assert len(report.failed) == 2 and "disk full" in report.failed[0].reason
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert not [n for n in names if n.endswith(".npy") or n.endswith(".tmp")]
    assert read_metadata(tmp_path)["videos"] == {}


# -- sharding and workers -----------------------------------------------------------------------


def test_two_shards_cover_every_video_once_and_the_metadata_lists_all(tmp_path, videos, basic):
    first = extract_folder(videos, tmp_path, basic, shard=(0, 2))
    second = extract_folder(videos, tmp_path, basic, shard=(1, 2))
    done = [r.video for r in first.done] + [r.video for r in second.done]
    assert sorted(done) == sorted(v.stem for v in videos)
    assert [r.video for r in first.done] == sorted(v.stem for v in videos)[0::2]
    assert sorted(read_metadata(tmp_path)["videos"]) == sorted(v.stem for v in videos)


def test_torchrun_picks_the_shard_of_its_rank(tmp_path, videos, basic, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = extract_folder(videos, tmp_path, basic)
    assert report.shard == (1, 2)
    assert [r.video for r in report.done] == sorted(v.stem for v in videos)[1::2]


def test_two_workers_write_the_same_arrays_as_one(tmp_path, videos, basic):
    one = extract_folder(videos, tmp_path / "one", basic, workers=1)
    two = extract_folder(videos, tmp_path / "two", basic, workers=2)
    assert len(one.done) == len(two.done) == len(videos)
    first, second = arrays(tmp_path / "one"), arrays(tmp_path / "two")
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


# -- one folder, one grid -----------------------------------------------------------------------


def test_another_grid_or_other_settings_in_the_same_folder_are_refused(tmp_path, videos, basic):
    extract_folder(videos[:1], tmp_path, basic)
    other_grid = [get_extractor("basic", GRID_PRESETS["unav100"])]
    with pytest.raises(ConfigError, match="one folder holds one grid"):
        extract_folder(videos[:1], tmp_path, other_grid)
    other_options = [get_extractor("basic", GRID, size=32)]
    with pytest.raises(ConfigError, match="other settings"):
        extract_folder(videos[:1], tmp_path, other_options)
    with pytest.raises(ConfigError, match="naming"):
        extract_folder(videos[:1], tmp_path, basic, naming="actionformer")


def test_an_extractor_with_new_outputs_can_be_added_to_a_folder(tmp_path, videos, basic):
    extract_folder(videos[:2], tmp_path, basic)
    report = extract_folder(videos[:2], tmp_path, [tiny_i3d()])
    assert len(report.done) == 2  # the rgb files were missing: extracted
    metadata = read_metadata(tmp_path)
    assert [e["name"] for e in metadata["extractors"]] == ["basic", "i3d"]
    entry = metadata["videos"][videos[0].stem]
    assert entry["outputs"] == ["basic_visual", "basic_audio", "rgb"]
    rgb = np.load(tmp_path / f"{videos[0].stem}_rgb.npy")
    assert rgb.shape == (entry["length"], 1024)


# -- bad input ----------------------------------------------------------------------------------


def test_video_ids_that_collide_are_refused_naming_the_files(tmp_path, videos, basic):
    twin = tmp_path / "elsewhere" / videos[0].name
    twin.parent.mkdir()
    shutil.copy(videos[0], twin)
    with pytest.raises(ConfigError, match=videos[0].stem) as error:
        extract_folder([videos[0], twin, videos[0]], tmp_path / "out", basic)
    assert str(twin) in str(error.value)


def test_broken_files_are_reported_exit_1_and_the_others_written(tmp_path, videos, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(videos[0].read_bytes()[:300])
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("hello")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    missing = tmp_path / "missing.mp4"
    given = [*map(str, videos[:2]), str(broken), str(not_a_video), str(folder), str(missing)]
    out = tmp_path / "out"
    code, stdout, stderr = run(
        capsys, "extract", *given, "--out", str(out), "-e", "basic", "--grid", "basic",
        "--format", "json",
    )  # fmt: skip
    assert code == 1
    summary = json.loads(stdout)
    assert summary["videos"]["done"] == 2 and summary["videos"]["failed"] == 4
    failed = {f["video"]: f["reason"] for f in summary["failures"]}
    assert set(failed) == {"broken", "notes", "a_folder", "missing"}
    assert "no such file" in failed["missing"] and "directory" in failed["a_folder"]
    for video in ("broken", "notes", "a_folder", "missing"):
        assert f"failed: {video}: " in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("failed:")]) == 4
    assert sorted(read_metadata(out)["videos"]) == sorted(v.stem for v in videos[:2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2", "-e", "basic", "--grid", "basic"], "--shard 3/2"),
        (["-e", "nosuch", "--grid", "basic"], "unknown extractor 'nosuch'"),
        (["-e", "basic"], "--grid"),
        (["--grid", "basic"], "--recipe NAME, or --extractor NAME"),
        (["-e", "basic", "--grid", "25:8"], "FPS:STRIDE:WINDOW"),
        (["-e", "basic", "--grid", "basic", "--weights", "vggish=x.safetensors"], "vggish"),
        (["-e", "basic", "--grid", "basic", "--option", "basic.nosuch=1"], "nosuch"),
        (["--recipe", "epic100-verb"], "features: null"),
        (["--recipe", "thumos14"], "no frame rate"),
    ],
)
def test_bad_usage_is_exit_2_in_one_line(tmp_path, videos, capsys, args, message):
    code, stdout, stderr = run(capsys, "extract", str(videos[0]), "--out", str(tmp_path), *args)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and message in stderr


def test_no_videos_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115
    code, _, stderr = run(capsys, "extract", "-", "--out", str(tmp_path), "-e", "basic")
    assert code == 2 and "no videos given" in stderr


def test_videos_come_from_arguments_stdin_and_a_list(tmp_path, videos, capsys, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{videos[1]}\n\n{videos[2]}\n")
    stdin = tmp_path / "stdin.txt"
    stdin.write_text(f"{videos[3]}\n")
    monkeypatch.setattr("sys.stdin", stdin.open())
    out = tmp_path / "out"
    code, stdout, _ = run(
        capsys, "extract", str(videos[0]), "-", "--list", str(listing), "--out", str(out),
        "-e", "basic", "--grid", "basic",
    )  # fmt: skip
    assert code == 0
    assert "4 done · 0 skipped · 0 failed" in stdout and "basic_visual (visual, 75)" in stdout
    assert sorted(read_metadata(out)["videos"]) == sorted(v.stem for v in videos)


def test_gather_videos_sorts_and_keeps_each_file_once(tmp_path, monkeypatch):
    """del extract and del predict read their videos alike: sorted, one file once however
    it is spelled, two files with one video id refused."""
    import io

    from delcli.extract import gather_videos

    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a comment\n\n{tmp_path / 'a.mp4'}\nb.mp4\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("b.mp4\n./c.mp4\n"))
    found = gather_videos(["c.mp4", "-", "a.mp4"], listing)
    assert found == [Path("a.mp4"), Path("b.mp4"), Path("c.mp4")]
    with pytest.raises(ConfigError, match="name several files"):
        gather_videos(["x/a.mp4", "y/a.mkv"], None)
    with pytest.raises(ConfigError, match="cannot read it"):
        gather_videos([], tmp_path / "missing.txt")


def test_help_has_examples(capsys):
    code, stdout, _ = run(capsys, "extract", "--help")
    assert code == 0 and "Examples" in stdout and "--shard" in stdout


# -- the pipeline (shared with del predict) -----------------------------------------------------


def test_extract_video_gives_every_output_on_one_grid_length(videos, basic):
    outputs = extract_video(videos[0], [*basic, tiny_i3d()])
    steps = GRID.num_steps(probe(videos[0]).duration)
    assert list(outputs) == ["basic_visual", "basic_audio", "rgb"]
    assert {name: a.shape for name, a in outputs.items()} == {
        "basic_visual": (steps, 75),
        "basic_audio": (steps, 98),
        "rgb": (steps, 1024),
    }
    assert all(a.dtype == np.float32 for a in outputs.values())


def test_extract_video_raises_media_error_for_a_missing_file(tmp_path, basic):
    with pytest.raises(MediaError, match="no such file"):
        extract_video(tmp_path / "nothing.mp4", basic)


def test_model_inputs_assemble_the_recipe_streams_in_order(tmp_path):
    steps = 6
    outputs = {
        "basic_visual": np.ones((steps, 75), np.float32),
        "basic_audio": np.full((steps, 98), 2, np.float32),
        "rgb": np.full((steps, 1024), 3, np.float32),
    }
    modalities = {"basic_visual": "visual", "basic_audio": "audio", "rgb": "visual"}
    recipe = recipe_for(
        tmp_path, tmp_path, ["{video}_basic_visual.npy"], ["{video}_basic_audio.npy"]
    )
    visual, audio = model_inputs(outputs, recipe, modalities)
    assert np.all(visual == 1) and visual.shape == (steps, 75)
    assert np.all(audio == 2) and audio.shape == (steps, 98)

    # ActionFormer naming (a folder per output) and a released single-file layout.
    recipe.model.visual_dim = 1024 + 75
    recipe.data.visual.files = ["rgb/{video}.npy", "{video}_basic_visual.npy"]
    visual, _ = model_inputs(outputs, recipe, modalities)
    assert np.all(visual[:, :1024] == 3) and np.all(visual[:, 1024:] == 1)
    recipe.data.visual.files, recipe.data.visual.folder = ["{video}.npy"], "i3d_features"
    visual, _ = model_inputs(outputs, recipe, modalities)  # every visual output, in order
    assert np.all(visual[:, :75] == 1) and np.all(visual[:, 75:] == 3)

    recipe.model.modalities = "a"
    visual, audio = model_inputs(outputs, recipe, modalities)
    assert visual is None and audio.shape == (steps, 98)


def test_model_inputs_name_a_missing_output_and_what_is_produced(tmp_path):
    recipe = recipe_for(tmp_path, tmp_path, ["{video}_rgb.npy"], ["{video}_basic_audio.npy"])
    outputs = {"basic_visual": np.zeros((3, 75), np.float32)}
    with pytest.raises(ConfigError, match=r"needs output 'rgb'.*produce: basic_visual 75"):
        model_inputs(outputs, recipe, {"basic_visual": "visual"})
    recipe.data.visual.files = ["{video}_basic_visual.npy"]
    recipe.model.visual_dim = 128
    outputs["basic_audio"] = np.zeros((3, 98), np.float32)
    with pytest.raises(ConfigError, match=r"model\.visual_dim=128"):
        model_inputs(outputs, recipe, {"basic_visual": "visual", "basic_audio": "audio"})


def test_recipe_extractors_follow_the_recipe_and_say_what_is_missing(tmp_path):
    recipe = recipe_for(tmp_path, tmp_path, ["{video}_basic_visual.npy"], ["x_{video}.npy"])
    extractors = recipe_extractors(recipe)
    assert [e.name for e in extractors] == ["basic"] and extractors[0].grid == GRID
    assert output_modalities(extractors) == {"basic_visual": "visual", "basic_audio": "audio"}
    with pytest.raises(ConfigError, match="does not match"):
        recipe_extractors(recipe, grid=GRID_PRESETS["unav100"])
    with pytest.raises(ConfigError, match="not an extractor of this run"):
        recipe_extractors(recipe, weights={"vggish": "v.safetensors"})
    with pytest.raises(ConfigError, match="it reads visual features/"):
        recipe_extractors(load_recipe("epic100-noun"))
    thumos = load_recipe("thumos14")
    with pytest.raises(ConfigError, match="no frame rate"):
        recipe_grid(thumos)
    assert recipe_grid(thumos, FeatureGrid(30, 4, 16)) == FeatureGrid(30, 4, 16)


@pytest.mark.parametrize("name", ["unav100", "thumos14", "anet13"])
def test_zoo_feature_blocks_make_the_streams_their_models_read(name):
    recipe = load_recipe(name)
    assert [e.name for e in recipe.features.extractors] == ["i3d", "vggish"]
    assert all(e.weights is None for e in recipe.features.extractors)
    steps = 4
    outputs = {
        "rgb": np.zeros((steps, 1024), np.float32),
        "flow": np.ones((steps, 1024), np.float32),
        "vggish": np.zeros((steps, 128), np.float32),
    }
    modalities = {"rgb": "visual", "flow": "visual", "vggish": "audio"}
    visual, audio = model_inputs(outputs, recipe, modalities)
    assert visual.shape == (steps, recipe.model.visual_dim) and np.all(visual[:, 1024:] == 1)
    assert audio.shape == (steps, recipe.model.audio_dim)


@pytest.mark.parametrize("name", ["epic100-verb", "epic100-noun"])
def test_epic_recipes_say_their_features_cannot_be_made(name):
    assert load_recipe(name).features is None


def test_metadata_file_is_named_features_json(tmp_path, videos, basic):
    extract_folder(videos[:1], tmp_path, basic)
    assert (tmp_path / METADATA).name == "features.json"
    assert json.loads((tmp_path / "features.json").read_text())["format"].startswith("del-features")
