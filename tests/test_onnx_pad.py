"""`delcli.export.onnx_pad`: the padding put in front of an exported ONNX graph.

A stand-in for the traced DEL graph (no torch export needed): it takes only
lengths that are multiples of the time multiple, and level l of its outputs is
every 2^l-th input step, so the points a padded input must give back are known.
"""

from __future__ import annotations

import numpy as np
import pytest

from delcli.export.graph import min_steps, time_multiple
from delcli.export.onnx_pad import pad_time_axis
from delcli.model.config import ModelConfig

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TensorProto = onnx.helper, onnx.TensorProto

CONFIG = ModelConfig(visual_dim=3, audio_dim=2, num_classes=3, n_levels=3, max_seq_len=32)


def stand_in_graph(config: ModelConfig):
    """visual (B, T, 3), audio (B, T, 2), mask (B, T) → cls_logits: visual's every 2^l-th step
    per level; offsets: the mask as float, the same way. Fails unless T is a valid length."""
    multiple, nodes, init = time_multiple(config), [], []

    def const(name, values):
        init.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    # the traced graph's reshape into blocks: only an exact multiple passes
    nodes.append(
        helper.make_node("Reshape", ["visual", const("blocks", [0, -1, multiple, 3])], ["blocked"])
    )
    nodes.append(helper.make_node("Reshape", ["blocked", const("back", [0, -1, 3])], ["whole"]))
    nodes.append(helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Unsqueeze", ["mask_f", const("last", [2])], ["mask_3d"]))
    nodes.append(helper.make_node("Add", ["mask_3d", "mask_3d"], ["mask_2x"]))
    for out, source in (("cls_logits", "whole"), ("offsets", "mask_2x")):
        levels = []
        for level, stride in enumerate(config.strides):
            name = f"{out}_{level}"
            nodes.append(
                helper.make_node(
                    "Slice",
                    [
                        source,
                        const(f"s{out}{level}", [0]),
                        const(f"e{out}{level}", [1 << 30]),
                        const(f"a{out}{level}", [1]),
                        const(f"st{out}{level}", [stride]),
                    ],
                    [name],
                )
            )
            levels.append(name)
        nodes.append(helper.make_node("Concat", levels, [out], axis=1))
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "stand-in",
        [value("visual", TensorProto.FLOAT, ["batch", "time", 3]),
         value("audio", TensorProto.FLOAT, ["batch", "time", 2]),
         value("mask", TensorProto.BOOL, ["batch", "time"])],
        [value("cls_logits", TensorProto.FLOAT, ["batch", "points", 3]),
         value("offsets", TensorProto.FLOAT, ["batch", "points", 1])],
        init,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])


def run(proto, length: int):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(length)
    visual = rng.standard_normal((2, length, 3)).astype(np.float32)
    mask = np.arange(length)[None] < np.array([[length], [max(1, length // 2)]])
    feeds = {"visual": visual, "audio": np.zeros((2, length, 2), np.float32), "mask": mask}
    return visual, mask, session.run(["cls_logits", "offsets"], feeds)


def test_the_stand_in_refuses_a_length_off_the_time_multiple():
    with pytest.raises(Exception, match=r"(?i)shape"):
        run(stand_in_graph(CONFIG), time_multiple(CONFIG) + 1)


@pytest.mark.parametrize("length", [1, 2, 5, 8, 13, 16, 37, 64, 200])
def test_any_length_gives_each_level_its_points_of_the_unpadded_input(length):
    proto = stand_in_graph(CONFIG)
    pad_time_axis(proto, CONFIG)
    onnx.checker.check_model(proto)
    visual, mask, (logits, offsets) = run(proto, length)
    strides = CONFIG.strides
    assert np.array_equal(logits, np.concatenate([visual[:, ::s] for s in strides], axis=1))
    as_float = 2 * mask[..., None].astype(np.float32)
    assert np.array_equal(offsets, np.concatenate([as_float[:, ::s] for s in strides], axis=1))


def test_a_valid_length_passes_unchanged():
    length = min_steps(CONFIG) + time_multiple(CONFIG)
    plain = run(stand_in_graph(CONFIG), length)[2]
    proto = stand_in_graph(CONFIG)
    pad_time_axis(proto, CONFIG)
    padded = run(proto, length)[2]
    for a, b in zip(plain, padded, strict=True):
        assert np.array_equal(a, b)
