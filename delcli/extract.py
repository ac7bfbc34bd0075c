"""`del extract` as a library: feature extractors run over many videos into one folder.

Layouts (`naming`), each array (T, dim) float32 `.npy`:
- "unav": `OUT/{video}_{output}.npy`, one file per output (UnAV-100: `<vid>_rgb.npy`);
- "actionformer": `OUT/{output}/{video}.npy`, one folder per output;
- "recipe": where the recipe's streams read them (`data.visual` / `data.audio`: folder
  + pattern; a single-file stream gets its outputs concatenated, e.g. THUMOS14's
  `i3d_features/{video}.npy` = rgb ‖ flow), so `del train RECIPE --features OUT` reads
  OUT as it is. Streams whose outputs this run does not make are left alone.
A video's id is its file name without the extension.

Nothing half-written survives: every array goes to a hidden temporary file in its
folder (`.NAME.PID.tmp`) and is renamed into place. A video is *finished* when its
marker `OUT/.del-extract/videos/{video}.json` lists every file of this run and those
files exist; the marker is written (atomically) after the arrays, so a rerun skips
finished videos and redoes the rest. Markers left without a features.json are
dropped (nothing says which settings made them).

`OUT/features.json` describes the folder: extractors (names, versions, options,
weights specs), the grid (fps, stride, window and, in seconds, step i of a video at
`offset_seconds + i·step_seconds`), outputs (dims, modality), the files and naming,
and every finished video's length and duration. It is written only under an
exclusive lock (`OUT/.del-extract/lock`, flock): each process records its settings
when it starts (refusing settings that contradict the folder's) and, when it ends or
is interrupted, rebuilds the video list from all markers. Markers are the per-video
truth, so the process that finishes last (shard, torchrun rank) writes the whole
list, and a rerun repairs a list cut short by a kill. Without flock (Windows) the
list may miss the videos of a process that finished at the same instant until the
next run.

A folder keeps one grid and naming; another extractor with new outputs may be added
to it later, but the same output from other settings (version, options, weights) is
refused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from delcli.errors import ConfigError, DataError
from delcli.features import FeatureGrid, get_extractor
from delcli.features.base import Extractor, StreamOutput
from delcli.features.pipeline import extract_video, output_streams, stream_files, used_streams

if TYPE_CHECKING:
    from delcli.recipe import Recipe

NAMINGS = ("unav", "actionformer", "recipe")
METADATA = "features.json"
STATE = ".del-extract"
FORMAT = "del-features/1"
LAYOUTS = {
    "unav": "one file per output: {video}_{output}.npy (UnAV-100 naming)",
    "actionformer": "one folder per output: {output}/{video}.npy (ActionFormer naming)",
    "recipe": "the files the recipe's streams read; a file of several outputs holds them "
    "concatenated on channels, in the order listed",
}
_SECRET_WORDS = ("token", "secret", "password", "credential")


@dataclass(frozen=True)
class OutputFile:
    """One array file per video: `pattern` (relative to OUT, with {video}) holds `outputs`."""

    pattern: str
    outputs: tuple[str, ...]
    modality: str
    dim: int

    def path(self, out: Path, video: str) -> Path:
        return out / self.pattern.replace("{video}", video)


@dataclass
class VideoResult:
    video: str
    path: str
    status: Literal["done", "skipped", "failed"]
    length: int | None = None  # grid steps
    duration: float | None = None  # seconds
    reason: str | None = None  # why it failed
    seconds: float = 0.0  # wall time spent on it


@dataclass(frozen=True)
class ExtractEvent:
    """`planned` once (this shard's videos, how many already finished), then one `video`
    per video extracted or failed."""

    kind: Literal["planned", "video"]
    total: int = 0
    skipped: int = 0
    result: VideoResult | None = None


@dataclass
class ExtractReport:
    out: Path
    shard: tuple[int, int]
    given: int  # videos given, all shards
    files: list[OutputFile]
    streams: list[StreamOutput]
    done: list[VideoResult] = field(default_factory=list)
    skipped: list[VideoResult] = field(default_factory=list)
    failed: list[VideoResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def video_seconds(self) -> float:
        return sum(r.duration or 0.0 for r in self.done)

    @property
    def speed(self) -> float:
        """Video seconds extracted per wall-clock second."""
        return self.video_seconds / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "shard": list(self.shard),
            "videos": {
                "given": self.given,
                "this_shard": len(self.done) + len(self.skipped) + len(self.failed),
                "done": len(self.done),
                "skipped": len(self.skipped),
                "failed": len(self.failed),
            },
            "failures": [
                {"video": r.video, "path": r.path, "reason": r.reason} for r in self.failed
            ],
            "outputs": [
                {"name": s.name, "modality": s.modality, "dim": s.dim} for s in self.streams
            ],
            "files": [f.pattern for f in self.files],
            "seconds": round(self.seconds, 3),
            "video_seconds": round(self.video_seconds, 3),
            "video_seconds_per_second": round(self.speed, 3),
            "metadata": str(self.out / METADATA),
        }


# -- the plan -----------------------------------------------------------------------------------


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


def resolve_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """`shard`, or under torchrun (RANK, WORLD_SIZE), else (0, 1)."""
    if shard is None:
        from delcli.device import launched_by_torchrun

        if not launched_by_torchrun():
            return (0, 1)
        shard = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard {index}/{count}: need 0 <= i < n (e.g. 0/2 and 1/2)")
    return index, count


# -- the folder's metadata ----------------------------------------------------------------------


def grid_record(grid: FeatureGrid) -> dict[str, float]:
    time_grid = grid.time_grid()
    return {
        "fps": grid.fps,
        "stride": grid.stride,
        "window": grid.window,
        "step_seconds": time_grid.step_seconds,
        "offset_seconds": time_grid.offset_seconds,
        "window_seconds": grid.window_seconds,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): _jsonable(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return getattr(value, "name", None) or type(value).__name__


def extractor_record(extractor: Extractor) -> dict[str, Any]:
    return {
        "name": extractor.name,
        "version": extractor.version,
        "options": _jsonable(dict(extractor.options)),
        "weights": _jsonable(extractor.weights),
        "outputs": [output.name for output in extractor.outputs],
    }


def folder_settings(
    extractors: Sequence[Extractor],
    grid: FeatureGrid,
    naming: str,
    files: Sequence[OutputFile],
    recipe: str | None,
) -> dict[str, Any]:
    """What `features.json` says about the folder, apart from its videos."""
    return {
        "format": FORMAT,
        "grid": grid_record(grid),
        "naming": naming,
        "layout": LAYOUTS[naming],
        "recipe": recipe,
        "extractors": [extractor_record(e) for e in extractors],
        "outputs": {
            o.name: {"modality": o.modality, "dim": o.dim, "extractor": e.name}
            for e in extractors
            for o in e.outputs
        },
        "files": [
            {"pattern": f.pattern, "outputs": list(f.outputs), "modality": f.modality, "dim": f.dim}
            for f in files
        ],
    }


def combine_settings(old: dict[str, Any], new: dict[str, Any], out: Path) -> dict[str, Any]:
    """The folder's settings with this run's added; `ConfigError` where they contradict."""
    where = out / METADATA
    if old.get("format") != FORMAT:
        raise ConfigError(f"{where}: not written by 'del extract' ({FORMAT}); choose another --out")
    grid_keys = ("fps", "stride", "window")
    old_grid = tuple(old.get("grid", {}).get(k) for k in grid_keys)
    new_grid = tuple(new["grid"][k] for k in grid_keys)
    if old_grid != new_grid:
        raise ConfigError(
            f"{out} holds features on grid {':'.join(f'{v:g}' for v in old_grid)} "
            f"(fps:stride:window); this run's is {':'.join(f'{v:g}' for v in new_grid)}; "
            "one folder holds one grid: choose another --out"
        )
    if old.get("naming") != new["naming"]:
        raise ConfigError(
            f"{out} uses --naming {old.get('naming')}; this run asks for {new['naming']}"
        )
    combined = dict(old)
    extractors = {e["name"]: e for e in old.get("extractors", [])}
    for record in new["extractors"]:
        before = extractors.get(record["name"])
        if before is not None and before != record:
            changed = [
                k
                for k in ("version", "options", "weights", "outputs")
                if before.get(k) != record[k]
            ]
            raise ConfigError(
                f"{out} holds '{record['name']}' features made with other settings "
                f"({', '.join(f'{k} {before.get(k)!r} → {record[k]!r}' for k in changed)}); "
                "choose another --out, or delete the folder to remake them"
            )
        extractors[record["name"]] = record
    outputs = dict(old.get("outputs", {}))
    for name, record in new["outputs"].items():
        if name in outputs and outputs[name]["extractor"] != record["extractor"]:
            raise ConfigError(
                f"{out}: output '{name}' was made by '{outputs[name]['extractor']}', "
                f"this run makes it with '{record['extractor']}'"
            )
        outputs[name] = record
    files = {f["pattern"]: f for f in old.get("files", [])}
    for record in new["files"]:
        if record["pattern"] in files and files[record["pattern"]] != record:
            raise ConfigError(
                f"{out}: {record['pattern']} holds {files[record['pattern']]['outputs']}, "
                f"this run would write {record['outputs']} there"
            )
        files[record["pattern"]] = record
    combined.update(
        extractors=list(extractors.values()),
        outputs=outputs,
        files=list(files.values()),
        recipe=new["recipe"] or old.get("recipe"),
    )
    return combined


def read_metadata(out: Path) -> dict[str, Any] | None:
    """`OUT/features.json`, or None when there is none."""
    path = out / METADATA
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a features.json written by 'del extract'")
    return data


@contextmanager
def folder_lock(out: Path):
    """An exclusive lock on the folder's metadata across processes (no-op without flock)."""
    state = out / STATE
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: see the module docstring
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Record this run's settings in features.json (checked against what is there)."""
    with folder_lock(out):
        old = read_metadata(out)
        if old is None:
            # Markers without a features.json cannot be trusted to match these settings.
            shutil.rmtree(out / STATE / "videos", ignore_errors=True)
            combined = {**settings, "videos": {}}
        else:
            combined = combine_settings(old, settings, out)
        write_json_atomic(out / METADATA, combined)


def merge_videos(out: Path) -> dict[str, Any]:
    """Rebuild features.json's `videos` from every marker; returns the metadata written."""
    with folder_lock(out):
        metadata = read_metadata(out) or {}
        videos = {}
        for marker in sorted((out / STATE / "videos").glob("*.json")):
            record = read_marker(marker)
            if record is not None:
                videos[marker.name.removesuffix(".json")] = {
                    "length": record["length"],
                    "duration": record["duration"],
                    "outputs": record["outputs"],
                }
        metadata["videos"] = videos
        write_json_atomic(out / METADATA, metadata)
        return metadata


# -- files ------------------------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a hidden temporary file in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_array(path: Path, array: np.ndarray) -> None:
    """`.npy`, or `.npz` with the array under `feats` (what ActionFormer's loaders read)."""
    if path.suffix == ".npz":
        write_atomic(path, lambda handle: np.savez(handle, feats=array))
    else:
        write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))


