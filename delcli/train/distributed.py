"""DDP under `torchrun`: process group, data sharding, merging per-video results.

Single process is the default and needs none of this: every function here is
a no-op (or the identity) when the run is not distributed. Under `torchrun`
(RANK, WORLD_SIZE, LOCAL_RANK in the environment, WORLD_SIZE > 1) the
process group uses NCCL on CUDA and gloo on the CPU.

Batch size: `train.batch_size` is the *global* batch (all processes
together), split evenly across processes, so one recipe trains the same way
on any number of devices (as ActionFormer/OpenTAD configs are read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from delcli.device import launched_by_torchrun, resolve_device
from delcli.errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where this process sits: its rank among `world_size` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> Context:
    """This process's context; joins the process group when launched by torchrun."""
    if not launched_by_torchrun():
        return Context(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Context(rank=rank, world_size=world, local_rank=local_rank, device=resolved)


def teardown(context: Context) -> None:
    """Wait for every process, then leave the process group.

    Under gloo a process can still abort in its exit handlers after this
    (`terminate called without an active exception`, ~5% of launches); the
    CLI therefore ends distributed workers with `os._exit` after flushing.
    """
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, context: Context) -> nn.Module:
    """DDP around `module` when distributed.

    Every DEL parameter takes part in every loss (checked for all modality and
    ablation switches, with and without events in the batch), so
    `find_unused_parameters` stays off.
    """
    if not context.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def per_process_batch(batch_size: int, context: Context) -> int:
    if batch_size % context.world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} (the global batch) must be divisible by the "
            f"number of processes ({context.world_size})"
        )
    return batch_size // context.world_size


def train_batches(permutation: list[int], batch_size: int, context: Context) -> list[list[int]]:
    """This process's batches of one epoch.

    Global batch k is `permutation[k·B : (k+1)·B]` (the last incomplete one is
    dropped, as ActionFormer does; a dataset smaller than B is one batch);
    process r takes every world_size-th item of it from position r. All
    processes together see exactly the single-process batches.
    """
    per_process_batch(batch_size, context)
    size = len(permutation)
    if size < context.world_size:
        raise ConfigError(
            f"the training split has {size} videos, fewer than the {context.world_size} processes"
        )
    step = min(batch_size, size)
    batches = [permutation[start : start + step] for start in range(0, size - step + 1, step)]
    return [batch[context.rank :: context.world_size] for batch in batches]


def steps_per_epoch(size: int, batch_size: int) -> int:
    return max(1, size // batch_size)


def eval_indices(size: int, context: Context) -> list[int]:
    """This process's share of `range(size)`: round-robin, no padding duplicates."""
    return list(range(size))[context.rank :: context.world_size]


def gather_results(results: dict[str, list], context: Context) -> dict[str, list]:
    """Merge per-video results of every process into one dict (each video exactly once)."""
    if not context.distributed:
        return dict(results)
    parts: list[Any] = [None] * context.world_size
    dist.all_gather_object(parts, results)
    merged: dict[str, list] = {}
    for part in parts:
        for video_id, detections in part.items():
            if video_id in merged:
                raise RuntimeError(f"video {video_id} was predicted by two processes")
            merged[video_id] = detections
    return merged


def mean_across(values: dict[str, float], context: Context) -> dict[str, float]:
    """The mean of each value over all processes (identity when single-process)."""
    if not context.distributed or not values:
        return dict(values)
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    tensor /= context.world_size
    return dict(zip(names, tensor.tolist(), strict=True))


def sum_across(value: float, context: Context) -> float:
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def broadcast(value: Any, context: Context) -> Any:
    """Rank 0's `value` on every process."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
