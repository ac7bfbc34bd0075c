"""Feature files: reading, orienting, and aligning streams onto one time grid.

A *stream* (visual or audio) is one or more files per video concatenated on
channels, e.g. UnAV-100's `<vid>_rgb.npy` + `<vid>_flow.npy` → 2048 channels.
Each file holds one (T, C) array: `.npy`, `.npz` (key `feats`, else its only
array) or `.pt` (a tensor). A (C, T) array is transposed when only that
orientation gives the expected channel count.

Alignment onto the dataset grid (never silent truncation):
- a stream that declares its own grid (fps/stride/window in its `StreamSpec`)
  is *resampled*: target step j sits at `target.to_seconds(j)`, which is
  position `source.to_steps(that)` in the stream; values are linearly
  interpolated between the two neighbouring steps (clamped at the ends);
- a stream that declares nothing is *stretched* to the reference length L,
  the `align_corners=False` mapping of `torch.nn.functional.interpolate`:
  target step j ← source position (j + 0.5)·S/L − 0.5. Each step is a cell of
  equal share of the video, which is also what `resize_length` means
  (step i covers [i, i+1)·duration/L).
"""

from __future__ import annotations

import itertools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from delcli.data.batch import TimeGrid
from delcli.errors import DataError

SUFFIXES = (".npy", ".npz", ".pt")
_MAX_ORIENTATION_FILES = 8  # 2^8 orientation choices at most


class CorruptFeatures(DataError):
    """A feature file that exists but cannot be read (skippable with `data.skip_missing`)."""


def _npy_header(handle, path: Path, size: int | None) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an open `.npy` stream; with `size`, check the payload is whole."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise CorruptFeatures(f"{path}: not a readable .npy array ({error})") from None
    if dtype.hasobject:
        raise CorruptFeatures(f"{path}: holds Python objects, not numbers")
    if size is not None:
        expected = handle.tell() + int(np.prod(shape)) * dtype.itemsize
        if size != expected:
            raise CorruptFeatures(
                f"{path}: truncated or padded .npy ({size} bytes, header implies {expected})"
            )
    return tuple(int(n) for n in shape), dtype


def _npz_member(names: list[str], path: Path) -> str:
    if "feats.npy" in names:
        return "feats.npy"
    if len(names) == 1:
        return names[0]
    keys = ", ".join(n.removesuffix(".npy") for n in names)
    raise DataError(f"{path}: .npz holds several arrays ({keys}) and none is named 'feats'")


def probe_shape(path: Path) -> tuple[int, ...] | None:
    """The array shape of a feature file from its header alone (None for `.pt`).

    Raises `CorruptFeatures` when the header is unreadable or a `.npy`
    payload has the wrong size.
    """
    suffix = path.suffix
    try:
        if suffix == ".npy":
            with open(path, "rb") as handle:
                return _npy_header(handle, path, path.stat().st_size)[0]
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                member = _npz_member(archive.namelist(), path)
                with archive.open(member) as handle:
                    return _npy_header(handle, path, None)[0]
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CorruptFeatures(f"{path}: unreadable ({error})") from None
    if suffix == ".pt":
        return None
    raise DataError(f"{path}: unsupported feature file type (use {', '.join(SUFFIXES)})")


def read_array(path: Path) -> np.ndarray:
    """The array of one feature file (any numeric dtype, as stored)."""
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                array = archive[_npz_member([f"{k}.npy" for k in archive.files], path)[:-4]]
        elif path.suffix == ".pt":
            tensor = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(tensor, Tensor):
                raise DataError(f"{path}: holds a {type(tensor).__name__}, expected a tensor")
            array = tensor.detach().float().numpy()
        else:
            raise DataError(f"{path}: unsupported feature file type (use {', '.join(SUFFIXES)})")
    except DataError:
        raise
    except Exception as error:  # numpy, zipfile and pickle raise a zoo of types
        raise CorruptFeatures(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{path}: holds {array.dtype} values, expected real numbers")
    return array


def orient(
    shapes: list[tuple[int, ...]], paths: list[Path], expected_dim: int, dim_key: str
) -> list[bool]:
    """Which files of one stream to transpose so channels add up to `expected_dim`.

    Every file must be 2-D. As stored, (T, C) is preferred; a file is read as
    (C, T) only when no choice with fewer transposes fits. The files' time
    lengths must agree within one step.
    """
    for shape, path in zip(shapes, paths, strict=True):
        if len(shape) != 2:
            raise DataError(f"{path}: feature array has shape {shape}; expected (T, C) or (C, T)")
    choices = [[False] + ([True] if shape[0] != shape[1] else []) for shape in shapes]
    if len(shapes) > _MAX_ORIENTATION_FILES:
        choices = [[False]] * len(shapes)
    fits_dims = None
    for transposed in sorted(itertools.product(*choices), key=sum):
        lengths = [s[1] if t else s[0] for s, t in zip(shapes, transposed, strict=True)]
        channels = [s[0] if t else s[1] for s, t in zip(shapes, transposed, strict=True)]
        if sum(channels) != expected_dim:
            continue
        if max(lengths) - min(lengths) <= 1:
            return list(transposed)
        fits_dims = fits_dims or lengths
    found = ", ".join(f"{p} {tuple(s)}" for p, s in zip(paths, shapes, strict=True))
    if fits_dims is not None:
        raise DataError(
            f"{found}: files of one stream differ in length by more than one step "
            f"({', '.join(map(str, fits_dims))})"
        )
    stored = sum(s[1] for s in shapes)
    raise DataError(
        f"{found}: {stored} feature channels, but {dim_key}={expected_dim} "
        "(neither (T, C) nor (C, T) fits)"
    )


def load_stream(paths: list[Path], expected_dim: int, dim_key: str, video: str) -> Tensor:
    """(T, C) float32 of one stream: its files oriented, trimmed to the shortest
    (they may differ by one step) and concatenated on channels."""
    arrays = [read_array(path) for path in paths]
    transposed = orient([a.shape for a in arrays], paths, expected_dim, dim_key)
    arrays = [a.T if t else a for a, t in zip(arrays, transposed, strict=True)]
    length = min(a.shape[0] for a in arrays)
    # float32 first: a float64 value beyond its range (1e300) becomes inf, refused here
    with np.errstate(over="ignore"):
        arrays = [a[:length].astype(np.float32, copy=False) for a in arrays]
    for array, path in zip(arrays, paths, strict=True):
        finite = np.isfinite(array)
        if not finite.all():
            raise DataError(
                f"video '{video}': {path} holds {finite.size - finite.sum()} NaN/inf values "
                "(as float32)"
            )
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=1)))


