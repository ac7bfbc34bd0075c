"""`del data synth`: the synthetic audio-visual benchmark, its files and its statistics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from delcli.cli import app as cli_app
from delcli.cli import data_cmd
from delcli.data.benchmarks import get_benchmark
from delcli.data.formats import read_annotations
from delcli.errors import ConfigError, DataError
from delcli.recipe import load_recipe
from delcli.resources import resource_path
from delcli.synth.config import SIZES, synth_config
from delcli.synth.features import write_synth_dataset
from delcli.synth.signal import EVIDENCE_TYPES, make_design
from delcli.synth.stats import grid_length, step_centres, step_labels

ZOO_SYNTH = Path(__file__).parent.parent / "zoo" / "synth.yaml"
UNAV = resource_path(get_benchmark("unav100").annotation_file)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny dataset (seed 0) with its statistics, written once."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return write_synth_dataset(out, synth_config("tiny", seed=0))


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file of the dataset except the manifest (which names the folder's settings)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "synth.json"
    }


def run(capsys, *args: str) -> tuple[int, str, str]:
    """`del ARGS` through the real entry point, with `del data` registered."""
    if not any(group.name == "data" for group in cli_app.app.registered_groups):
        data_cmd.register(cli_app.app)
    code = cli_app.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the grid ------------------------------------------------------------------------------


def test_grid_counts_full_windows_of_unav100():
    assert grid_length(0.96) == 1  # exactly one 24-frame window
    assert grid_length(0.3) == 1  # shorter than a window: still one step
    assert grid_length(1.28) == 2  # 32 frames: windows at frames 0 and 8
    assert grid_length(60.0) == 185
    np.testing.assert_allclose(step_centres(3), [0.48, 0.80, 1.12])


def test_step_label_is_the_shortest_covering_event_else_background():
    segments = np.array([[0.0, 10.0], [1.0, 2.0]])
    labels = np.array([3, 5])
    got = step_labels(segments, labels, grid_length(12.0), background=9)
    centres = step_centres(len(got))
    assert (got[(centres >= 1.0) & (centres <= 2.0)] == 5).all()
    assert (got[(centres < 1.0) | ((centres > 2.0) & (centres <= 10.0))] == 3).all()
    assert (got[centres > 10.0] == 9).all()


# -- the files -----------------------------------------------------------------------------


def test_same_seed_writes_identical_files_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_synth_dataset(tmp_path / name, synth_config("tiny", seed=seed), probe=False)
    first, again, other = (folder_contents(tmp_path / n) for n in "abc")
    assert first == again
    assert first["annotations.json"] != other["annotations.json"]
    assert first["features/synth_00000_rgb.npy"] != other["features/synth_00000_rgb.npy"]


def test_layout_reads_back_with_matching_labels_splits_and_grid_lengths(tiny):
    annotations = read_annotations(tiny.folder / "annotations.json")
    preset = SIZES["tiny"]
    assert annotations.num_videos == preset.videos
    assert set(annotations.subsets) == {"train", "validation", "test"}
    assert annotations.num_events == tiny.statistics.events
    assert annotations.classes == [c.name for c in tiny.classes]  # label_id order = class list
    raw = json.loads((tiny.folder / "annotations.json").read_text())["database"]
    for video, entry in raw.items():
        for event in entry["annotations"]:
            assert tiny.classes[event["label_id"]].name == event["label"]
        length = grid_length(entry["duration"])
        shapes = {
            stream: np.load(tiny.folder / "features" / f"{video}_{stream}.npy").shape
            for stream in ("rgb", "flow", "vggish")
        }
        assert shapes == {"rgb": (length, 64), "flow": (length, 64), "vggish": (length, 64)}
    array = np.load(tiny.folder / "features" / "synth_00000_vggish.npy")
    assert array.dtype == np.float32 and np.isfinite(array).all()


def test_every_evidence_type_is_present_and_event_shares_are_sane(tiny):
    stats = tiny.statistics
    assert set(stats.evidence) == set(EVIDENCE_TYPES)
    assert {c.evidence for c in tiny.classes} == set(EVIDENCE_TYPES)
    assert 1.5 <= stats.mean_events_per_video <= 4.0
    assert 0.03 <= stats.overlap_share <= 0.45
    assert 0.1 <= stats.background_share <= 0.6
    lengths = [
        e - s
        for v in json.loads((tiny.folder / "annotations.json").read_text())["database"].values()
        for s, e in (a["segment"] for a in v["annotations"])
    ]
    assert min(lengths) < 3.0 and max(lengths) > 10.0  # short and long events


def test_conjunction_classes_share_their_patterns_with_other_classes():
    design = make_design(synth_config("default"))
    pairs = [(c.visual, c.audio) for c in design.classes if c.evidence == "conjunction"]
    assert len(set(pairs)) == len(pairs) == 4
    for visual, audio in pairs:  # neither stream alone names the class
        assert sum(v == visual for v, _ in pairs) >= 2
        assert sum(a == audio for _, a in pairs) >= 2


def test_like_reproduces_the_videos_events_and_classes_of_a_real_file(tmp_path):
    config = synth_config("tiny", like=UNAV, max_videos=12)
    result = write_synth_dataset(tmp_path / "like", config, probe=False)
    real = read_annotations(UNAV)
    made = read_annotations(tmp_path / "like" / "annotations.json")
    assert made.video_ids == real.video_ids[:12]
    assert made.subsets == real.subsets[:12]
    np.testing.assert_allclose(made.durations, real.durations[:12])
    keep = real.event_video < 12
    np.testing.assert_allclose(made.segments, real.segments[keep])
    assert [made.classes[i] for i in made.labels] == [real.classes[i] for i in real.labels[keep]]
    assert [c.name for c in result.classes] == real.classes
    video = real.video_ids[0]
    rgb = np.load(tmp_path / "like" / "features" / f"{video}_rgb.npy")
    assert rgb.shape == (grid_length(real.durations[0]), 64)


@pytest.mark.parametrize("duration", ["1e308", "Infinity"])  # inf: up to the last event
def test_like_refuses_a_video_too_long_to_imitate(tmp_path, duration):
    path = tmp_path / "gt.json"
    entry = f'"subset": "train", "duration": {duration}'
    events = '"annotations": [{"segment": [0, 1e307], "label": "x"}]'
    path.write_text('{"database": {"a": {' + entry + ", " + events + "}}}")
    config = synth_config("tiny", like=str(path))
    with pytest.raises(DataError, match=r"video 'a' lasts 1e\+30[78] s; --like imitates videos"):
        write_synth_dataset(tmp_path / "like", config, probe=False)


def test_rerun_skips_a_complete_folder_and_resumes_a_partial_one(tmp_path):
    config = synth_config("tiny", seed=2)
    write_synth_dataset(tmp_path / "d", config, probe=False)
    before = folder_contents(tmp_path / "d")
    assert write_synth_dataset(tmp_path / "d", config, probe=False).skipped
    (tmp_path / "d" / "features" / "synth_00003_flow.npy").unlink()
    resumed = write_synth_dataset(tmp_path / "d", config, probe=False)
    assert (resumed.skipped, resumed.written) == (False, 1)
    assert folder_contents(tmp_path / "d") == before


def test_other_settings_are_refused_unless_forced(tmp_path):
    write_synth_dataset(tmp_path / "d", synth_config("tiny", seed=0), probe=False)
    with pytest.raises(ConfigError, match=r"seed 0 → 1.*--force"):
        write_synth_dataset(tmp_path / "d", synth_config("tiny", seed=1), probe=False)
    forced = write_synth_dataset(
        tmp_path / "d", synth_config("tiny", seed=1, max_videos=5), force=True, probe=False
    )
    assert len(list((tmp_path / "d" / "features").iterdir())) == 3 * 5  # stale files gone
    assert forced.statistics.videos and sum(forced.statistics.videos.values()) == 5


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="allowed: tiny, default, large"):
        synth_config("huge")
    with pytest.raises(ConfigError, match="--like"):
        synth_config("tiny", classes=4, like=UNAV)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        write_synth_dataset(tmp_path / "file", synth_config("tiny"))
    with pytest.raises(DataError, match="no such file"):
        write_synth_dataset(tmp_path / "d", synth_config("tiny", like=tmp_path / "missing.json"))


# -- the statistics ------------------------------------------------------------------------


def test_per_step_linear_classifier_is_imperfect_and_best_with_both_streams(tmp_path):
    # tiny's 5 test videos make the probe noisy; 96 videos of the tiny kind are stable
    config = dataclasses.replace(synth_config("tiny", seed=0), videos=96)
    probe = write_synth_dataset(tmp_path / "d", config).statistics.probe
    audio, visual, both = probe["A"], probe["V"], probe["AV"]
    assert both.accuracy >= max(audio.accuracy, visual.accuracy)
    assert both.event_accuracy > max(audio.event_accuracy, visual.event_accuracy) + 0.05
    assert both.event_accuracy < 0.9  # the temporal model has work left
    assert audio.by_evidence["audio"] > audio.by_evidence["visual"]
    assert visual.by_evidence["visual"] > visual.by_evidence["audio"]


# -- the command ---------------------------------------------------------------------------


def test_cli_writes_the_folder_and_prints_the_statistics(capsys, tmp_path):
    out = tmp_path / "d"
    code, table, _ = run(capsys, "data", "synth", str(out), "--size", "tiny")
    assert code == 0
    assert (out / "annotations.json").exists() and (out / "synth.json").exists()
    assert "background share" in table and "AV" in table
    code, text, err = run(capsys, "data", "synth", str(out), "--size", "tiny", "-f", "json")
    report = json.loads(text)
    assert code == 0 and report["skipped"] and "already complete" in " ".join(err.split())
    assert report["statistics"]["classes"] == 8
    assert set(report["statistics"]["probe"]) == {"A", "V", "AV"}


def test_cli_refuses_other_settings_without_force(capsys, tmp_path):
    out = str(tmp_path / "d")
    assert run(capsys, "data", "synth", out, "--size", "tiny")[0] == 0
    code, _, err = run(capsys, "data", "synth", out, "--size", "tiny", "--seed", "1")
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    code, _, _ = run(capsys, "data", "synth", out, "--size", "tiny", "--seed", "1", "--force")
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "huge"], "unknown size 'huge'"),
        (["--dims", "64,64"], "--dims"),
        (["--like", "/nonexistent/ann.json"], "no such file"),
        (["--classes", "0"], "--classes 0; must lie in 1…1000"),
        (["--classes", "100000"], "--classes 100000; must lie in 1…1000"),  # was killed (OOM)
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, tmp_path, args, message):
    code, out, err = run(capsys, "data", "synth", str(tmp_path / "d"), *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


# -- the recipe ----------------------------------------------------------------------------


def test_zoo_recipe_matches_the_default_dataset():
    recipe = load_recipe(ZOO_SYNTH)
    config = synth_config("default")
    assert recipe.data.classes is None  # training pins the data's own class list
    assert recipe.model.num_classes == config.classes
    assert recipe.model.visual_dim == config.rgb_dim + config.flow_dim
    assert recipe.model.audio_dim == recipe.data.audio.dim == config.audio_dim
    assert recipe.model.max_seq_len >= grid_length(config.max_duration)
    assert (recipe.data.fps, recipe.data.stride, recipe.data.window) == (25.0, 8, 24)


# -- the benchmarks' feature geometry ------------------------------------------------------


@pytest.fixture(scope="module")
def unav_geometry(tmp_path_factory):
    """96 tiny-kind videos in UnAV-100's feature geometry (probe included)."""
    config = dataclasses.replace(synth_config("tiny", seed=0, geometry="unav100"), videos=96)
    return write_synth_dataset(tmp_path_factory.mktemp("geometry") / "d", config)


