"""`FeatureDataset`: one split of a feature dataset, as `VideoItem`s on its grid.

Construction is cheap and complete: it reads the annotations, resolves every
video's feature files, reads `.npy`/`.npz` headers (shape, size) and reports
all missing or unreadable videos at once. Arrays are read lazily in
`__getitem__`.

Layouts are `StreamSpec` patterns relative to the feature root: UnAV-100
`{video}_rgb.npy` + `{video}_flow.npy` / `{video}_vggish.npy`; ActionFormer
`{video}.npy` in one folder per modality; ActivityNet `v_{video}.npy` (an id
that already carries the `v_` prefix is tried without it, and vice versa).
The annotations' side — which file, each video's fps, the targets in grid
steps — is `delcli.data.ground_truth`.
"""

from __future__ import annotations

import math
from pathlib import Path

from torch.utils.data import Dataset

from delcli.data.batch import TimeGrid, VideoItem
from delcli.data.features import (
    CorruptFeatures,
    apply_alignment,
    load_stream,
    orient,
    plan_alignment,
    probe_shape,
)
from delcli.data.formats import read_annotations
from delcli.data.ground_truth import (
    annotation_path,
    epic_task,
    event_targets,
    keep_videos,
    video_fps,
)
from delcli.data.transforms import crop_generator, random_truncate
from delcli.errors import ConfigError, DataError
from delcli.model.config import ModelConfig
from delcli.recipe import DataConfig, StreamSpec

_LISTED = 5  # videos named in a "features missing" error