def write_json_atomic(path: Path, data: Any) -> None:
    text = (json.dumps(data, indent=1) + "\n").encode("utf-8")
    write_atomic(path, lambda handle: handle.write(text))


def marker_path(out: Path, video: str) -> Path:
    return out / STATE / "videos" / f"{video}.json"


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("files", "outputs", "length", "duration")
    if not isinstance(record, dict) or not all(k in record for k in keys):
        return None
    return record if isinstance(record["files"], dict) else None


def is_finished(out: Path, video: str, files: Sequence[OutputFile]) -> bool:
    record = read_marker(marker_path(out, video))
    if record is None or not {f.pattern for f in files} <= set(record["files"]):
        return False
    return all(f.path(out, video).exists() for f in files)


# -- one video --------------------------------------------------------------------------------


def process_video(
    video: str, path: Path, extractors: Sequence[Extractor], files: Sequence[OutputFile], out: Path
) -> VideoResult:
    """Extract one video, write its files and its marker; failures are returned, not raised."""
    start = time.perf_counter()
    try:
        from delcli.io import probe

        info = probe(path)
        outputs = extract_video(path, extractors, info)
        for file in files:
            parts = [outputs[name] for name in file.outputs]
            save_array(
                file.path(out, video), parts[0] if len(parts) == 1 else np.concatenate(parts, 1)
            )
        length = next(iter(outputs.values())).shape[0]
        write_marker(out, video, files, length, float(info.duration))
    except DataError as error:
        return _failed(video, path, str(error), start)
    except Exception as error:  # a bug or a resource failure on this video: the rest go on
        return _failed(video, path, f"internal error: {type(error).__name__}: {error}", start)
    seconds = time.perf_counter() - start
    return VideoResult(video, str(path), "done", length, float(info.duration), seconds=seconds)