def interpolate_at(x: Tensor, positions: Tensor) -> Tensor:
    """(S, C) values at fractional step `positions` (L,), linear, clamped to [0, S-1]."""
    last = x.shape[0] - 1
    positions = positions.to(torch.float64).clamp(0, last)
    low = positions.floor().long().clamp(max=max(last - 1, 0))
    high = (low + 1).clamp(max=last)
    weight = (positions - low).to(x.dtype)[:, None]
    return x[low] * (1 - weight) + x[high] * weight


def stretch_positions(source_length: int, length: int) -> Tensor:
    """Source positions of `length` steps spread over `source_length` (align_corners=False)."""
    return (torch.arange(length, dtype=torch.float64) + 0.5) * source_length / length - 0.5


def resample_positions(source: TimeGrid, target: TimeGrid, length: int) -> Tensor:
    """Source positions of target steps 0..length-1, through seconds."""
    return source.to_steps(target.to_seconds(torch.arange(length, dtype=torch.float64)))


@dataclass
class AlignmentPlan:
    """How each stream reaches the dataset grid: `keep`, `stretch` or `resample`."""

    length: int
    methods: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def plan_alignment(
    video: str,
    lengths: dict[str, int],
    declared: dict[str, TimeGrid | None],
    target: TimeGrid,
    reference: str,
    resize_length: int | None,
    tolerance_steps: float,
) -> AlignmentPlan:
    """Decide the dataset length T and each stream's mapping from lengths alone.

    `reference` (the visual stream when the model uses it) sets T unless
    `resize_length` does. Warnings note undeclared streams whose lengths
    disagree by more than `tolerance_steps` (one analysis window) and
    declared streams that cover the target span short by more than their
    own window.
    """
    reference_grid = declared[reference]
    if resize_length is not None:
        length = resize_length
    elif reference_grid is not None:
        end = target.to_steps(reference_grid.to_seconds(lengths[reference] - 1))
        length = max(int(np.floor(end + 1e-6)) + 1, 1)
    else:
        length = lengths[reference]
    plan = AlignmentPlan(length=length, methods={})
    for name, source_length in lengths.items():
        grid = declared[name]
        if grid is not None:
            plan.methods[name] = "resample"
            _check_coverage(plan, video, name, source_length, grid, target)
            continue
        plan.methods[name] = "keep" if source_length == length else "stretch"
        compare = length if resize_length is None else lengths[reference]
        if declared[reference] is None and abs(source_length - compare) > tolerance_steps:
            plan.warnings.append(
                f"video '{video}': {name} has {source_length} steps but {reference} has "
                f"{compare} (more than one window, {tolerance_steps:g} steps, apart); "
                f"{name} interpolated to {length} steps"
            )
    return plan


def _check_coverage(
    plan: AlignmentPlan,
    video: str,
    name: str,
    source_length: int,
    source: TimeGrid,
    target: TimeGrid,
) -> None:
    first, last = source.to_seconds(0), source.to_seconds(source_length - 1)
    wanted_first, wanted_last = target.to_seconds(0), target.to_seconds(plan.length - 1)
    gap = max(first - wanted_first, wanted_last - last, 0.0)
    window = 2 * source.offset_seconds
    if gap > max(window, source.step_seconds):
        plan.warnings.append(
            f"video '{video}': {name} covers {first:.2f}–{last:.2f} s but the grid needs "
            f"{wanted_first:.2f}–{wanted_last:.2f} s; edge values repeated over {gap:.2f} s"
        )


def apply_alignment(
    streams: dict[str, Tensor],
    plan: AlignmentPlan,
    declared: dict[str, TimeGrid | None],
    target: TimeGrid,
) -> dict[str, Tensor]:
    """Every stream as (plan.length, C) on the target grid."""
    aligned = {}
    for name, x in streams.items():
        method = plan.methods[name]
        if method == "keep":
            aligned[name] = x
        elif method == "stretch":
            aligned[name] = interpolate_at(x, stretch_positions(x.shape[0], plan.length))
        else:
            positions = resample_positions(declared[name], target, plan.length)
            aligned[name] = interpolate_at(x, positions)
    return aligned
