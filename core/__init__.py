"""Restyle's engine: Gatys-style neural style transfer on VGG19 features, free of HTTP and queues.

The torch-free part (parameters, errors, image decoding) imports eagerly, so the API can validate uploads
without loading torch; the optimisation itself (``stylize``, ``load_vgg``) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import (
    Cancelled,
    DeviceUnavailable,
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    InvalidRequest,
    MemoryBudgetTooSmall,
    NotAnImage,
    RestyleError,
    TruncatedImage,
    WeightsError,
    WeightsMismatch,
    WeightsNotFound,
)
from core.images import MEDIA_TYPES, decode_image, encode_image, fit_longest_side
from core.params import LAYER_NAMES, MAX_STYLES, StyleParams

if TYPE_CHECKING:
    from core.engine import Progress, Stylized, stylize
    from core.vgg import FeatureNet, load_vgg

_LAZY = {
    "stylize": "core.engine",
    "Progress": "core.engine",
    "Stylized": "core.engine",
    "load_vgg": "core.vgg",
    "FeatureNet": "core.vgg",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")


__all__ = [
    "LAYER_NAMES",
    "MAX_STYLES",
    "MEDIA_TYPES",
    "Cancelled",
    "DeviceUnavailable",
    "FeatureNet",
    "ImageTooLarge",
    "ImageTooSmall",
    "InvalidImage",
    "InvalidRequest",
    "MemoryBudgetTooSmall",
    "NotAnImage",
    "Progress",
    "RestyleError",
    "StyleParams",
    "Stylized",
    "TruncatedImage",
    "WeightsError",
    "WeightsMismatch",
    "WeightsNotFound",
    "decode_image",
    "encode_image",
    "fit_longest_side",
    "load_vgg",
    "stylize",
]
