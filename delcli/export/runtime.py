"""Run an exported `.onnx` DEL with ONNX Runtime where the code expects a `DELModel`.

`OnnxNetwork` reads the recipe from the file's metadata and answers what
`predict_dataset`, `detect_events` and `window_candidates` ask of a network:
`.config`, `network(visual, audio, mask) -> DELOutput`, `.candidates(output)`,
and `.to()`, `.eval()`, `.train()` (no-ops: it runs on the CPU and only infers).

A call pads the time axis with masked steps up to the graph's `time_multiple`
(and `min_steps`), runs the graph, cuts its concatenated outputs back into
levels and each level back to the caller's length, with the masks the eager
network would give (`mask[:, ::stride]`). Padded steps do not change valid
outputs, so the detections match the eager network's (to float rounding).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from delcli.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from delcli.export.metadata import ExportInfo
    from delcli.model.decode import Candidates
    from delcli.model.del_model import DELOutput

INSTALL_HINT = "pip install 'del-av[export]'"


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session on `path`, `threads` intra-op threads (default: torch's)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"--backend onnxruntime needs onnxruntime: {INSTALL_HINT}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: not a readable ONNX model ({reason})") from None


class OnnxNetwork:
    """An exported DEL network run by ONNX Runtime; see the module docstring."""

    training = False

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        self.path = path
        self.session = ort_session(path, threads)
        self.info = read_onnx_metadata(self.session, str(path))
        self.recipe = self.info.recipe
        self.config = self.recipe.model
        names = [i.name for i in self.session.get_inputs()]
        if names != self.info.inputs:
            raise WeightsError(f"{path}: inputs {names} do not match its metadata")

    def __call__(
        self, visual: torch.Tensor | None, audio: torch.Tensor | None, mask: torch.Tensor
    ) -> DELOutput:
        """Head outputs per level for `visual (B, T, C_v)`, `audio (B, T, C_a)`, `mask (B, T)`;
        any T up to the graph's `max_steps`."""
        from delcli.export.graph import level_lengths
        from delcli.model.del_model import DELOutput

        batch, length = mask.shape
        padded = self.padded_length(length)
        streams = {"visual": visual, "audio": audio}
        feeds = {}
        for name in self.info.inputs:
            x = mask if name == "mask" else streams[name]
            if x is None:
                raise ConfigError(f"modalities={self.config.modalities} needs {name} features")
            x = x.detach().cpu()
            pad = x.new_zeros(batch, padded - length, *x.shape[2:])
            feeds[name] = torch.cat([x.float() if name != "mask" else x, pad], dim=1).numpy()
        cls_logits, offsets = self.session.run(self.info.outputs, feeds)
        n_levels = self.config.n_levels

        def per_level(flat) -> list[torch.Tensor]:
            parts = torch.from_numpy(flat).split(level_lengths(padded, n_levels), dim=1)
            kept = level_lengths(length, n_levels)
            return [p[:, :k].to(mask.device) for p, k in zip(parts, kept, strict=True)]

        masks = [mask[:, ::stride] for stride in self.config.strides]
        return DELOutput(per_level(cls_logits), per_level(offsets), masks, tokens=None)

    def padded_length(self, length: int) -> int:
        """The graph length that holds `length` steps."""
        multiple, info = self.info.time_multiple, self.info
        padded = max(info.min_steps, -(-length // multiple) * multiple)
        if padded > info.max_steps:
            raise ConfigError(
                f"{length} steps is longer than the exported graph takes ({info.max_steps}); "
                f"predict in windows of at most model.max_seq_len={self.config.max_seq_len} steps"
            )
        return padded

    @torch.no_grad()
    def candidates(self, output: DELOutput) -> list[Candidates]:
        """Per video: candidate segments (grid steps), scores and labels before NMS."""
        from delcli.model.decode import decode_candidates

        return decode_candidates(output.cls_logits, output.offsets, output.masks, self.config)

    # the nn.Module calls the inference code makes
    def to(self, *args, **kwargs) -> OnnxNetwork:
        return self

    def eval(self) -> OnnxNetwork:
        return self

    def train(self, mode: bool = True) -> OnnxNetwork:
        return self


def read_onnx_metadata(session, source: str) -> ExportInfo:
    """The del metadata of an ONNX Runtime session's model."""
    from delcli.export.metadata import read_metadata

    return read_metadata(dict(session.get_modelmeta().custom_metadata_map), source)


def load_onnx_network(spec: str) -> OnnxNetwork:
    """`--weights spec` for `--backend onnxruntime`: an `.onnx` file written by del export."""
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".onnx":
        raise ConfigError(
            f"--backend onnxruntime runs an exported .onnx file (del export --weights "
            f"{spec} -o model.onnx), not '{spec}'"
        )
    return OnnxNetwork(path)