class FeatureDataset(Dataset):
    """The usable videos of one split; items are whole videos, or random crops
    when `training` (ActionFormer's truncation, see `delcli.data.transforms`).

    Labels index `classes`; with `model.num_classes == 1` and a longer class
    list the targets are class-agnostic (every label 0, ActivityNet) while
    `annotations` keeps the real labels for evaluation.
    """

    def __init__(
        self,
        data: DataConfig,
        model: ModelConfig,
        split: str,
        training: bool = False,
        seed: int = 0,
    ) -> None:
        self.data, self.model, self.split = data, model, split
        self.training, self.seed, self.epoch = training, seed, 0
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.problems: list[tuple[str, str]] = []
        self._streams = _used_streams(data, model)
        self._reference = "visual" if "visual" in self._streams else "audio"
        self._tolerance = max(data.window / data.stride, 1.0)
        root = data.features
        self._root = Path(root).expanduser() if root is not None else None
        self._check_root()

        source = annotation_path(data)
        everything = read_annotations(source, epic_task=epic_task(data))
        ground_truth = everything.select_split(split)
        self.classes = list(data.classes) if data.classes is not None else list(everything.classes)
        self.class_agnostic = model.num_classes == 1 and len(self.classes) > 1
        fps = video_fps(data, source, ground_truth)

        usable: list[int] = []
        self._files, self._grids, self._declared = [], [], []
        for v, video in enumerate(ground_truth.video_ids):
            grid = self._video_grid(video, ground_truth.durations[v], fps.get(video))
            declared = {
                name: self._declared_grid(name, spec, fps.get(video))
                for name, spec in self._streams.items()
            }
            files, reason = self._find_files(video)
            if reason is None:
                try:
                    self._probe(video, files, grid, declared)
                except CorruptFeatures as error:
                    reason = str(error)
            if reason is not None:
                self.problems.append((video, reason))
                continue
            usable.append(v)
            self._files.append(files)
            self._grids.append(grid)
            self._declared.append(declared)
        self._report_problems(len(ground_truth.video_ids))
        self.annotations = keep_videos(ground_truth, usable, self.classes)
        self.video_ids = list(self.annotations.video_ids)
        self._targets, notes = event_targets(self.annotations, self._grids, self.class_agnostic)
        self.warnings.extend(notes)

    # -- construction -------------------------------------------------------

    def _check_root(self) -> None:
        relative = [s for s in self._streams.values() if not Path(s.folder).is_absolute()]
        if relative and self._root is None:
            raise ConfigError("data.features is not set; give the feature folder (--features DIR)")
        if relative and not self._root.is_dir():
            raise DataError(f"{self._root}: feature folder not found")

    def _video_grid(self, video: str, duration: float, fps: float | None) -> TimeGrid:
        if self.data.resize_length is not None:
            if not math.isfinite(duration) or duration <= 0:
                raise DataError(
                    f"video '{video}' has no duration in the annotations; "
                    f"data.resize_length={self.data.resize_length} needs one"
                )
            return TimeGrid.from_resize(float(duration), self.data.resize_length)
        return TimeGrid.from_frames(fps, self.data.stride, self.data.window)

    def _declared_grid(self, name: str, spec: StreamSpec, fps: float | None) -> TimeGrid | None:
        if spec.fps is None and spec.stride is None and spec.window is None:
            return None
        stream_fps = spec.fps or fps
        if stream_fps is None:
            raise ConfigError(
                f"data.{name} declares its own stride/window but no fps, and the dataset has none"
            )
        return TimeGrid.from_frames(
            stream_fps, spec.stride or self.data.stride, spec.window or self.data.window
        )

    def _find_files(
        self, video: str, root: Path | None = None
    ) -> tuple[dict[str, list[Path]], str | None]:
        """Every stream's files for `video` (or its `v_` alias) under `root` (default: the
        feature folder), or why they cannot be used."""
        alias = video[2:] if video.startswith("v_") else "v_" + video
        root = root if root is not None else self._root
        files = {}
        for name, spec in self._streams.items():
            folder = Path(spec.folder).expanduser()
            folder = folder if folder.is_absolute() else root / folder
            for candidate in (video, alias):
                paths = [folder / p.replace("{video}", candidate) for p in spec.files]
                if all(p.exists() for p in paths):
                    files[name] = paths
                    break
            else:
                paths = [folder / p.replace("{video}", video) for p in spec.files]
                return files, "missing " + ", ".join(str(p) for p in paths if not p.exists())
        return files, None

    def _probe(
        self, video: str, files: dict[str, list[Path]], grid: TimeGrid, declared: dict
    ) -> None:
        """Check shapes from file headers; note length mismatches up front where known."""
        lengths = {}
        for name, paths in files.items():
            shapes = [probe_shape(p) for p in paths]
            if any(s is None for s in shapes):
                continue
            transposed = orient(shapes, paths, *self._expected_dim(name))
            lengths[name] = min(
                s[1] if t else s[0] for s, t in zip(shapes, transposed, strict=True)
            )
        if len(lengths) == len(files) and self._reference in lengths:
            self._plan(video, lengths, grid, declared)

    def _expected_dim(self, name: str) -> tuple[int, str]:
        key = f"{name}_dim"
        return getattr(self.model, key), f"model.{key}"

    def _plan(self, video, lengths, grid, declared):
        plan = plan_alignment(
            video,
            lengths,
            declared,
            grid,
            self._reference,
            self.data.resize_length,
            self._tolerance,
        )
        for warning in plan.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.warnings.append(warning)
        return plan

    def _report_problems(self, total: int) -> None:
        if self.problems and len(self.problems) == total:
            self._check_one_level_off()
        if self.problems and not self.data.skip_missing:
            listed = "; ".join(f"{v} ({reason})" for v, reason in self.problems[:_LISTED])
            more = (
                f"; … {len(self.problems) - _LISTED} more" if len(self.problems) > _LISTED else ""
            )
            raise DataError(
                f"features missing or unreadable for {len(self.problems)} of {total} videos "
                f"in split '{self.split}': {listed}{more} "
                "(set data.skip_missing=true to skip them)"
            )
        if total == len(self.problems):
            raise DataError(f"split '{self.split}': no video has usable features")

    def _check_one_level_off(self) -> None:
        """No video's files found: when they sit one folder below or above `--features`,
        say which folder to pass (`--features` holds the files the recipe names)."""
        if self._root is None or not self._root.is_dir():
            return
        video = self.problems[0][0]
        below = sorted(p for p in self._root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for candidate in [*below[:50], self._root.parent]:
            if candidate != self._root and self._find_files(video, candidate)[1] is None:
                raise DataError(
                    f"--features {self._root}: none of split '{self.split}''s feature files are "
                    f"there, but they are in {candidate}: pass --features {candidate} (the "
                    "folder holding the files the recipe names)"
                )

    # -- items --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.video_ids)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the crops: item i of epoch e is the same for the same seed."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> VideoItem:
        return self.item(index, crop=self.training)

    def item(self, index: int, crop: bool = False) -> VideoItem:
        """Video `index` on the grid; `crop` applies the training split's random truncation."""
        video = self.video_ids[index]
        grid, declared = self._grids[index], self._declared[index]
        streams = {
            name: load_stream(paths, *self._expected_dim(name), video)
            for name, paths in self._files[index].items()
        }
        lengths = {name: x.shape[0] for name, x in streams.items()}
        plan = self._plan(video, lengths, grid, declared)
        streams = apply_alignment(streams, plan, declared, grid)
        segments, labels = self._targets[index]
        duration = float(self.annotations.durations[index])
        if not math.isfinite(duration):  # the end of the last feature window
            duration = float(grid.to_seconds(plan.length - 1) + grid.offset_seconds)
        item = VideoItem(
            video_id=video,
            visual=streams.get("visual"),
            audio=streams.get("audio"),
            segments=segments.clone(),
            labels=labels.clone(),
            duration=duration,
            grid=grid,
        )
        if crop:
            generator = crop_generator(self.seed, self.epoch, index)
            item = random_truncate(
                item,
                self.model.max_seq_len,
                self.data.crop_ratio,
                self.data.trunc_thresh,
                generator,
            )
        return item


def _used_streams(data: DataConfig, model: ModelConfig) -> dict[str, StreamSpec]:
    wanted = [("visual", model.uses_visual), ("audio", model.uses_audio)]
    streams = {}
    for name, used in wanted:
        if not used:
            continue
        spec = getattr(data, name)
        if spec is None:
            raise ConfigError(
                f"data.{name} is not set, but model.modalities={model.modalities} "
                f"uses {name} features"
            )
        if not spec.files or any("{video}" not in p for p in spec.files):
            raise ConfigError(
                f"data.{name}.files={spec.files}; every pattern needs '{{video}}', "
                "e.g. '{video}.npy'"
            )
        model_dim = getattr(model, f"{name}_dim")
        if spec.dim is not None and spec.dim != model_dim:
            raise ConfigError(
                f"data.{name}.dim={spec.dim} but model.{name}_dim={model_dim}; they must agree"
            )
        streams[name] = spec
    return streams
