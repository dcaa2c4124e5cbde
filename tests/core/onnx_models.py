"""ONNX graphs built with ``onnx.helper`` for the tests of ``onnx:PATH`` weights and of the Keras VGG16 tier:
VGG16 exported as tf2onnx exports Keras's or as torchvision's export looks, and a graph that is no VGG."""

from __future__ import annotations

from functools import cache

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from core.networks import POOL, VGG16


@cache
def vgg16_onnx(*, channels_last: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
    """A VGG16 graph as tf2onnx exports Keras's (an NHWC input transposed to NCHW, then VGG16's thirteen
    convolutions, ReLUs and poolings) or, not ``channels_last``, as torchvision's export (NCHW input); with small
    seeded random weights of VGG16's shapes. Returns its bytes and its convolutions under torchvision's keys."""
    rng = np.random.default_rng(0)
    height, width = 32, 32
    if channels_last:
        graph_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", height, width, 3])
        nodes = [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2])]
        x = "nchw"
    else:
        graph_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, height, width])
        nodes, x = [], "input"
    initializers: list[TensorProto] = []
    expected: dict[str, np.ndarray] = {}
    convs = iter(VGG16.conv_indices)
    channels = 3
    for number, item in enumerate(VGG16.config):
        if item == POOL:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{number}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{number}"
            continue
        index = next(convs)
        kernel = (rng.standard_normal((int(item), channels, 3, 3)) * 0.01).astype(np.float32)
        bias = (rng.standard_normal(int(item)) * 0.01).astype(np.float32)
        initializers += [numpy_helper.from_array(kernel, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        expected |= {f"features.{index}.weight": kernel, f"features.{index}.bias": bias}
        nodes += [
            helper.make_node("Conv", [x, f"w{index}", f"b{index}"], [f"conv{index}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"conv{index}"], [f"relu{index}"]),
        ]
        x, channels = f"relu{index}", int(item)
    graph = helper.make_graph(
        nodes, "vgg16", [graph_input], [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString(), expected


def one_conv_onnx() -> bytes:
    """A graph that is no VGG: a single 3×3 convolution."""
    kernel = numpy_helper.from_array(np.zeros((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "one-conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [kernel],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