def test_unav100_geometry_has_the_benchmarks_dims_offsets_and_8_bit_audio(unav_geometry):
    folder = unav_geometry.folder
    manifest = json.loads((folder / "synth.json").read_text())
    assert manifest["dims"] == {"rgb": 1024, "flow": 1024, "vggish": 128}
    assert manifest["settings"]["geometry"] == "unav100"
    files = (folder / "features").glob("*_rgb.npy")
    videos = sorted(p.name.removesuffix("_rgb.npy") for p in files)
    rgb = np.concatenate([np.load(folder / "features" / f"{v}_rgb.npy") for v in videos[:20]])
    audio = np.concatenate([np.load(folder / "features" / f"{v}_vggish.npy") for v in videos[:20]])
    assert rgb.shape[1] == 1024 and audio.shape[1] == 128 and rgb.dtype == np.float32
    assert rgb.min() >= 0.0  # pooled activations after a ReLU
    ratio = np.median(rgb.mean(0) / rgb.std(0))
    assert 1.5 < ratio < 3.5  # a large common mean, as I3D's (≈ 2.3 × the spread)
    means = [np.load(folder / "features" / f"{v}_rgb.npy").mean(0) for v in videos[:20]]
    assert np.std(means, axis=0).mean() > 0.1 * rgb.std(0).mean()  # per-video offsets
    assert np.array_equal(audio, np.round(audio)) and audio.min() >= 0 and audio.max() <= 255
    assert np.ptp(audio.mean(0)) > 20  # per-channel offsets


