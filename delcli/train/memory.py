"""Memory of a training process: its peaks, and giving back what the allocator keeps."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import sys

import torch


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak memory of this process so far, MiB: resident set (`peak_rss_mib`) and, on
    CUDA, the allocator's peak (`peak_cuda_mib`)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peaks = {"peak_rss_mib": round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)}
    if device.type == "cuda":
        peaks["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peaks


def release_freed_memory() -> bool:
    """Hand the memory of freed tensors back to the system (glibc's `malloc_trim`).

    glibc keeps freed heap memory for reuse; after the training steps of an epoch that
    is hundreds of MiB that validation's differently shaped tensors do not reuse, so the
    process's peak came from validation stacked on it. Called between training and
    validation, it takes milliseconds. Returns False where there is no glibc.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
