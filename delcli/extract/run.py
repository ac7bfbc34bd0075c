"""`extract_folder`: this shard's videos through the extractors, in one process or several.

Each video is probed, extracted, written and marked finished on its own
(see `markers`); a video that fails is reported and the others go on. The
folder's settings are claimed before the first video and its video list is
rebuilt at the end, even after an interruption (see `metadata`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from delcli.errors import ConfigError, DataError
from delcli.extract.layout import NAMINGS, OutputFile, output_files, video_ids
from delcli.extract.markers import is_finished, save_array, write_marker
from delcli.extract.metadata import claim_folder, folder_settings, merge_videos
from delcli.extract.report import ExtractEvent, ExtractReport, VideoResult
from delcli.features import FeatureGrid, get_extractor
from delcli.features.base import Extractor
from delcli.features.pipeline import extract_video, missing_streams, output_streams

if TYPE_CHECKING:
    from delcli.recipe import Recipe


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
        missing = missing_streams(info, extractors)
        for file in files:
            parts = [outputs[name] for name in file.outputs]
            save_array(
                file.path(out, video), parts[0] if len(parts) == 1 else np.concatenate(parts, 1)
            )
        length = next(iter(outputs.values())).shape[0]
        write_marker(out, video, files, length, float(info.duration), missing)
    except DataError as error:
        return _failed(video, path, str(error), start)
    except Exception as error:  # a bug or a resource failure on this video: the rest go on
        return _failed(video, path, f"internal error: {type(error).__name__}: {error}", start)
    seconds = time.perf_counter() - start
    return VideoResult(
        video, str(path), "done", length, float(info.duration), seconds=seconds, missing=missing
    )


def _failed(video: str, path: Path, reason: str, start: float) -> VideoResult:
    reason = " ".join(reason.split())  # one line
    return VideoResult(
        video, str(path), "failed", reason=reason, seconds=time.perf_counter() - start
    )


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
    """Extract this shard's videos into `out` (see `delcli.extract`).

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
