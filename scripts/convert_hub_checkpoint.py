"""Convert a Hub model folder's pickled `pytorch_model.bin` to the `model.safetensors` del reads.

    python scripts/convert_hub_checkpoint.py MERT-v1-95M/pytorch_model.bin -o MERT-v1-95M
    python scripts/convert_hub_checkpoint.py dl/pytorch_model.bin -o mert --check mert

For the `dinov2` and `mert` extractors when a repo revision publishes only a
pickle: download it yourself (e.g. `hf download m-a-p/MERT-v1-95M
pytorch_model.bin config.json --local-dir dl`), convert it here, then pass the
folder (`--weights mert=mert`). The pickle is read with
`torch.load(weights_only=True)`: tensors only, never arbitrary objects. The
output folder gets `model.safetensors` (written atomically; the source's sha256
in its metadata) and, when it is another folder, a copy of `config.json`.
`--check NAME` then builds that extractor from the output, which fails unless
every tensor of the network is there with its shape.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from delcli.errors import DelError
from delcli.files import atomic_path
from delcli.hub.download import sha256_of

CONVERTER_VERSION = "1"


def convert(source: Path, out: Path) -> Path:
    """Write `out/model.safetensors` from the pickled state dict `source`; returns its path."""
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DelError(f"{source}: not a state dict (a mapping of names to tensors)")
    # clone(): safetensors refuses tensors that share storage (tied weights).
    tensors = {name: value.detach().contiguous().clone() for name, value in state.items()}
    metadata = {
        "format": "pt",
        "source": source.name,
        "source_sha256": sha256_of(source),
        "converter": f"del scripts/convert_hub_checkpoint.py v{CONVERTER_VERSION}",
    }
    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.safetensors"
    with atomic_path(target) as temporary:
        save_file(tensors, temporary, metadata=metadata)
    config = source.parent / "config.json"
    if config.exists() and config.resolve() != (out / "config.json").resolve():
        shutil.copyfile(config, out / "config.json")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the pickled pytorch_model.bin")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the output folder")
    parser.add_argument("--check", choices=("dinov2", "mert"), help="build this extractor from it")
    args = parser.parse_args(argv)
    try:
        target = convert(args.source, args.out)
        if args.check:
            from delcli.features import GRID_PRESETS, get_extractor

            get_extractor(args.check, GRID_PRESETS["unav100"], weights=str(args.out))
    except (DelError, OSError, RuntimeError, ValueError) as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    checked = f"; the {args.check} extractor loads it" if args.check else ""
    print(f"wrote {target}{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
