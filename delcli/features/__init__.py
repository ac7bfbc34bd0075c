"""Feature extractors: decoded video and audio in, (T, D) streams on one grid out.

`EXTRACTORS` maps an extractor's name to its class. Each class lives in its own
module, imported the first time its name is looked up, so importing this
package costs nothing (no torch, no av) and a broken or missing optional module
only affects its own extractor.

    from delcli.features import GRID_PRESETS, get_extractor
    extractor = get_extractor("basic", GRID_PRESETS["basic"])
    streams = extractor.extract("clip.mp4", probe("clip.mp4"))
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from delcli.errors import ConfigError
from delcli.features.base import Extractor, FeatureGrid, StreamOutput

__all__ = [
    "EXTRACTORS",
    "GRID_PRESETS",
    "Extractor",
    "FeatureGrid",
    "StreamOutput",
    "get_extractor",
]

GRID_PRESETS: dict[str, FeatureGrid] = {
    # UnAV-100's released I3D + VGGish features: 0.96 s windows every 0.32 s.
    "unav100": FeatureGrid(25, 8, 24),
    # ActionFormer's THUMOS14 I3D features: 16-frame clips every 4 frames at 30 fps.
    "thumos14": FeatureGrid(30, 4, 16),
    # EPIC-Kitchens-100 SlowFast features: 32-frame clips every 16 frames at 30 fps.
    "epic100": FeatureGrid(30, 16, 32),
    # The weight-free extractor: UnAV-100's 0.32 s step (so recipes and
    # post-processing behave as on the benchmark) with a 0.64 s window, half
    # overlapping, so a 1 s event still fills whole windows; 12.5 fps is plenty
    # for colour, edge and motion statistics and halves the per-frame work.
    "basic": FeatureGrid(12.5, 4, 8),
}

# name → module; the module holds exactly one Extractor subclass with that `name`.
_MODULES = {
    "basic": "delcli.features.basic",
    "vggish": "delcli.features.vggish",
    "i3d": "delcli.features.i3d",
    "dinov2": "delcli.features.dinov2",  # needs the optional transformers (hub-features)
    "mert": "delcli.features.mert",  # needs the optional transformers (hub-features)
}


class _LazyRegistry(Mapping[str, type[Extractor]]):
    """A read-only name → class mapping that imports each module on first use."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules
        self._classes: dict[str, type[Extractor]] = {}

    def __getitem__(self, name: str) -> type[Extractor]:
        if name not in self._classes:
            module_name = self._modules[name]  # KeyError for an unknown name, as a dict
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise ConfigError(
                    f"extractor '{name}' is not available: {module_name} failed to import ({error})"
                ) from error
            self._classes[name] = _find_extractor_class(module, name)
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def __repr__(self) -> str:
        return f"EXTRACTORS({', '.join(self._modules)})"


def _find_extractor_class(module: Any, name: str) -> type[Extractor]:
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Extractor)
            and value is not Extractor
            and getattr(value, "name", None) == name
        ):
            return value
    raise ConfigError(f"extractor '{name}': {module.__name__} defines no Extractor named '{name}'")


EXTRACTORS: Mapping[str, type[Extractor]] = _LazyRegistry(_MODULES)


def get_extractor(name: str, grid: FeatureGrid, **kwargs: Any) -> Extractor:
    """An extractor by registry name; `kwargs` are `weights=`, `device=` and its options."""
    if name not in EXTRACTORS:
        raise ConfigError(f"unknown extractor '{name}' (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](grid, **kwargs)
