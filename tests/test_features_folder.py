"""One `--features` convention: the folder holding the files the recipe names; a folder
one level off is detected and the error names the folder to pass."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from delcli.data.dataset import FeatureDataset
from delcli.errors import DataError
from delcli.model.config import ModelConfig
from delcli.recipe import DataConfig, StreamSpec

MODEL = ModelConfig(visual_dim=3, audio_dim=2, num_classes=1, max_seq_len=32, n_levels=3)


def dataset_files(root: Path, visual: str, audio: str, tmp_path: Path) -> Path:
    """Two videos' features at `root/visual` and `root/audio` patterns; the annotations."""
    database = {}
    for video in ("a", "b"):
        for pattern, dim in ((visual, 3), (audio, 2)):
            path = root / pattern.replace("{video}", video)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.zeros((20, dim), dtype=np.float32))
        events = [{"segment": [1.0, 2.0], "label": "dog"}]
        database[video] = {"subset": "test", "duration": 6.4, "annotations": events}
    annotations = tmp_path / "gt.json"
    annotations.write_text(json.dumps({"database": database}))
    return annotations


def data(visual: str, audio: str, annotations: Path) -> DataConfig:
    return DataConfig(
        annotations=str(annotations),
        visual=StreamSpec(files=[visual]),
        audio=StreamSpec(files=[audio]),
        fps=25.0,
    )


def test_the_folder_holding_the_named_files_is_read(tmp_path):
    annotations = dataset_files(
        tmp_path / "feats", "{video}_rgb.npy", "audio/{video}.npy", tmp_path
    )
    config = data("{video}_rgb.npy", "audio/{video}.npy", annotations)
    assert len(FeatureDataset(replace(config, features=tmp_path / "feats"), MODEL, "test")) == 2


def test_a_folder_one_level_above_is_named_in_the_error(tmp_path):
    root = tmp_path / "unav100"
    annotations = dataset_files(
        root / "av_features", "{video}_rgb.npy", "{video}_vggish.npy", tmp_path
    )
    (root / "videos").mkdir()
    config = data("{video}_rgb.npy", "{video}_vggish.npy", annotations)
    with pytest.raises(DataError, match=f"pass --features {root / 'av_features'} "):
        FeatureDataset(replace(config, features=root), MODEL, "test")


def test_a_folder_one_level_below_is_named_in_the_error(tmp_path):
    root = tmp_path / "thumos"
    annotations = dataset_files(root, "i3d/{video}.npy", "audio/{video}.npy", tmp_path)
    config = data("i3d/{video}.npy", "audio/{video}.npy", annotations)
    with pytest.raises(DataError, match=f"pass --features {root} "):
        FeatureDataset(replace(config, features=root / "i3d"), MODEL, "test")


def test_files_missing_everywhere_keep_the_missing_files_error(tmp_path):
    annotations = dataset_files(
        tmp_path / "elsewhere", "x/{video}_rgb.npy", "x/{video}.npy", tmp_path
    )
    (tmp_path / "empty").mkdir()
    config = data("{video}_rgb.npy", "{video}.npy", annotations)
    with pytest.raises(DataError, match="features missing or unreadable for 2 of 2 videos"):
        FeatureDataset(replace(config, features=tmp_path / "empty"), MODEL, "test")