def test_unav100_geometry_keeps_the_class_evidence_linearly_readable():
    """The toy streams (where the class evidence lives) are recovered from the benchmark
    streams by one linear map fitted on some videos and applied to others."""
    from delcli.synth.geometry import make_geometry, to_benchmark_geometry

    rng = np.random.default_rng(0)
    latent = {"rgb": 64, "flow": 64, "vggish": 64}
    geometry = make_geometry(0, latent)
    toy = [{k: rng.normal(size=(150, d)) for k, d in latent.items()} for _ in range(16)]
    real = [to_benchmark_geometry(geometry, streams, 0, i) for i, streams in enumerate(toy)]
    for name in ("rgb", "vggish"):
        x = [np.c_[r[name], np.ones(len(r[name]))] for r in real]
        fit = np.linalg.lstsq(np.concatenate(x[:14]), np.concatenate([t[name] for t in toy[:14]]))
        held_out = np.concatenate(x[14:]) @ fit[0]
        truth = np.concatenate([t[name] for t in toy[14:]])
        r2 = 1 - ((held_out - truth) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum()
        assert r2 > 0.85, (name, r2)


def test_toy_settings_of_older_folders_still_match(tmp_path):
    """synth.json written before --geometry existed has no such key; it must still match."""
    config = synth_config("tiny", seed=0)
    assert "geometry" not in config.settings()
    assert synth_config("tiny", seed=0, geometry="unav100").settings()["geometry"] == "unav100"
    with pytest.raises(ConfigError, match="unknown geometry 'i3d'; allowed: toy, unav100"):
        synth_config("tiny", geometry="i3d")
