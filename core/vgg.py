"""VGG19 as a frozen feature extractor that returns named layer outputs and stops at the deepest one asked for.

Weights come from one of four places, always reported in ``FeatureNet.weights_name``:
``imagenet`` (torchvision's IMAGENET1K_V1 via the torch hub cache: the convolutions alone, as
``core.weights_download`` keeps them, or torchvision's whole download), a local torchvision state dict,
``caffe:PATH`` (a Caffe-converted VGG19, which expects BGR pixels on a 0–255 scale), or ``random``
(seeded He initialisation: He, Wang & Hopcroft, NeurIPS 2016, show style transfer still works with random
filters, which keeps the engine usable offline). ``auto`` takes imagenet when it is cached, else random.
Only the first three were trained: random filters give visibly weaker pictures, which the shells say
wherever they run on them (``restyle.weights_notice``).
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import DeviceUnavailable, WeightsMismatch, WeightsNotFound
from core.params import LAYER_NAMES, VGG19_CONFIG
from core.weights_download import imagenet_cache_path, imagenet_cached, imagenet_file

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_SEED = 0
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's `features` Sequential interleaves conv, relu and pool exactly as LAYER_NAMES does,
# so a layer's position in LAYER_NAMES is also its index in a torchvision state dict.
_CONV_INDICES = tuple(i for i, name in enumerate(LAYER_NAMES) if name.startswith("conv"))


class FeatureNet(nn.Module):
    """The convolutional part of VGG19 with the input normalisation its weights were trained with."""

    mean: Tensor
    scale: Tensor

    def __init__(self, convs: nn.ModuleList, weights_name: str, *, caffe: bool = False) -> None:
        super().__init__()
        self.convs = convs
        self.weights_name = weights_name
        self.caffe = caffe
        mean, scale = (_CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)) if caffe else (_IMAGENET_MEAN, _IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def normalize(self, image: Tensor) -> Tensor:
        """Map RGB in [0, 1] to what the weights expect (ImageNet-standardised RGB, or Caffe's BGR 0–255)."""
        if self.caffe:
            image = image.flip(1) * 255.0
        return (image - self.mean) / self.scale

    def forward(self, image: Tensor, layers: Collection[str], pooling: str = "max") -> dict[str, Tensor]:
        """Run up to the deepest requested layer only; nothing past it is ever computed."""
        wanted = set(layers)
        deepest = max(LAYER_NAMES.index(name) for name in wanted)
        features: dict[str, Tensor] = {}
        # Channels-last is what oneDNN's and cuDNN's fastest convolution kernels want (about 1.5x on CPU here).
        x = self.normalize(image).contiguous(memory_format=torch.channels_last)
        convs = iter(self.convs)
        for name in LAYER_NAMES[: deepest + 1]:
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
    """Build the feature net once per process; ``weights`` is auto | imagenet | random | PATH | caffe:PATH."""
    target = _usable_device(device)
    weights = _resolve_auto(weights)
    if weights == "random":
        convs = _random_convs(RANDOM_WEIGHTS_SEED)
    elif weights == "imagenet":
        convs = _convs_from_state_dict(_read_state_dict(imagenet_file(), "imagenet"))
    else:
        path = _weights_path(weights)
        convs = _convs_from_state_dict(_read_state_dict(path, str(path)))
    net = FeatureNet(convs, weights_name(weights), caffe=weights.startswith("caffe:"))
    # Module.to accepts memory_format at run time; torch's type stubs only lack the overload.
    return net.to(target, memory_format=torch.channels_last)  # type: ignore[call-overload]


def weights_name(weights: str = "auto") -> str:
    """The ``weights_name`` that ``load_vgg(weights)`` gives its net, found without reading any weights.

    A prefork worker announces its weights before its children have loaded the net (each loads its own).
    """
    weights = _resolve_auto(weights)
    if weights == "random":
        return f"random(seed={RANDOM_WEIGHTS_SEED})"
    if weights == "imagenet":
        return "imagenet"
    kind = "caffe" if weights.startswith("caffe:") else "file"
    return f"{kind}:{_weights_path(weights).name}"


def _resolve_auto(weights: str) -> str:
    """``auto`` made definite: imagenet when its weights are cached, else random; others unchanged."""
    if weights != "auto":
        return weights
    if imagenet_cached():
        return "imagenet"
    log.warning("ImageNet VGG19 weights not found at %s; using seeded random weights instead", imagenet_cache_path())
    return "random"


def _weights_path(weights: str) -> Path:
    return Path(weights.removeprefix("caffe:")).expanduser()


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


def _read_state_dict(path: Path, label: str) -> Mapping[str, Tensor]:
    if path.is_dir():
        raise WeightsNotFound(f"VGG19 weights path {path} is a directory, not a weights file")
    if not path.is_file():
        hint = " (`restyle fetch-weights` downloads them)" if label == "imagenet" else ""
        raise WeightsNotFound(f"VGG19 weights '{label}' not found at {path}{hint}")
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


def _conv_shapes() -> list[tuple[int, int]]:
    """(in, out) channels of each of the sixteen convolutions."""
    shapes, channels = [], 3
    for item in VGG19_CONFIG:
        if item != "M":
            shapes.append((channels, int(item)))
            channels = int(item)
    return shapes


def _empty_convs() -> nn.ModuleList:
    return nn.ModuleList(nn.Conv2d(cin, cout, kernel_size=3, padding=1) for cin, cout in _conv_shapes())


def _random_convs(seed: int) -> nn.ModuleList:
    """torchvision's own VGG initialisation, driven by a private generator so the result is reproducible."""
    generator = torch.Generator().manual_seed(seed)
    convs = _empty_convs()
    for conv in convs:
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        nn.init.zeros_(conv.bias)
    return convs


def _convs_from_state_dict(state: Mapping[str, Tensor]) -> nn.ModuleList:
    """Accept a whole torchvision VGG19 (``features.N.weight``) or its features alone (``N.weight``)."""
    prefix = "features." if any(str(key).startswith("features.") for key in state) else ""
    convs = _empty_convs()
    for conv, index in zip(convs, _CONV_INDICES, strict=True):
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        for param, suffix in ((conv.weight, "weight"), (conv.bias, "bias")):
            key = f"{prefix}{index}.{suffix}"
            if key not in state:
                raise WeightsMismatch(f"weights file lacks '{key}': it is not a VGG19 state dict")
            if not isinstance(state[key], Tensor):
                raise WeightsMismatch(f"'{key}' holds a {type(state[key]).__name__}, VGG19 needs a tensor")
            if tuple(state[key].shape) != tuple(param.shape):
                raise WeightsMismatch(f"'{key}' has shape {tuple(state[key].shape)}, VGG19 needs {tuple(param.shape)}")
            param.data.copy_(state[key])
    return convs
