"""Convert torchvggish's PyTorch checkpoints to the safetensors file `del` loads.

    python scripts/convert_vggish.py vggish-10086976.pth vggish_pca_params-970ea276.pth \\
        -o vggish.safetensors

INPUT.pth is the network (torchvggish's `vggish-10086976.pth`, or the state
dict of a whole torchvggish model); PCA.pth, optional, holds `pca_eigen_vectors`
and `pca_means` (torchvggish's `vggish_pca_params-970ea276.pth`) and turns on
PCA whitening + 8-bit quantisation, as in UnAV-100's released features.

Checkpoints are read with `torch.load(weights_only=True)`: tensors only, plus
plain numpy arrays (the PCA file's) through an allow-list of numpy's array
constructors — never arbitrary pickled objects. Every tensor is checked against
`delcli.features.vggish.VGGish` by name, shape and dtype; anything missing,
unexpected or different is listed and nothing is written. The output holds the
network in float32 and the PCA parameters in float64, with the sources' sha256
and this converter's version in its metadata.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from delcli.errors import WeightsError
from delcli.features.vggish import PCA_KEYS, VGGish
from delcli.hub.download import sha256_of

CONVERTER_VERSION = "1"
# Prefixes wrappers add to a torchvggish state dict (DataParallel, a parent module).
STRIP_PREFIXES = ("module.", "vggish.", "model.")
# torchvggish keeps the PCA parameters in a `pproc` submodule.
RENAMES = {f"pproc.{key}": key for key in PCA_KEYS}


def _numpy_array_globals() -> list:
    """What unpickling a plain numeric numpy array needs, and nothing more."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    numeric = (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8)
    return [
        np.ndarray,
        np.dtype,
        _reconstruct,
        (_reconstruct, "numpy.core.multiarray._reconstruct"),  # pickled by numpy 1.x
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        *(type(np.dtype(t)) for t in numeric),
    ]


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name (numpy arrays become tensors), loaded without pickle code."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "numpy" not in str(error):
                raise
            with torch.serialization.safe_globals(_numpy_array_globals()):
                loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(
            f"{path}: not a loadable tensor-only PyTorch checkpoint ({reason})"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    tensors = {}
    for name, value in loaded.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: entry '{name}' is a {type(value).__name__}, not a tensor")
        tensors[str(name)] = value
    return tensors


def map_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvggish names → del's VGGish names (the same, bar wrappers and `pproc.`)."""
    mapped = {}
    for name, tensor in tensors.items():
        for prefix in STRIP_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        name = RENAMES.get(name, name)
        if name == "pca_means":
            tensor = tensor.reshape(-1)  # torchvggish stores (128, 1)
        if name in PCA_KEYS:
            tensor = tensor.to(torch.float64)
        mapped[name] = tensor
    return mapped


def compare(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """One line per tensor: 'ok NAME shape dtype' or what is wrong with it."""
    lines = []
    for name, want in expected.items():
        if name not in found:
            lines.append(f"MISSING    {name} {tuple(want.shape)} {want.dtype}")
            continue
        got = found[name]
        if tuple(got.shape) != tuple(want.shape):
            lines.append(f"SHAPE      {name} {tuple(got.shape)}, expected {tuple(want.shape)}")
        elif got.dtype != want.dtype:
            lines.append(f"DTYPE      {name} {got.dtype}, expected {want.dtype}")
        else:
            lines.append(f"ok         {name} {tuple(got.shape)} {got.dtype}")
    lines += [
        f"UNEXPECTED {name} {tuple(found[name].shape)}" for name in found if name not in expected
    ]
    return lines


def convert(model_path: Path, pca_path: Path | None, output: Path) -> list[str]:
    """Check and write `output`; returns the key-by-key report. `WeightsError` on any mismatch."""
    model_path = Path(model_path)
    tensors = map_keys(load_checkpoint(model_path))
    metadata = {
        "format": "del-extractor-weights-1",
        "extractor": "vggish",
        "converter": f"convert_vggish.py {CONVERTER_VERSION}",
        "source": model_path.name,
        "source_sha256": sha256_of(model_path),
    }
    if pca_path is not None:
        pca_path = Path(pca_path)
        pca = map_keys(load_checkpoint(pca_path))
        clash = sorted(set(pca) & set(tensors))
        if clash:
            raise WeightsError(f"{pca_path}: names also in {model_path.name}: {', '.join(clash)}")
        tensors.update(pca)
        metadata.update(pca_source=pca_path.name, pca_sha256=sha256_of(pca_path))

    has_pca = any(name in tensors for name in PCA_KEYS)
    report = compare(VGGish(pca=has_pca).state_dict(), tensors)
    problems = [line for line in report if not line.startswith("ok")]
    if problems:
        shown = "; ".join(" ".join(p.split()) for p in problems[:4])
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise WeightsError(f"{model_path}: does not match VGGish: {shown}{more}")

    _save_atomically(tensors, metadata, Path(output))
    return report


def _save_atomically(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path):
    from safetensors.torch import save_file

    from delcli.files import atomic_path

    contiguous = {name: t.detach().contiguous().clone() for name, t in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(contiguous, temporary, metadata=metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="torchvggish network checkpoint (.pth)")
    parser.add_argument("pca", type=Path, nargs="?", help="torchvggish PCA parameters (.pth)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .safetensors")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every tensor")
    args = parser.parse_args(argv)
    try:
        report = convert(args.model, args.pca, args.output)
    except WeightsError as error:
        print(f"convert_vggish: error: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        print("\n".join(report), file=sys.stderr)
    pca = "with" if args.pca else "without"
    print(f"{args.output}: {len(report)} tensors, {pca} PCA post-processing", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
