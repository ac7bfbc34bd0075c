"""What an exported network says about itself: the metadata of `.onnx` and `.pt2` files.

An exported file carries everything needed to run it and read its outputs,
without `delcli`: string entries (ONNX `metadata_props`; in a `.pt2` the JSON
object `del_export.json` among its extra files), each value JSON-encoded:

    format         "del-export-1"
    del_version    the exporting del's version
    name, title    the recipe's
    recipe         the resolved recipe (what `del-weights-1` files hold), as JSON
    classes        class names, one per output channel
    inputs         input names in order: the streams the model uses, then "mask"
    outputs        ["cls_logits", "offsets"]
    time_multiple  T of the traced graph is a multiple of this …
    min_steps      … at least this …
    max_steps      … and at most this (a .pt2 caller pads with mask False;
                   the ONNX graph pads any T ≥ 1 itself, up to max_steps)
    n_levels       pyramid levels, concatenated finest first in the outputs
    strides        each level's stride on the input grid, [1, 2, 4, …]
    visual_dim, audio_dim   feature channels of each stream (null if unused)
    feature_fps, feature_stride, feature_window, resize_length
                   the feature grid: step i covers the window centred at
                   (i·stride + window/2) / fps seconds (fps null: the video's)
    extractors     the feature extractors the recipe names (`del extract`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from delcli.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from delcli.recipe import Recipe

FORMAT = "del-export-1"
EXTRA_FILE = "del_export.json"
"""Name of the metadata object among a `.pt2` file's extra files."""


@dataclass(frozen=True)
class ExportInfo:
    """The metadata of an exported network, parsed."""

    recipe: Recipe
    classes: list[str]
    inputs: list[str]
    outputs: list[str]
    time_multiple: int
    min_steps: int
    max_steps: int


def export_metadata(recipe: Recipe) -> dict[str, str]:
    """The metadata entries (strings of JSON) of `recipe`'s network, see the module docstring."""
    from delcli import __version__
    from delcli.export.graph import OUTPUT_NAMES, input_names, max_steps, min_steps, time_multiple
    from delcli.recipe import class_names, recipe_to_dict

    model, data = recipe.model, recipe.data
    values = {
        "format": FORMAT,
        "del_version": __version__,
        "name": recipe.name,
        "title": recipe.title,
        "recipe": recipe_to_dict(recipe),
        "classes": class_names(recipe),
        "inputs": list(input_names(model)),
        "outputs": list(OUTPUT_NAMES),
        "time_multiple": time_multiple(model),
        "min_steps": min_steps(model),
        "max_steps": max_steps(model),
        "n_levels": model.n_levels,
        "strides": list(model.strides),
        "visual_dim": model.visual_dim if model.uses_visual else None,
        "audio_dim": model.audio_dim if model.uses_audio else None,
        "feature_fps": data.fps,
        "feature_stride": data.stride,
        "feature_window": data.window,
        "resize_length": data.resize_length,
        "extractors": [e.name for e in recipe.features.extractors] if recipe.features else [],
    }
    return {key: json.dumps(value) for key, value in values.items()}


def read_metadata(entries: dict[str, str], source: str) -> ExportInfo:
    """Parse the metadata of the exported file `source`; `WeightsError` if it is not del's."""
    from delcli.recipe import load_recipe

    found = entries.get("format")
    if found is None:
        raise WeightsError(f"{source}: no del metadata (not written by del export)")
    try:
        values = {key: json.loads(value) for key, value in entries.items()}
    except json.JSONDecodeError as error:
        raise WeightsError(f"{source}: unreadable del metadata ({error.msg})") from None
    except RecursionError:
        raise WeightsError(f"{source}: unreadable del metadata (nested too deeply)") from None
    if values["format"] != FORMAT:
        raise WeightsError(
            f"{source}: export format {values['format']!r} is not readable (expected {FORMAT})"
        )
    missing = [
        key
        for key in ("recipe", "classes", "inputs", "outputs", "time_multiple", "max_steps")
        if key not in values
    ]
    if missing:
        raise WeightsError(f"{source}: the del metadata lacks {', '.join(missing)}")
    try:
        recipe = load_recipe(values["recipe"])
    except ConfigError as error:
        raise WeightsError(f"{source}: the stored recipe does not load: {error}") from None
    multiple = int(values["time_multiple"])
    return ExportInfo(
        recipe=recipe,
        classes=list(values["classes"]),
        inputs=list(values["inputs"]),
        outputs=list(values["outputs"]),
        time_multiple=multiple,
        min_steps=int(values.get("min_steps", multiple)),
        max_steps=int(values["max_steps"]),
    )
