"""Pad the time axis inside an exported ONNX graph, so that it takes any T ≥ 1.

The traced graph takes only lengths that are a multiple of `time_multiple`
(and at least `min_steps`, see `delcli.export.graph`). `pad_time_axis` puts the
padding in front of it, as ONNX operators: every input is padded at the end of
its time axis to

    P = time_multiple · max(⌈T / time_multiple⌉, min_steps / time_multiple)

(features with zeros, the mask with False), and each level of the outputs is
cut back from its `P / 2^l` points to the `⌈T / 2^l⌉` that hold the input's
steps, before the levels are concatenated again. An input whose T is already a
valid length passes unchanged (zero padding, nothing cut), so a caller that
pads itself, as `delcli.export.runtime` does, gets the same numbers as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from delcli.model.config import ModelConfig

PREFIX = "del_pad/"  # names of the added nodes and values


def pad_time_axis(proto, config: ModelConfig) -> None:
    """Rewrite `proto` (an `onnx.ModelProto` of `ExportGraph`) in place; see the module."""
    from onnx import TensorProto, helper

    from delcli.export.graph import min_steps, time_multiple

    graph = proto.graph
    multiple = time_multiple(config)
    nodes, constants = [], {}

    def constant(name: str, values: list[int]) -> str:
        if name not in constants:
            constants[name] = helper.make_tensor(
                PREFIX + name, TensorProto.INT64, [len(values)], values
            )
        return PREFIX + name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(
            helper.make_node(op, inputs, [PREFIX + output], name=PREFIX + output, **attributes)
        )
        return PREFIX + output

    weights = {tensor.name for tensor in graph.initializer}  # old IRs list them as inputs
    inputs = [value.name for value in graph.input if value.name not in weights]
    inner = {name: PREFIX + "inner_" + name for name in inputs}
    outputs = [value.name for value in graph.output]
    padded_out = {name: PREFIX + "padded_" + name for name in outputs}
    for existing in graph.node:  # the traced graph now reads padded inputs, writes padded outputs
        existing.input[:] = [inner.get(name, name) for name in existing.input]
        existing.output[:] = [padded_out.get(name, name) for name in existing.output]

    length = node("Shape", ["mask"], "length", start=1, end=2)  # (1,) int64: T
    step = constant("multiple", [multiple])
    blocks = node(
        "Div",
        [node("Add", [length, constant("multiple_less_one", [multiple - 1])], "t_up"), step],
        "blocks",
    )
    blocks = node(
        "Max", [blocks, constant("min_blocks", [min_steps(config) // multiple])], "blocks_at_least"
    )
    padded = node("Mul", [blocks, step], "padded_length")
    extra = node("Sub", [padded, length], "extra")
    for name in inputs:
        rank = len(next(v for v in graph.input if v.name == name).type.tensor_type.shape.dim)
        pads = node(
            "Concat",
            [
                constant(f"zeros{rank + 1}", [0] * (rank + 1)),
                extra,
                *([constant("zero", [0])] * (rank - 2)),
            ],
            f"pads_{name}",
            axis=0,
        )
        if name == "mask":  # Pad on bool is not in every runtime: pad as uint8
            as_bytes = node("Cast", [name], "mask_bytes", to=TensorProto.UINT8)
            grown = node("Pad", [as_bytes, pads], "mask_bytes_padded", mode="constant")
            nodes.append(
                helper.make_node(
                    "Cast", [grown], [inner[name]], name=inner[name], to=TensorProto.BOOL
                )
            )
        else:
            nodes.append(
                helper.make_node(
                    "Pad", [name, pads], [inner[name]], name=inner[name], mode="constant"
                )
            )

    strides = list(config.strides)
    level_sizes = node("Div", [padded, constant("strides", strides)], "level_sizes")
    kept_ends = []
    for level, stride in enumerate(strides):
        up = node(
            "Add", [length, constant(f"stride{level}_less_one", [stride - 1])], f"kept_up{level}"
        )
        kept_ends.append(node("Div", [up, constant(f"stride{level}", [stride])], f"kept{level}"))
    tail = []
    for name in outputs:
        parts = [f"{PREFIX}{name}_level{level}" for level in range(len(strides))]
        tail.append(
            helper.make_node(
                "Split",
                [padded_out[name], level_sizes],
                parts,
                name=PREFIX + "split_" + name,
                axis=1,
            )
        )
        cut = []
        for level, part in enumerate(parts):
            sliced = f"{part}_kept"
            tail.append(
                helper.make_node(
                    "Slice",
                    [part, constant("zero", [0]), kept_ends[level], constant("one", [1])],
                    [sliced],
                    name=sliced,
                )
            )
            cut.append(sliced)
        tail.append(helper.make_node("Concat", cut, [name], name=PREFIX + "concat_" + name, axis=1))

    for value in graph.value_info:  # inner tensors run on the padded axis, not the input's
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in ("time", "points"):
                dim.dim_param = "padded_" + dim.dim_param
    graph.initializer.extend(constants.values())
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *body, *tail])
