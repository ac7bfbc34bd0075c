"""From a recipe to its extractors, from a video to the model's inputs.

`del extract` and `del predict` share this path:

    extractors = recipe_extractors(recipe, device="cuda")     # its `features:` block, its grid
    outputs = extract_video("clip.mp4", extractors)          # {output name: (T, dim) float32}
    visual, audio = model_inputs(outputs, recipe)             # (T, Dv), (T, Da) as trained

How a recipe's streams name extractor outputs (`data.visual.files`,
`data.audio.files`, each relative to the stream's `folder`):
- `{video}_NAME.npy` names output NAME (UnAV-100 naming: `{video}_rgb.npy`);
- `NAME/{video}.npy` (a file named after the video alone, in a folder named
  after an output) names output NAME (ActionFormer naming, one folder per output);
- any other `{video}.npy` is a released single-file layout that holds every
  output of that modality, concatenated in extractor order (THUMOS14's
  `i3d_features/{video}.npy` = rgb ‖ flow, 2048). Telling outputs' modalities
  apart needs the extractors: `extract_video` records them, or pass
  `modalities=output_modalities(extractors)`.
A stream's patterns are concatenated on channels, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from delcli.errors import ConfigError, DataError
from delcli.features import FeatureGrid, get_extractor
from delcli.features.base import Extractor, StreamOutput

if TYPE_CHECKING:
    from delcli.io import MediaInfo
    from delcli.recipe import ExtractorSpec, Recipe, StreamSpec

MODALITIES = ("visual", "audio")
FEATURE_SUFFIXES = (".npy", ".npz", ".pt")
VIDEO = "{video}"

# output name → modality, for every extractor built or run in this process: what lets
# `model_inputs` split a single-file layout by modality without being handed the
# extractors. An output name means the same stream whichever extractor makes it.
_SEEN_MODALITIES: dict[str, str] = {}

WeightsOverride = Mapping[str, "str | Mapping[str, str] | None"]


# -- recipe → extractors ----------------------------------------------------------------------


def recipe_grid(recipe: Recipe, grid: FeatureGrid | None = None) -> FeatureGrid:
    """The grid the recipe's features live on (`data.fps/stride/window`).

    `grid` stands in for a recipe without a frame rate (THUMOS14 takes each
    video's fps from its annotations); it must keep the recipe's stride and
    window, and its fps when the recipe has one.
    """
    data = recipe.data
    if grid is None:
        if data.fps is None:
            raise ConfigError(
                f"recipe '{recipe.name}' has no frame rate (data.fps is null: each video's fps "
                f"comes from its annotations); give the grid, e.g. --grid "
                f"FPS:{data.stride:g}:{data.window:g} with the videos' frame rate"
            )
        return FeatureGrid(float(data.fps), float(data.stride), float(data.window))
    differs = [
        f"{key} {theirs:g} (recipe: {ours:g})"
        for key, ours, theirs in (
            ("fps", data.fps, grid.fps),
            ("stride", data.stride, grid.stride),
            ("window", data.window, grid.window),
        )
        if ours is not None and abs(float(ours) - float(theirs)) > 1e-9
    ]
    if differs:
        raise ConfigError(
            f"grid {_grid_text(grid)} does not match recipe '{recipe.name}': "
            f"{', '.join(differs)}; the model was trained on the recipe's grid"
        )
    return grid


def recipe_extractors(
    recipe: Recipe,
    device: str = "cpu",
    weights: WeightsOverride | None = None,
    *,
    grid: FeatureGrid | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    only: Sequence[str] | None = None,
) -> list[Extractor]:
    """The extractors of the recipe's `features:` block, built on its grid.

    `weights` / `options` (extractor name → spec / {key: value}) override the
    recipe's; `only` keeps a subset of its extractors (by name); `grid`: see
    `recipe_grid`. A recipe without `features` is a `ConfigError` that says
    which streams the user must make with extractors of their choosing.
    """
    if recipe.features is None or not recipe.features.extractors:
        raise ConfigError(
            f"recipe '{recipe.name}' does not say how its features are made (features: null); "
            f"it reads {_streams_text(recipe)}: name extractors that make them "
            "(del extract --extractor NAME --grid …)"
        )
    specs = list(recipe.features.extractors)
    names = [spec.name for spec in specs]
    if only is not None:
        unknown = [name for name in only if name not in names]
        if unknown:
            raise ConfigError(
                f"extractor(s) {', '.join(unknown)} not in recipe '{recipe.name}' "
                f"(its extractors: {', '.join(names)})"
            )
        specs = [spec for spec in specs if spec.name in only]
    for label, override in (("weights", weights), ("options", options)):
        unknown = sorted(set(override or {}) - {spec.name for spec in specs})
        if unknown:
            raise ConfigError(
                f"{label} for {', '.join(unknown)}: not an extractor of this run "
                f"({', '.join(spec.name for spec in specs)})"
            )
    return build_extractors(specs, recipe_grid(recipe, grid), device, weights, options)


def named_extractors(
    names: Sequence[str],
    grid: FeatureGrid | None,
    device: str = "cpu",
    weights: WeightsOverride | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Extractor]:
    """Extractors chosen by name (`del extract --extractor`) rather than by a recipe.

    Without a recipe nothing says which grid, so `grid` is required; `weights` and
    `options` may only name extractors of `names`, so a typo is not silently ignored.
    """
    from delcli.recipe import ExtractorSpec

    if not names:
        raise ConfigError("say which features: --recipe NAME, or --extractor NAME with --grid")
    if grid is None:
        raise ConfigError(
            "--extractor needs --grid (unav100, thumos14, epic100, basic or FPS:STRIDE:WINDOW)"
        )
    for label, given in (("--weights", weights or {}), ("--option", options or {})):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(
                f"{label} for {', '.join(unknown)}: not among --extractor {list(names)}"
            )
    specs = [ExtractorSpec(name=name) for name in names]
    return build_extractors(specs, grid, device, weights, options)


def build_extractors(
    specs: Sequence[ExtractorSpec],
    grid: FeatureGrid,
    device: str = "cpu",
    weights: WeightsOverride | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Extractor]:
    """Each `ExtractorSpec` as an extractor on `grid`; overrides by extractor name.

    Output names must be unique across the extractors (they name files).
    """
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"extractor(s) {', '.join(twice)} listed twice")
    weights, options = weights or {}, options or {}
    extractors = []
    for spec in specs:
        spec_weights = weights.get(spec.name, spec.weights)
        spec_options = {**(spec.options or {}), **dict(options.get(spec.name, {}))}
        extractors.append(
            get_extractor(spec.name, grid, weights=spec_weights, device=device, **spec_options)
        )
    output_streams(extractors)
    return extractors


def output_streams(extractors: Sequence[Extractor]) -> list[StreamOutput]:
    """Every output of `extractors`, in order; `ConfigError` when two share a name."""
    seen: dict[str, str] = {}
    streams = []
    for extractor in extractors:
        for output in extractor.outputs:
            if output.name in seen:
                raise ConfigError(
                    f"extractors '{seen[output.name]}' and '{extractor.name}' both write "
                    f"output '{output.name}'"
                )
            seen[output.name] = extractor.name
            _SEEN_MODALITIES[output.name] = output.modality
            streams.append(output)
    return streams


def output_modalities(extractors: Sequence[Extractor]) -> dict[str, str]:
    """Output name → "visual" | "audio", in extractor order."""
    return {output.name: output.modality for output in output_streams(extractors)}


# -- one video ------------------------------------------------------------------------------


def extract_video(
    path: str | Path, extractors: Sequence[Extractor], info: MediaInfo | None = None
) -> dict[str, np.ndarray]:
    """All outputs of all `extractors` for one video, in extractor order.

    Each is a (T, dim) float32 array with one T, the grid's
    `num_steps(info.duration)`. Raises `MediaError` for input that cannot be
    decoded (missing, a directory, not media, truncated), and `DataError` when an
    extractor returns the wrong shape or non-finite values.
    """
    if not extractors:
        raise ConfigError("no extractors to run")
    grid = extractors[0].grid
    if any(extractor.grid != grid for extractor in extractors):
        grids = ", ".join(f"{e.name} {_grid_text(e.grid)}" for e in extractors)
        raise ConfigError(f"extractors on different grids ({grids}); one video, one grid")
    if info is None:
        from delcli.io import probe

        info = probe(path)
    num_steps = grid.num_steps(info.duration)
    outputs: dict[str, np.ndarray] = {}
    for extractor in extractors:
        produced = extractor.extract(path, info)
        for output in extractor.outputs:
            _SEEN_MODALITIES[output.name] = output.modality
            outputs[output.name] = _checked(produced.get(output.name), output, num_steps, path)
    return outputs


def missing_streams(info: MediaInfo, extractors: Sequence[Extractor]) -> tuple[str, ...]:
    """The modalities ("visual", "audio") the extractors read but the file lacks (an
    audio-only or a silent video): their features are all zeros."""
    present = {"visual": info.video is not None, "audio": info.audio is not None}
    wanted = dict.fromkeys(output.modality for output in output_streams(extractors))
    return tuple(modality for modality in wanted if not present.get(modality, True))


def missing_stream_note(video: str, missing: Sequence[str]) -> str:
    names = " and ".join("video" if m == "visual" else m for m in missing)
    return f"{video} has no {names} stream: its {' and '.join(missing)} features are zeros"


def _checked(array: Any, output: StreamOutput, num_steps: int, path: str | Path) -> np.ndarray:
    if array is None:
        raise DataError(f"{path}: the extractor of '{output.name}' returned no such output")
    array = np.asarray(array, dtype=np.float32)
    if array.shape != (num_steps, output.dim):
        raise DataError(
            f"{path}: output '{output.name}' has shape {array.shape}, expected "
            f"({num_steps}, {output.dim}) on the grid"
        )
    if not np.isfinite(array).all():
        raise DataError(f"{path}: output '{output.name}' holds NaN or infinite values")
    return array


# -- outputs → the model's streams ----------------------------------------------------------


@dataclass(frozen=True)
class StreamFile:
    """One file of a recipe stream: where it lives and which outputs it concatenates."""

    modality: str
    pattern: str  # relative to the feature root, with {video}: `av_features/{video}_rgb.npy`
    outputs: tuple[str, ...]


def stream_files(
    spec: StreamSpec, modality: str, modalities: Mapping[str, str | None]
) -> list[StreamFile]:
    """The files of one recipe stream and the outputs each holds (see the module docstring).

    `modalities` (output name → modality, None if unknown) lists what the
    extractors produce;
    a named output need not be among them (the caller reports it missing), a
    single-file layout takes those of `modality` (maybe none).
    """
    files = []
    for pattern in spec.files:
        path = PurePosixPath(spec.folder or ".") / pattern
        stem = path.name
        for suffix in FEATURE_SUFFIXES:
            stem = stem.removesuffix(suffix)
        if stem.startswith(VIDEO + "_"):
            outputs: tuple[str, ...] = (stem[len(VIDEO) + 1 :],)
        elif stem == VIDEO and path.parent.name in modalities:
            outputs = (path.parent.name,)
        else:
            outputs = tuple(name for name, kind in modalities.items() if kind == modality)
        files.append(StreamFile(modality, str(path), outputs))
    return files


def used_streams(recipe: Recipe) -> dict[str, StreamSpec]:
    """The recipe's streams its model reads: {"visual": spec, "audio": spec}."""
    model, data = recipe.model, recipe.data
    streams = {}
    for modality, used in (("visual", model.uses_visual), ("audio", model.uses_audio)):
        if not used:
            continue
        spec = getattr(data, modality)
        if spec is None:
            raise ConfigError(
                f"recipe '{recipe.name}': data.{modality} is not set, but "
                f"model.modalities={model.modalities} reads {modality} features"
            )
        streams[modality] = spec
    return streams


def model_inputs(
    outputs: Mapping[str, np.ndarray],
    recipe: Recipe,
    modalities: Mapping[str, str] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(visual (T, Dv), audio (T, Da)) float32, assembled as the recipe's streams read them.

    Only the modalities the model uses are built (the other is None). Arrays
    are on the extraction grid: a recipe with `data.resize_length` (ActivityNet)
    still needs its resize. A missing output, or channels that do not add up to
    `model.visual_dim` / `model.audio_dim`, is a `ConfigError` naming what the
    extractors produce.
    """
    known = _SEEN_MODALITIES if modalities is None else modalities
    kinds = {name: known.get(name) for name in outputs}  # None: modality unknown
    produced = ", ".join(f"{name} {array.shape[-1]}" for name, array in outputs.items())
    result: dict[str, np.ndarray] = {}
    for modality, spec in used_streams(recipe).items():
        parts = []
        for file in stream_files(spec, modality, kinds):
            if not file.outputs:
                hint = (
                    "; pass modalities=output_modalities(extractors)"
                    if None in kinds.values()
                    else ""
                )
                raise ConfigError(
                    f"data.{modality}.files: '{file.pattern}' names no output and none of the "
                    f"extractors' outputs is known to be {modality} "
                    f"(they produce: {produced or 'nothing'}){hint}"
                )
            for name in file.outputs:
                if name not in outputs:
                    raise ConfigError(
                        f"data.{modality}.files: '{file.pattern}' needs output '{name}', which "
                        f"the extractors do not produce (they produce: {produced or 'nothing'})"
                    )
                parts.append(np.asarray(outputs[name], dtype=np.float32))
        lengths = {part.shape[0] for part in parts}
        if len(lengths) > 1:
            raise DataError(f"{modality} outputs differ in length ({sorted(lengths)} steps)")
        stream = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        expected = getattr(recipe.model, f"{modality}_dim")
        if stream.shape[1] != expected:
            raise ConfigError(
                f"{modality} inputs have {stream.shape[1]} channels but "
                f"model.{modality}_dim={expected} (the extractors produce: {produced})"
            )
        result[modality] = stream
    return result.get("visual"), result.get("audio")


# -- text -------------------------------------------------------------------------------------


def _grid_text(grid: FeatureGrid) -> str:
    return f"{grid.fps:g}:{grid.stride:g}:{grid.window:g}"


def _streams_text(recipe: Recipe) -> str:
    described = []
    for modality in MODALITIES:
        spec = getattr(recipe.data, modality)
        if spec is None:
            continue
        files = " + ".join(str(PurePosixPath(spec.folder or ".") / p) for p in spec.files)
        dim = getattr(recipe.model, f"{modality}_dim")
        described.append(f"{modality} {files} ({dim})")
    return "; ".join(described) or "no streams"
