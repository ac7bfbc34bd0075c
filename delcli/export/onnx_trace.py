"""The ONNX graph of `ExportGraph`, traced once with concrete tensors.

`torch.onnx.export(..., dynamo=False)` runs the network once on example inputs
(`torch.jit` tracing) and records every operator, sizes included: a size read
from a tensor (`x.shape[1]`) becomes a `Shape` node, so the batch and time axes
stay dynamic wherever the network computes with sizes rather than with Python
numbers. The network is written for that (its sizes come from tensors; the
blocked local attention uses slices, not `unfold`, whose length the tracer
bakes in), and every export is checked by ONNX Runtime on batch sizes and
lengths the trace never saw (`delcli.export.writers`).

Why not the torch.export-based exporter: it traces twice with symbolic sizes,
and sympy's simplification of the ~666,000 size expressions of a pyramid of
blocked local attentions took 2.5–3.5 minutes on 2 cores (up to 23 on a busy
machine); one concrete trace takes seconds. The `.pt2` format still goes through
`torch.export` (`delcli.export.graph.export_program`), which it is.

Attention: `aten::scaled_dot_product_attention` becomes the opset-23 `Attention`
operator, which ONNX Runtime runs fused (the exporter's own rule spells it out as
MatMul, Where, Softmax and IsNaN on the full T × T matrix, 1.3× slower for
THUMOS14's 2305-token AAC). A boolean mask of shape `(B, 1, 1, Tk)` (keys only) is
expanded over the queries first: ONNX Runtime's kernel does not broadcast it.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import torch

from delcli.export.graph import OUTPUT_NAMES, ExportGraph, example_inputs, input_names, min_steps

if TYPE_CHECKING:
    from delcli.model.del_model import DELModel

OPSET = 23
"""ONNX opset of the export: the first with the `Attention` operator."""
ATTENTION = "aten::scaled_dot_product_attention"


def trace_onnx(model: DELModel):
    """`onnx.ModelProto` of `ExportGraph(model)` with dynamic `batch`, `time` and `points`
    axes, traced on two videos of `min_steps` (the second half padding)."""
    import onnx
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    graph = ExportGraph(model).eval()  # the exporter restores the module's mode afterwards
    inputs = example_inputs(model.config, 2, min_steps(model.config))
    names = list(input_names(model.config))
    axes = {name: {0: "batch", 1: "time"} for name in names}
    axes.update({name: {0: "batch", 1: "points"} for name in OUTPUT_NAMES})
    buffer = io.BytesIO()
    register_custom_op_symbolic(ATTENTION, _attention, OPSET)
    try:
        with warnings.catch_warnings():
            # TracerWarning on Python numbers taken from tensors: feature sizes and head
            # scales, constant by construction; what is not is caught by the check
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                inputs,
                buffer,
                input_names=names,
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        unregister_custom_op_symbolic(ATTENTION, OPSET)
    return onnx.load_from_string(buffer.getvalue())


def _attention(g, query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """The symbolic of `scaled_dot_product_attention` (inference: no dropout, no GQA)."""
    from torch.onnx._internal.torchscript_exporter import symbolic_helper as helper

    if helper._maybe_get_const(is_causal, "b") or helper._maybe_get_const(enable_gqa, "b"):
        raise ValueError("causal or grouped-query attention has no export rule here")
    attributes = {}
    if not helper._is_none(scale):
        attributes["scale_f"] = helper._get_const(scale, "f", "scale")
    operands = [query, key, value]
    if not helper._is_none(attn_mask):

        def axes(shape, start: int, end: int):
            bounds = (g.op("Constant", value_t=torch.tensor([i])) for i in (start, end))
            return g.op("Slice", shape, *bounds)

        mask_shape, query_shape = g.op("Shape", attn_mask), g.op("Shape", query)
        full = g.op(
            "Concat",
            axes(mask_shape, 0, 2),
            axes(query_shape, 2, 3),
            axes(mask_shape, 3, 4),
            axis_i=0,
        )
        operands.append(g.op("Expand", attn_mask, full))
    return g.op("Attention", *operands, **attributes)
