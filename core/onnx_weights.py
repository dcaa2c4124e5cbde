"""VGG convolutions read out of an ONNX file (``onnx:PATH``), with no ONNX runtime: the weights are the
graph's initializers, and the graph itself is only read to put them in order.

What is accepted, and how each part is found:
- The convolutions are the graph's ``Conv`` nodes in graph order (ONNX keeps nodes topologically sorted, and
  VGG is a chain), each with a 3×3 kernel and, when present, a bias held as initializers or constants. They
  must be exactly VGG16's 13 or VGG19's 16 with those networks' channel counts, else the file is refused
  saying which count or shape differs. What follows the last convolution (a classifier) is ignored.
- The preprocessing follows the input layout. A channels-last input (``[N, H, W, 3]``, transposed to
  channels-first before the first convolution) is what Keras exports through tf2onnx, and Keras's VGG
  weights are the Oxford release, which expects Caffe's preprocessing (BGR, 0–255, ImageNet mean
  subtracted). A channels-first input is a torchvision-style export, which expects torchvision's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.errors import WeightsMismatch, WeightsNotFound
from core.networks import NETWORKS, network_with
from core.vgg import CAFFE, TORCHVISION, Preprocessing, VggWeights


def read_onnx_vgg(path: Path) -> VggWeights:
    """The VGG16 or VGG19 convolutions of the ONNX file at ``path`` and the preprocessing they expect."""
    import onnx
    from onnx import numpy_helper

    if not path.is_file():
        raise WeightsNotFound(f"ONNX weights file {path} not found")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError, or an OSError, for anything that is not a model
        raise WeightsMismatch(f"{path} is not an ONNX model ({type(error).__name__})") from error
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    network = network_with(len(convs))
    if network is None:
        counts = " and ".join(f"{net.name.upper()} {net.convolutions}" for net in NETWORKS.values())
        raise WeightsMismatch(f"{path.name} has {len(convs)} convolutions; {counts}, so it is neither network")
    state: dict[str, torch.Tensor] = {}
    for number, (node, (cin, cout), index) in enumerate(
        zip(convs, network.conv_shapes, network.conv_indices, strict=True), 1
    ):
        kernel = _constant(constants, node.input[1], path, number)
        bias = _constant(constants, node.input[2], path, number) if len(node.input) > 2 and node.input[2] else None
        expected = (cout, cin, 3, 3)
        if kernel.shape != expected:
            raise WeightsMismatch(
                f"{path.name}'s convolution {number} has a {tuple(kernel.shape)} kernel; "
                f"{network.name.upper()} needs {expected} there"
            )
        bias = np.zeros(cout, dtype=np.float32) if bias is None else bias.reshape(-1)
        if bias.shape != (cout,):
            raise WeightsMismatch(f"{path.name}'s convolution {number} has {bias.size} biases, not {cout}")
        state[f"features.{index}.weight"] = torch.from_numpy(kernel.astype(np.float32, copy=True))
        state[f"features.{index}.bias"] = torch.from_numpy(bias.astype(np.float32, copy=True))
    return VggWeights(network, _preprocessing(model), state)


def _constant(constants: dict[str, np.ndarray], name: str, path: Path, number: int) -> np.ndarray:
    if name not in constants:
        raise WeightsMismatch(
            f"{path.name}'s convolution {number} takes its weights from '{name}', which is computed in the graph, "
            "not stored: only exports with stored weights can be read"
        )
    return constants[name]


def _preprocessing(model: object) -> Preprocessing:
    """Caffe's for a channels-last input (a Keras export), torchvision's for a channels-first one."""
    graph = model.graph  # type: ignore[attr-defined]
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if not inputs:
        return TORCHVISION
    dims = [dim.dim_value for dim in inputs[0].type.tensor_type.shape.dim]
    channels_last = len(dims) == 4 and dims[3] == 3 and dims[1] != 3
    return CAFFE if channels_last else TORCHVISION
