"""Benchmark the DEL network: parameters per switch, time, peak memory, where time goes.

Each row runs in a fresh subprocess so that its peak memory is its own.
Forward is timed in eval mode under no_grad; forward+backward in train mode
including every loss term of Eq. (14). Shares are of the forward time.

    python scripts/bench_model.py                       # CPU, UnAV B=4 rows + THUMOS B=1 row
    python scripts/bench_model.py --device cuda --dtype bf16 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import time

from fresh_process import run_worker  # scripts/fresh_process.py

GEOMETRY = {  # name: (T, visual dim, audio dim, classes, window)
    "unav100": (224, 2048, 128, 100, 9),
    "thumos14": (2304, 2048, 128, 20, 19),
}
SETTINGS = {
    "full DEL": {},
    "aac off": {"aac": False},
    "scl off": {"scl": False},
    "pan off": {"pan": False},
    "audio only": {"modalities": "a"},
    "visual only": {"modalities": "v"},
    "n_levels 2": {"n_levels": 2},
    "n_levels 4": {"n_levels": 4},
    "activation checkpointing": {},  # full DEL, train.activation_checkpointing on
    "pan at d/2": lambda dim: {"pan_dim": dim // 2},  # a setting may depend on --dim
}
PARTS = {
    "AAC": ("aac",),
    "pyramid": ("pyramid_visual", "pyramid_audio"),
    "PAN": ("pan",),
    "heads": ("cls_head", "reg_head"),
}


def worker(job: dict) -> dict:
    import resource

    import torch

    from delcli.model.config import ModelConfig
    from delcli.model.del_model import DELModel

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    device = torch.device(job["device"])
    length, visual_dim, audio_dim, classes, window = GEOMETRY[job["geometry"]]
    settings = SETTINGS[job["setting"]]
    settings = settings(job["dim"]) if callable(settings) else settings
    config = ModelConfig(
        visual_dim=visual_dim,
        audio_dim=audio_dim,
        num_classes=classes,
        max_seq_len=length,
        window_size=window,
        embed_dim=job["dim"],
        head_dim=job["dim"],
        **settings,
    )
    model = DELModel(config).to(device)
    model.activation_checkpointing = job["setting"] == "activation checkpointing"
    batch = job["batch"]
    visual = torch.randn(batch, length, visual_dim, device=device)
    audio = torch.randn(batch, length, audio_dim, device=device)
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    generator = torch.Generator().manual_seed(1)
    starts = torch.randint(0, length - 64, (batch, 4), generator=generator).float()
    lengths = torch.randint(2, 64, (batch, 4), generator=generator).float()
    segments = [
        torch.stack([s, s + n], dim=1).to(device) for s, n in zip(starts, lengths, strict=True)
    ]
    labels = [torch.randint(0, classes, (4,), generator=generator).to(device) for _ in range(batch)]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=job["dtype"] == "bf16")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    part_time = dict.fromkeys(PARTS, 0.0)
    starts_at: dict[str, float] = {}

    def timed(part: str, module: torch.nn.Module) -> None:
        def before(*_: object) -> None:
            sync()
            starts_at[part] = time.perf_counter()

        def after(*_: object) -> None:
            sync()
            part_time[part] += time.perf_counter() - starts_at[part]

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    for part, names in PARTS.items():
        for name in names:
            if getattr(model, name) is not None:
                timed(part, getattr(model, name))

    inputs = (visual if config.uses_visual else None, audio if config.uses_audio else None, mask)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if job["mode"] == "forward":
        model.eval()
        with torch.no_grad(), autocast:
            model(*inputs)  # warm-up
            sync()
            part_time.update(dict.fromkeys(PARTS, 0.0))
            began = time.perf_counter()
            for _ in range(job["repeats"]):
                model(*inputs)
            sync()
    else:
        model.train()
        for repeat in range(job["repeats"] + 1):
            if repeat == 1:
                sync()
                began = time.perf_counter()
            with autocast:
                terms = model.losses(model(*inputs), segments, labels)
            terms["total"].backward()
            model.zero_grad(set_to_none=True)
        sync()
    seconds = (time.perf_counter() - began) / job["repeats"]
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:  # growth of the process's peak resident set (kB on Linux)
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": seconds,
        "peak_mib": peak_mib,
        "shares": {p: t / job["repeats"] / seconds for p, t in part_time.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=4, help="UnAV-geometry batch size")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated rows")
    parser.add_argument("--no-thumos", action="store_true", help="skip the THUMOS row")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from rich.console import Console
    from rich.table import Table

    rows = [("unav100", s, args.batch) for s in args.settings.split(",")]
    if not args.no_thumos:
        rows.append(("thumos14", "full DEL", 1))
    memory = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS +MiB"
    table = Table(
        title=f"DEL model, d={args.dim}, {args.device} {args.dtype}, {args.threads} thread(s)"
    )
    columns = [
        "geometry",
        "setting",
        "B×T",
        "params M",
        "fwd ms",
        "fwd+bwd ms",
        f"fwd {memory}",
        f"fwd+bwd {memory}",
        *(f"{p} %" for p in PARTS),
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("geometry", "setting") else "right")
    for geometry, setting, batch in rows:
        job = {
            "geometry": geometry,
            "setting": setting,
            "batch": batch,
            "dim": args.dim,
            "device": args.device,
            "dtype": args.dtype,
            "repeats": args.repeats,
            "threads": args.threads,
        }
        forward = run_worker(__file__, {**job, "mode": "forward"}, str(job))
        train = run_worker(__file__, {**job, "mode": "train"}, str(job))
        shares = [f"{100 * forward['shares'][p]:.0f}" for p in PARTS]
        table.add_row(
            geometry,
            setting,
            f"{batch}×{GEOMETRY[geometry][0]}",
            f"{forward['params'] / 1e6:.1f}",
            f"{1e3 * forward['seconds']:.0f}",
            f"{1e3 * train['seconds']:.0f}",
            f"{forward['peak_mib']:.0f}",
            f"{train['peak_mib']:.0f}",
            *shares,
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