def _failed(video: str, path: Path, reason: str, start: float) -> VideoResult:
    reason = " ".join(reason.split())  # one line
    return VideoResult(
        video, str(path), "failed", reason=reason, seconds=time.perf_counter() - start
    )


def write_marker(
    out: Path, video: str, files: Sequence[OutputFile], length: int, duration: float
) -> None:
    """The video's marker: this run's files plus earlier runs' that are still there."""
    marker = marker_path(out, video)
    before = read_marker(marker)
    kept = {
        pattern: outputs
        for pattern, outputs in (before["files"].items() if before else ())
        if (out / pattern.replace("{video}", video)).exists()
    }
    kept.update({f.pattern: list(f.outputs) for f in files})
    names = list(dict.fromkeys(name for outputs in kept.values() for name in outputs))
    record = {"files": kept, "outputs": names, "length": length, "duration": duration}
    write_json_atomic(marker, record)


# -- worker processes -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _start_worker(specs: list, grid: FeatureGrid, device: str, files: list, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["extractors"] = [
        get_extractor(name, grid, weights=weights, device=device, **options)
        for name, weights, options in specs
    ]
    _WORKER["files"], _WORKER["out"] = files, out


def _work(video: str, path: Path) -> VideoResult:
    return process_video(video, path, _WORKER["extractors"], _WORKER["files"], _WORKER["out"])


