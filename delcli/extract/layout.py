"""Where `del extract` puts things in its folder OUT.

Layouts (`naming`), each array (T, dim) float32 `.npy`:
- "unav": `OUT/{video}_{output}.npy`, one file per output (UnAV-100: `<vid>_rgb.npy`);
- "actionformer": `OUT/{output}/{video}.npy`, one folder per output;
- "recipe": where the recipe's streams read them (`data.visual` / `data.audio`: folder
  + pattern; a single-file stream gets its outputs concatenated, e.g. THUMOS14's
  `i3d_features/{video}.npy` = rgb ‖ flow), so `del train RECIPE --features OUT` reads
  OUT as it is. Streams whose outputs this run does not make are left alone.
A video's id is its file name without the extension; `gather_videos` reads which videos
a command is given (`del extract`, `del predict`, `del train --list`).

Beside the arrays: `OUT/features.json` (see `metadata`) and the hidden state folder
`OUT/.del-extract/` (the lock and one marker per finished video, see `markers`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from delcli.errors import ConfigError
from delcli.features.base import StreamOutput
from delcli.features.pipeline import stream_files, used_streams

if TYPE_CHECKING:
    from delcli.recipe import Recipe

NAMINGS = ("unav", "actionformer", "recipe")
METADATA = "features.json"
STATE = ".del-extract"
LAYOUTS = {
    "unav": "one file per output: {video}_{output}.npy (UnAV-100 naming)",
    "actionformer": "one folder per output: {output}/{video}.npy (ActionFormer naming)",
    "recipe": "the files the recipe's streams read; a file of several outputs holds them "
    "concatenated on channels, in the order listed",
}


@dataclass(frozen=True)
class OutputFile:
    """One array file per video: `pattern` (relative to OUT, with {video}) holds `outputs`."""

    pattern: str
    outputs: tuple[str, ...]
    modality: str
    dim: int

    def path(self, out: Path, video: str) -> Path:
        return out / self.pattern.replace("{video}", video)


def output_files(
    naming: str, streams: Sequence[StreamOutput], recipe: Recipe | None = None
) -> list[OutputFile]:
    """The files every video gets under `naming` (see the module docstring)."""
    if naming == "unav":
        return [
            OutputFile(f"{{video}}_{s.name}.npy", (s.name,), s.modality, s.dim) for s in streams
        ]
    if naming == "actionformer":
        return [
            OutputFile(f"{s.name}/{{video}}.npy", (s.name,), s.modality, s.dim) for s in streams
        ]
    if naming != "recipe":
        raise ConfigError(f"naming '{naming}': allowed: {', '.join(NAMINGS)}")
    if recipe is None:
        raise ConfigError("naming 'recipe' needs a recipe (--recipe NAME)")
    dims = {s.name: s.dim for s in streams}
    kinds = {s.name: s.modality for s in streams}
    files = []
    for modality, spec in used_streams(recipe).items():
        written = 0
        for file in stream_files(spec, modality, kinds):
            parts = PurePosixPath(file.pattern).parts
            if PurePosixPath(file.pattern).is_absolute() or ".." in parts:
                raise ConfigError(
                    f"data.{modality}: '{file.pattern}' is outside the feature folder; "
                    "use --naming unav or actionformer"
                )
            if file.outputs and all(name in dims for name in file.outputs):
                if PurePosixPath(file.pattern).suffix not in (".npy", ".npz"):
                    raise ConfigError(
                        f"data.{modality}: '{file.pattern}': del extract writes .npy or .npz; "
                        "use --naming unav or actionformer"
                    )
                dim = sum(dims[name] for name in file.outputs)
                files.append(OutputFile(file.pattern, file.outputs, modality, dim))
                written += 1
        expected = getattr(recipe.model, f"{modality}_dim")
        made = sum(f.dim for f in files if f.modality == modality)
        if written == len(spec.files) and made != expected:
            raise ConfigError(
                f"recipe '{recipe.name}' reads {expected} {modality} channels "
                f"(model.{modality}_dim) but these outputs give {made}"
            )
    if not files:
        made = ", ".join(s.name for s in streams)
        raise ConfigError(
            f"none of recipe '{recipe.name}''s feature files can be made from this run's outputs "
            f"({made})"
        )
    return files


def video_ids(videos: Sequence[str | Path]) -> dict[str, Path]:
    """Video id (file name without extension) → path; the same file twice counts once."""
    if not videos:
        raise ConfigError("no videos given")
    found: dict[str, list[Path]] = {}
    for video in videos:
        path = Path(video)
        same = [p for p in found.get(path.stem, []) if os.path.abspath(p) == os.path.abspath(path)]
        if not same:
            found.setdefault(path.stem, []).append(path)
    if "" in found:
        raise ConfigError(f"'{found[''][0]}' has no file name to take a video id from")
    clashes = {video: paths for video, paths in found.items() if len(paths) > 1}
    if clashes:
        listed = "; ".join(
            f"'{video}': {', '.join(map(str, paths))}" for video, paths in sorted(clashes.items())
        )
        raise ConfigError(
            f"{len(clashes)} video id(s) name several files (an id is the file name without "
            f"its extension): {listed}"
        )
    return {video: paths[0] for video, paths in found.items()}


def gather_videos(arguments: Sequence[str], list_file: Path | None) -> list[Path]:
    """The videos a command is given, sorted, each file once: the paths in `arguments`
    (`-`: paths on standard input, one a line) and the lines of `list_file` (`-`:
    standard input); blank lines and `#` comments are skipped.

    Sorted and de-duplicated by resolved path (two spellings of one file count once), so
    what a run does does not depend on how the shell or `find` listed the files; two files
    with one video id are refused (`video_ids`), as every output is keyed by the id. The
    paths are not checked: a missing one fails later, reported like an unreadable video.
    """
    listed = [argument for argument in arguments if argument != "-"]
    if "-" in arguments or str(list_file) == "-":
        listed += _lines(sys.stdin.read())
    if list_file is not None and str(list_file) != "-":
        try:
            listed += _lines(list_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--list {list_file}: cannot read it ({error})") from None
    if not listed:
        raise ConfigError(
            "no videos given: name video files, '-' to read paths from stdin, or --list FILE"
        )
    unique: dict[Path, Path] = {}
    for text in listed:
        path = Path(text).expanduser()
        unique.setdefault(path.resolve(), path)
    paths = sorted(unique.values())
    video_ids(paths)
    return paths


def _lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
