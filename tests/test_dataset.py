"""FeatureDataset, feature files, time grids, truncation and collation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delcli.data.batch import Batch, TimeGrid, VideoItem, collate
from delcli.data.dataset import FeatureDataset
from delcli.data.features import interpolate_at, stretch_positions
from delcli.data.transforms import crop_generator, random_truncate
from delcli.errors import ConfigError, DataError
from delcli.model.config import ModelConfig
from delcli.recipe import DataConfig, StreamSpec

UNAV_GRID = {"fps": 25.0, "stride": 8.0, "window": 24.0}  # 0.32 s steps, 0.48 s offset


def write_annotations(path: Path, videos: dict, classes: list[str] | None = None) -> Path:
    """videos: id → (duration, subset, [(start, end, label)], fps or None)."""
    database = {}
    for video, (duration, subset, events, fps) in videos.items():
        entry = {"subset": subset, "duration": duration, "annotations": []}
        if fps is not None:
            entry["fps"] = fps
        for start, end, label in events:
            note = {"segment": [start, end], "label": label}
            if classes is not None:
                note["label_id"] = classes.index(label)
            entry["annotations"].append(note)
        database[video] = entry
    path.write_text(json.dumps({"version": "test", "database": database}))
    return path


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".npz":
        np.savez(path, feats=array)
    else:
        torch.save(torch.from_numpy(array), path)


def model_config(visual_dim=6, audio_dim=2, num_classes=2, max_seq_len=32, **kw) -> ModelConfig:
    return ModelConfig(
        visual_dim=visual_dim,
        audio_dim=audio_dim,
        num_classes=num_classes,
        max_seq_len=max_seq_len,
        n_levels=3,
        **kw,
    )


def ramp(length: int, dim: int, scale: float = 1.0) -> np.ndarray:
    """(length, dim) whose row i is i·scale + column: values show where a step came from."""
    return (np.arange(length)[:, None] * scale + np.arange(dim)[None, :]).astype(np.float32)


@pytest.fixture
def unav(tmp_path: Path):
    """Two UnAV-layout videos (rgb 3 + flow 3 → visual 6, vggish 2) on the 0.32 s grid."""
    features = tmp_path / "features"
    lengths = {"a": 40, "b": 20}
    for video, length in lengths.items():
        save(features / f"{video}_rgb.npy", ramp(length, 3))
        save(features / f"{video}_flow.npy", ramp(length, 3) + 100)
        save(features / f"{video}_vggish.npy", ramp(length, 2) + 1000)
    videos = {
        "a": (13.28, "test", [(1.0, 3.0, "dog"), (5.0, 9.0, "car")], None),
        "b": (6.88, "test", [(0.5, 2.5, "car")], None),
        "c": (10.0, "train", [(1.0, 2.0, "dog")], None),
    }
    annotations = write_annotations(tmp_path / "gt.json", videos)
    data = DataConfig(
        annotations=str(annotations),
        features=str(features),
        visual=StreamSpec(files=["{video}_rgb.npy", "{video}_flow.npy"]),
        audio=StreamSpec(files=["{video}_vggish.npy"]),
        **UNAV_GRID,
    )
    return data, tmp_path


# -- layouts --------------------------------------------------------------


def test_unav_layout_concatenates_rgb_and_flow_and_reads_vggish(unav):
    data, _ = unav
    dataset = FeatureDataset(data, model_config(), "test")
    assert dataset.video_ids == ["a", "b"]
    assert dataset.classes == ["car", "dog"]
    item = dataset[0]
    assert item.visual.shape == (40, 6) and item.audio.shape == (40, 2)
    assert item.visual.dtype == torch.float32
    torch.testing.assert_close(item.visual[5], torch.tensor([5.0, 6, 7, 105, 106, 107]))
    torch.testing.assert_close(item.audio[5], torch.tensor([1005.0, 1006]))
    assert item.grid == TimeGrid(step_seconds=0.32, offset_seconds=0.48)
    torch.testing.assert_close(item.labels, torch.tensor([1, 0]))
    torch.testing.assert_close(
        item.segments[0], torch.tensor([(1.0 - 0.48) / 0.32, (3.0 - 0.48) / 0.32])
    )
    assert item.duration == 13.28
    assert dataset.problems == [] and dataset.warnings == []


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_actionformer_layout_reads_npy_npz_and_pt(tmp_path: Path, suffix: str):
    write_annotations(tmp_path / "gt.json", {"vid1": (20.0, "validation", [(2, 8, "jump")], 30.0)})
    save(tmp_path / "i3d" / f"vid1{suffix}", ramp(37, 6))
    save(tmp_path / "vggish" / f"vid1{suffix}", ramp(37, 2))
    data = DataConfig(
        annotations=str(tmp_path / "gt.json"),
        features=str(tmp_path),
        visual=StreamSpec(files=["{video}" + suffix], folder="i3d"),
        audio=StreamSpec(files=["{video}" + suffix], folder="vggish"),
        stride=4,
        window=16,
    )
    item = FeatureDataset(data, model_config(num_classes=1), "validation")[0]
    assert item.visual.shape == (37, 6) and item.audio.shape == (37, 2)
    torch.testing.assert_close(item.visual, torch.from_numpy(ramp(37, 6)))
    # fps comes from the annotation file when data.fps is not set
    assert item.grid == TimeGrid.from_frames(30.0, 4, 16)


def test_npz_without_feats_key_uses_its_only_array(tmp_path: Path, unav):
    data, root = unav
    np.savez(root / "features" / "a_vggish.npz", ramp(40, 2))
    data.audio = StreamSpec(files=["{video}_vggish.npz"])
    data.skip_missing = True
    dataset = FeatureDataset(data, model_config(), "test")
    assert dataset.video_ids == ["a"]
    torch.testing.assert_close(dataset[0].audio, torch.from_numpy(ramp(40, 2)))


def test_activitynet_v_prefix_and_resize_length(tmp_path: Path):
    # the annotation id carries BSN's `v_`, the pattern adds one: `v_` is not doubled
    write_annotations(
        tmp_path / "gt.json",
        {
            "v_abc": (100.0, "validation", [(10.0, 30.0, "Ballet")], None),
            "xyz": (50.0, "validation", [(0.0, 50.0, "Ballet")], None),
        },
    )
    save(tmp_path / "v_abc.npy", ramp(90, 6))
    save(tmp_path / "v_xyz.npy", ramp(45, 6))
    data = DataConfig(
        annotations=str(tmp_path / "gt.json"),
        features=str(tmp_path),
        visual=StreamSpec(files=["v_{video}.npy"]),
        resize_length=16,
        stride=16,
        window=16,
    )
    model = model_config(modalities="v", max_seq_len=16, num_classes=1)
    dataset = FeatureDataset(data, model, "validation")
    assert dataset.video_ids == ["v_abc", "xyz"]
    item = dataset[0]
    assert item.visual.shape == (16, 6) and item.audio is None
    assert item.grid == TimeGrid(step_seconds=100 / 16, offset_seconds=100 / 32)
    # step i covers [i, i+1)·duration/L: seconds 10..30 → steps 1.6..4.8 in cell units
    torch.testing.assert_close(item.segments[0], torch.tensor([1.6 - 0.5, 4.8 - 0.5]))
    # align_corners=False: step 0 sits at source position 0.5·90/16 − 0.5
    expected = ramp(90, 6)[0] + (0.5 * 90 / 16 - 0.5)
    torch.testing.assert_close(item.visual[0], torch.from_numpy(expected))
    assert dataset[1].visual.shape == (16, 6)


def test_custom_layout_with_absolute_folder_and_nested_patterns(tmp_path: Path):
    write_annotations(tmp_path / "gt.json", {"clip-7": (5.0, "test", [(1, 2, "x")], None)})
    save(tmp_path / "elsewhere" / "clip-7" / "video.feat.npy", ramp(12, 6))
    save(tmp_path / "root" / "sound" / "snd_clip-7_v2.pt", ramp(12, 2))
    data = DataConfig(
        annotations=str(tmp_path / "gt.json"),
        features=str(tmp_path / "root"),
        visual=StreamSpec(files=["{video}/video.feat.npy"], folder=str(tmp_path / "elsewhere")),
        audio=StreamSpec(files=["snd_{video}_v2.pt"], folder="sound", dim=2),
        fps=10,
        stride=5,
        window=5,
    )
    item = FeatureDataset(data, model_config(num_classes=1), "test")[0]
    assert item.visual.shape == (12, 6) and item.audio.shape == (12, 2)
    assert item.grid == TimeGrid(step_seconds=0.5, offset_seconds=0.25)


def test_channel_first_files_are_transposed(unav):
    data, root = unav
    save(root / "features" / "a_rgb.npy", ramp(40, 3).T)
    save(root / "features" / "a_vggish.npy", (ramp(40, 2) + 1000).T)
    item = FeatureDataset(data, model_config(), "test")[0]
    assert item.visual.shape == (40, 6)
    torch.testing.assert_close(item.visual[5, :3], torch.tensor([5.0, 6, 7]))
    torch.testing.assert_close(item.audio[5], torch.tensor([1005.0, 1006]))


def test_stream_files_one_step_apart_are_trimmed_to_the_shorter(unav):
    data, root = unav
    save(root / "features" / "a_flow.npy", ramp(41, 3) + 100)
    item = FeatureDataset(data, model_config(), "test")[0]
    assert item.visual.shape == (40, 6)


def test_stream_files_further_apart_are_an_error(unav):
    data, root = unav
    save(root / "features" / "a_flow.npy", ramp(45, 3) + 100)
    with pytest.raises(DataError, match=r"a_rgb\.npy.*differ in length"):
        FeatureDataset(data, model_config(), "test")


def test_only_the_streams_the_model_uses_are_read(unav):
    data, root = unav
    (root / "features" / "a_vggish.npy").unlink()
    item = FeatureDataset(data, model_config(modalities="v"), "test")[0]
    assert item.audio is None and item.visual.shape == (40, 6)


# -- time -----------------------------------------------------------------


def test_unav_grid_puts_step_i_at_0_32_i_plus_0_48():
    grid = TimeGrid.from_frames(**UNAV_GRID)
    steps = torch.arange(224, dtype=torch.float64)
    torch.testing.assert_close(grid.to_seconds(steps), 0.32 * steps + 0.48)
    assert grid.to_seconds(10) == pytest.approx(3.68)


@given(
    st.floats(0.01, 10),
    st.floats(0, 5),
    st.floats(0, 1e4, allow_nan=False),
)
def test_seconds_to_steps_to_seconds_round_trips(step, offset, seconds):
    grid = TimeGrid(step_seconds=step, offset_seconds=offset)
    assert grid.to_seconds(grid.to_steps(seconds)) == pytest.approx(seconds, abs=1e-6)


def test_a_crop_shifts_the_grid_so_event_seconds_are_unchanged(unav):
    data, _ = unav
    full = FeatureDataset(data, model_config(), "test")[0]
    seconds = full.grid.to_seconds(full.segments)
    data.crop_ratio = (0.5, 0.6)
    dataset = FeatureDataset(data, model_config(), "test", training=True)
    for epoch in range(5):
        dataset.set_epoch(epoch)
        crop = dataset[0]
        assert crop.visual.shape[0] < 40
        start = round(crop.grid.to_steps(full.grid.to_seconds(0.0)) * -1)
        torch.testing.assert_close(crop.visual, full.visual[start : start + crop.visual.shape[0]])
        for segment, label in zip(crop.grid.to_seconds(crop.segments), crop.labels, strict=True):
            original = seconds[full.labels.tolist().index(int(label))]
            # a kept event's seconds are the original ones, clipped to the window
            window = crop.grid.to_seconds(torch.tensor([0.0, crop.visual.shape[0]]))
            expected = original.clamp(float(window[0]), float(window[1]))
            torch.testing.assert_close(segment, expected)


def test_audio_on_its_own_grid_is_resampled_onto_the_visual_grid(tmp_path: Path):
    # visual: 0.32 s steps from 0.48 s; audio: 0.96 s hop, 0.96 s window (VGGish default)
    write_annotations(tmp_path / "gt.json", {"v": (20.0, "test", [], None)})
    save(tmp_path / "v.npy", ramp(50, 6))
    audio_grid = TimeGrid.from_frames(fps=25, stride=24, window=24)  # 0.48 + 0.96·k s
    seconds = audio_grid.to_seconds(np.arange(20.0))
    save(tmp_path / "v_audio.npy", np.stack([seconds, -seconds], 1).astype(np.float32))
    data = DataConfig(
        annotations=str(tmp_path / "gt.json"),
        features=str(tmp_path),
        visual=StreamSpec(files=["{video}.npy"]),
        audio=StreamSpec(files=["{video}_audio.npy"], stride=24),
        **UNAV_GRID,
    )
    dataset = FeatureDataset(data, model_config(), "test")
    item = dataset[0]
    assert item.audio.shape == (50, 2)
    # the audio feature is its own time in seconds: resampled, it reads the visual step's time
    times = item.grid.to_seconds(torch.arange(50.0))
    inside = times <= seconds[-1]
    torch.testing.assert_close(item.audio[inside, 0], times[inside].float())
    torch.testing.assert_close(item.audio[inside, 1], -times[inside].float())
    # beyond the audio's last step the edge value is held, not extrapolated
    assert torch.all(item.audio[~inside, 0] == float(seconds[-1]))
    assert dataset.warnings == []


def test_undeclared_length_mismatch_is_interpolated_with_a_warning(unav):
    data, root = unav
    save(root / "features" / "a_vggish.npy", ramp(20, 2))  # half the visual length
    save(root / "features" / "b_vggish.npy", ramp(19, 2))  # one step short: within a window
    dataset = FeatureDataset(data, model_config(), "test")
    assert len(dataset.warnings) == 1 and "'a'" in dataset.warnings[0]
    assert "audio has 20 steps but visual has 40" in dataset.warnings[0]
    item = dataset[0]
    assert item.audio.shape == (40, 2)
    expected = interpolate_at(torch.from_numpy(ramp(20, 2)), stretch_positions(20, 40))
    torch.testing.assert_close(item.audio, expected)
    assert dataset[1].audio.shape == (20, 2)


def test_interpolation_at_integer_positions_returns_the_rows():
    x = torch.from_numpy(ramp(7, 3))
    torch.testing.assert_close(interpolate_at(x, torch.arange(7.0)), x)
    torch.testing.assert_close(interpolate_at(x, torch.tensor([2.25])), x[2:3] + 0.25)
    torch.testing.assert_close(interpolate_at(x[:1], torch.tensor([0.0, 3.0])), x[[0, 0]])


# -- truncation -----------------------------------------------------------


def make_item(length: int, segments: list[tuple[float, float]], dim: int = 2) -> VideoItem:
    return VideoItem(
        video_id="v",
        visual=torch.arange(length, dtype=torch.float32)[:, None].repeat(1, dim),
        audio=None,
        segments=torch.tensor(segments, dtype=torch.float32).reshape(-1, 2),
        labels=torch.arange(len(segments)),  # label = event number, to find the original
        duration=100.0,
        grid=TimeGrid(1.0, 0.5),
    )


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 120),
    events=st.lists(
        st.tuples(st.floats(0, 120), st.floats(0.5, 60)).map(lambda p: (p[0], p[0] + p[1])),
        max_size=6,
    ),
    seed=st.integers(0, 2**40),
    thresh=st.sampled_from([0.3, 0.5, 0.9]),
)
def test_truncation_keeps_enough_of_every_kept_event(length, events, seed, thresh):
    item = make_item(length, events)
    generator = torch.Generator().manual_seed(seed)
    crop = random_truncate(item, 32, (0.9, 1.0), thresh, generator)
    window = crop.visual.shape[0]
    assert window == 32 if length > 32 else max(round(0.9 * length), 1) <= window <= length
    start = int(crop.visual[0, 0]) if window else 0
    assert crop.grid.offset_seconds == pytest.approx(0.5 + start)
    if window < length:
        assert torch.all(crop.segments >= 0) and torch.all(crop.segments <= window)
    for segment, label in zip(crop.segments, crop.labels, strict=True):
        original = item.segments[label]
        inside = float(segment[1] - segment[0])
        assert inside >= thresh * float(original[1] - original[0]) - 1e-4
    if window < length:  # every event with enough inside this window is kept
        fraction = item.segments.clamp(start, start + window).diff(dim=1)[:, 0] / (
            item.segments[:, 1] - item.segments[:, 0]
        )
        assert set(crop.labels.tolist()) == set(
            torch.nonzero(fraction >= thresh).flatten().tolist()
        )


def test_truncation_prefers_a_window_that_keeps_an_event():
    # one short event near the end of a long video: almost no window of 32 holds it
    item = make_item(400, [(380.0, 384.0)])
    for seed in range(20):
        crop = random_truncate(item, 32, None, 0.5, torch.Generator().manual_seed(seed))
        assert crop.visual.shape[0] == 32 and len(crop.labels) == 1


def test_short_videos_are_not_cropped_without_crop_ratio():
    item = make_item(20, [(2.0, 5.0)])
    assert random_truncate(item, 32, None, 0.5, torch.Generator()) is item


def test_crops_are_deterministic_per_seed_epoch_and_index(unav):
    data, _ = unav
    data.crop_ratio = (0.3, 0.9)

    def crops(seed: int, epoch: int) -> list[int]:
        dataset = FeatureDataset(data, model_config(), "test", training=True, seed=seed)
        dataset.set_epoch(epoch)
        return [int(dataset[i].visual[0, 0]) * 1000 + len(dataset[i].visual) for i in (0, 1)]

    assert crops(7, 3) == crops(7, 3)
    assert len({tuple(crops(7, e)) for e in range(6)}) > 1
    g1, g2 = crop_generator(7, 3, 1), crop_generator(7, 3, 1)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_training_crops_long_videos_and_evaluation_keeps_them_whole(unav):
    data, _ = unav
    data.crop_ratio = None
    model = model_config(max_seq_len=16)
    assert FeatureDataset(data, model, "test", training=True)[0].visual.shape[0] == 16
    assert FeatureDataset(data, model, "test", training=False)[0].visual.shape[0] == 40


# -- collate --------------------------------------------------------------


def test_collate_pads_with_zeros_and_masks_padding():
    items = [make_item(5, [(1.0, 2.0)]), make_item(9, [])]
    batch = collate(items, divisor=4)
    assert batch.visual.shape == (2, 12, 2) and batch.audio is None
    assert batch.mask.tolist()[0] == [True] * 5 + [False] * 7
    assert batch.mask[1].sum() == 9
    assert torch.all(batch.visual[0, 5:] == 0)
    torch.testing.assert_close(batch.visual[1, :9], items[1].visual)
    assert batch.video_ids == ["v", "v"] and len(batch.segments) == 2 and len(batch) == 2


def test_collate_to_a_fixed_length_and_rejects_longer_items():
    items = [make_item(5, []), make_item(9, [])]
    assert collate(items, divisor=4, length=32).visual.shape == (2, 32, 2)
    assert collate(items, divisor=4, length=10).visual.shape == (2, 12, 2)
    with pytest.raises(ValueError, match="9 steps"):
        collate(items, divisor=4, length=8)


def test_batch_to_moves_every_tensor():
    batch = collate([make_item(5, [(1.0, 2.0)])], divisor=1).to("cpu")
    assert isinstance(batch, Batch) and batch.visual.device.type == "cpu"
    assert batch.segments[0].device.type == "cpu"


# -- bad input ------------------------------------------------------------


def test_wrong_feature_dims_name_the_file_and_both_dims(unav):
    data, _ = unav
    with pytest.raises(DataError, match=r"a_rgb\.npy.*6 feature channels.*model\.visual_dim=8"):
        FeatureDataset(data, model_config(visual_dim=8), "test")


def test_stream_dim_must_agree_with_the_model(unav):
    data, _ = unav
    data.audio.dim = 128
    with pytest.raises(ConfigError, match=r"data\.audio\.dim=128.*model\.audio_dim=2"):
        FeatureDataset(data, model_config(), "test")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])  # 1e300: float64, inf as float32
def test_non_finite_features_name_the_video(unav, bad):
    data, root = unav
    array = ramp(20, 2).astype(np.float64)
    array[3, 1] = bad
    save(root / "features" / "b_vggish.npy", array)
    dataset = FeatureDataset(data, model_config(), "test")
    with pytest.raises(DataError, match=r"video 'b'.*b_vggish\.npy.*NaN/inf"):
        dataset[1]


def test_missing_features_are_listed_or_skipped(unav):
    data, root = unav
    (root / "features" / "a_flow.npy").unlink()
    (root / "features" / "b_vggish.npy").unlink()
    with pytest.raises(DataError, match=r"2 of 2 videos.*a \(missing .*a_flow\.npy\).*b \(missing"):
        FeatureDataset(data, model_config(), "test")
    save(root / "features" / "b_vggish.npy", ramp(20, 2))
    data.skip_missing = True
    dataset = FeatureDataset(data, model_config(), "test")
    assert dataset.video_ids == ["b"] and len(dataset) == 1
    assert [v for v, _ in dataset.problems] == ["a"] and "a_flow.npy" in dataset.problems[0][1]
    assert dataset.annotations.video_ids == ["b"]


def test_all_features_missing_is_an_error_even_when_skipping(unav):
    data, root = unav
    data.skip_missing = True
    (root / "empty").mkdir()
    data.features = str(root / "empty")  # no feature files here, nor one level off
    with pytest.raises(DataError, match="no video has usable features"):
        FeatureDataset(data, model_config(), "test")


@pytest.mark.parametrize("content", [b"garbage bytes, not an array", b""])
def test_corrupt_npy_is_reported_up_front(unav, content):
    data, root = unav
    (root / "features" / "a_rgb.npy").write_bytes(content)
    with pytest.raises(DataError, match=r"a_rgb\.npy: not a readable \.npy"):
        FeatureDataset(data, model_config(), "test")
    data.skip_missing = True
    dataset = FeatureDataset(data, model_config(), "test")
    assert dataset.video_ids == ["b"] and dataset.problems[0][0] == "a"


def test_truncated_npy_is_reported_up_front(unav):
    data, root = unav
    path = root / "features" / "a_rgb.npy"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match=r"a_rgb\.npy: truncated"):
        FeatureDataset(data, model_config(), "test")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_pt_fails_when_read_naming_the_file(tmp_path: Path):
    write_annotations(tmp_path / "gt.json", {"v": (5.0, "test", [], None)})
    (tmp_path / "v.pt").write_bytes(b"\x80\x04not a pickle")
    data = DataConfig(
        annotations=str(tmp_path / "gt.json"),
        features=str(tmp_path),
        visual=StreamSpec(files=["{video}.pt"]),
        fps=25,
    )
    dataset = FeatureDataset(data, model_config(modalities="v"), "test")
    with pytest.raises(DataError, match=r"v\.pt: unreadable"):
        dataset[0]


def test_segments_beyond_the_duration_are_clipped_with_a_warning(unav, tmp_path):
    data, root = unav
    write_annotations(
        root / "gt.json",
        {"a": (10.0, "test", [(8.0, 12.0, "dog"), (11.0, 12.0, "dog")], None)},
    )
    dataset = FeatureDataset(data, model_config(), "test")
    assert any("'a': 2 event(s) extend beyond" in w for w in dataset.warnings)
    item = dataset[0]
    # the second event lies wholly outside: clipped to zero length and left out
    assert len(item.segments) == 1
    assert item.grid.to_seconds(item.segments[0, 1]) == pytest.approx(10.0)
    assert dataset.annotations.segments.tolist() == [[8.0, 12.0], [11.0, 12.0]]


def test_an_empty_split_is_an_error(unav):
    data, _ = unav
    with pytest.raises(DataError, match=r"no videos in split 'validation'"):
        FeatureDataset(data, model_config(), "validation")


def test_an_unknown_class_label_names_the_label_and_the_video(unav):
    data, _ = unav
    data.classes = ["dog", "cat"]
    with pytest.raises(DataError, match=r"video 'a' has label 'car'.*not in data.classes"):
        FeatureDataset(data, model_config(), "test")


def test_recipe_class_list_sets_label_indices(unav):
    data, _ = unav
    data.classes = ["dog", "car", "bird"]
    dataset = FeatureDataset(data, model_config(num_classes=3), "test")
    assert dataset.classes == ["dog", "car", "bird"]
    assert dataset[0].labels.tolist() == [0, 1]
    assert dataset.annotations.classes == ["dog", "car", "bird"]


def test_class_agnostic_models_get_label_zero(unav):
    data, _ = unav
    dataset = FeatureDataset(data, model_config(num_classes=1), "test")
    assert dataset.class_agnostic and dataset[0].labels.tolist() == [0, 0]
    assert dataset.annotations.labels.tolist() == [1, 0, 0]


def test_videos_without_fps_need_data_fps(unav):
    data, _ = unav
    data.fps = None
    with pytest.raises(DataError, match=r"no 'fps'.*set data\.fps"):
        FeatureDataset(data, model_config(), "test")


def test_missing_settings_are_config_errors(unav):
    data, _ = unav
    data.audio = None
    with pytest.raises(ConfigError, match=r"data\.audio is not set"):
        FeatureDataset(data, model_config(), "test")
    data.features = None
    with pytest.raises(ConfigError, match=r"data\.features"):
        FeatureDataset(data, model_config(modalities="v"), "test")


def test_item_segments_are_fresh_copies(unav):
    data, _ = unav
    dataset = FeatureDataset(data, model_config(), "test")
    dataset[0].segments.add_(100)
    assert math.isclose(float(dataset[0].segments[0, 0]), (1.0 - 0.48) / 0.32, rel_tol=1e-6)


def test_works_with_a_dataloader_and_collate(unav):
    from functools import partial

    from torch.utils.data import DataLoader

    data, _ = unav
    dataset = FeatureDataset(data, model_config(), "test", training=True)
    loader = DataLoader(dataset, batch_size=2, collate_fn=partial(collate, divisor=4, length=32))
    (batch,) = list(loader)
    assert batch.visual.shape == (2, 32, 6) and batch.audio.shape == (2, 32, 2)
    assert batch.mask.sum(1).tolist() == [32, len(dataset[1].visual)]