def _run_pool(jobs, extractors, files, out, workers, record) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    specs = [(e.name, e.weights, dict(e.options)) for e in extractors]
    device = str(extractors[0].device)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(specs, extractors[0].grid, device, list(files), out),
    )
    futures = {pool.submit(_work, video, path): (video, path) for video, path in jobs}
    reported = set()
    try:
        for future in as_completed(futures):
            video, path = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                break
            reported.add(video)
            record(result)
        for video, path in futures.values():  # left over after a worker died
            if video not in reported:
                reason = "a worker process died (a crash in a decoder, or out of memory?); rerun"
                record(VideoResult(video, str(path), "failed", reason=reason))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- the folder -------------------------------------------------------------------------------


def extract_folder(
    videos: Sequence[str | Path],
    out: str | Path,
    extractors: Sequence[Extractor],
    grid: FeatureGrid | None = None,
    naming: str = "unav",
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    skip_existing: bool = True,
    on_event: Callable[[ExtractEvent], None] | None = None,
    recipe: Recipe | None = None,
) -> ExtractReport:
    """Extract this shard's videos into `out` (see the module docstring).

    `shard` (i, n) takes `sorted(ids)[i::n]`; None: (RANK, WORLD_SIZE) under
    torchrun, else all. `workers` > 1 decodes and extracts in that many spawned
    processes, each building its own extractors with one torch thread (spawned
    processes import the main module: a script calling this needs the
    `if __name__ == "__main__":` guard). Videos that fail (`MediaError`,
    `DataError`, …) are listed in the report; the others are done.
    """
    out = Path(out)
    if not extractors:
        raise ConfigError("no extractors to run")
    grid = grid or extractors[0].grid
    if any(e.grid != grid for e in extractors):
        raise ConfigError("every extractor must run on the grid of the folder")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1")
    index, count = resolve_shard(shard)
    if naming not in NAMINGS:
        raise ConfigError(f"naming '{naming}': allowed: {', '.join(NAMINGS)}")
    ids = video_ids(videos)
    mine = sorted(ids)[index::count]
    streams = output_streams(extractors)
    files = output_files(naming, streams, recipe)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    claim_folder(out, folder_settings(extractors, grid, naming, files, recipe and recipe.name))

    report = ExtractReport(out, (index, count), len(ids), list(files), streams)
    jobs = []
    for video in mine:
        if skip_existing and is_finished(out, video, files):
            report.skipped.append(VideoResult(video, str(ids[video]), "skipped"))
        else:
            jobs.append((video, ids[video]))
    if on_event:
        on_event(ExtractEvent("planned", total=len(mine), skipped=len(report.skipped)))

    def record(result: VideoResult) -> None:
        (report.done if result.status == "done" else report.failed).append(result)
        if on_event:
            on_event(ExtractEvent("video", result=result))

    start = time.perf_counter()
    try:
        if workers == 1 or len(jobs) <= 1:
            for video, path in jobs:
                record(process_video(video, path, extractors, files, out))
        else:
            _run_pool(jobs, extractors, files, out, min(workers, len(jobs)), record)
    finally:
        report.seconds = time.perf_counter() - start
        merge_videos(out)
    report.failed.sort(key=lambda r: r.video)
    return report
