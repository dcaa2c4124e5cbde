"""Stands in for trained VGG weights files: the formats the engine reads (torchvision's key names, torch.save),
made from seeded random filters (the same seed, the same filters): the ImageNet download's layout without the
download. ``tests.support.weights_server`` serves such a file over HTTP."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch

from core.networks import VGG16, VGG19, Network

# torchvision's `features` index of each of VGG19's sixteen convolutions.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# And of VGG16's thirteen.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def vgg_state_dict(network: Network, seed: int = 1, *, classifier: bool = False) -> dict[str, torch.Tensor]:
    """``network``'s convolutions under torchvision's key names (``features.N.weight``), random from ``seed``;
    with ``classifier``, also a small stand-in for the fully connected layers a whole download carries."""
    indices = {VGG16: VGG16_CONV_INDICES, VGG19: TORCHVISION_CONV_INDICES}[network]
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (cin, cout) in zip(indices, network.conv_shapes, strict=True):
        # He's scale, as trained VGG roughly keeps it: without it activations grow layer by layer and the
        # optimisation behaves nothing like a real run's.
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator) * math.sqrt(2 / cout / 9)
        state[f"features.{index}.bias"] = torch.randn(cout, generator=generator) * 0.01
    if classifier:
        state["classifier.0.weight"] = torch.randn(64, 64, generator=generator)
        state["classifier.0.bias"] = torch.zeros(64)
    return state


def vgg19_state_dict(seed: int = 1, *, classifier: bool = False) -> dict[str, torch.Tensor]:
    """VGG19's convolutions in torchvision's layout (``vgg_state_dict``): the ImageNet VGG19 download's."""
    return vgg_state_dict(VGG19, seed, classifier=classifier)


def vgg16_state_dict(seed: int = 1, *, classifier: bool = False) -> dict[str, torch.Tensor]:
    """VGG16's convolutions in torchvision's layout (``vgg_state_dict``): the ImageNet VGG16 download's."""
    return vgg_state_dict(VGG16, seed, classifier=classifier)


def write_vgg19_weights(path: Path, seed: int = 1, *, classifier: bool = False) -> Path:
    """``vgg19_state_dict(seed)`` saved with torch.save at ``path`` (parents made)."""
    return _write(path, vgg19_state_dict(seed, classifier=classifier))


def write_vgg16_weights(path: Path, seed: int = 1, *, classifier: bool = False) -> Path:
    """``vgg16_state_dict(seed)`` saved with torch.save at ``path`` (parents made)."""
    return _write(path, vgg16_state_dict(seed, classifier=classifier))


def _write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def torch_file_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """``state`` as torch.save writes it, in memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
