"""Restyle's engine: Gatys-style neural style transfer on VGG19 features, free of HTTP and queues.

Parameters and errors import eagerly: they need only pydantic, which is all the client install
(``restyle.client``, no ``server`` extra) has besides httpx. Everything else is imported on first use: image
decoding (``decode_image``…, Pillow and numpy) and the optimisation itself (``stylize``, ``load_vgg``, torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import (
    Cancelled,
    DeviceUnavailable,
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    InvalidMask,
    InvalidRequest,
    MaskAllBlack,
    MaskCountMismatch,
    MemoryBudgetTooSmall,
    NotAnImage,
    RestyleError,
    TruncatedImage,
    WeightsError,
    WeightsMismatch,
    WeightsNotFound,
)
from core.params import LAYER_NAMES, MAX_STYLES, StyleParams

if TYPE_CHECKING:
    from core.engine import Progress, Stylized, stylize
    from core.images import MEDIA_TYPES, decode_image, encode_image, fit_longest_side
    from core.masks import StyleMask
    from core.vgg import FeatureNet, load_vgg

_LAZY = {
    "MEDIA_TYPES": "core.images",
    "decode_image": "core.images",
    "encode_image": "core.images",
    "fit_longest_side": "core.images",
    "stylize": "core.engine",
    "StyleMask": "core.masks",
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
    "InvalidMask",
    "InvalidRequest",
    "MaskAllBlack",
    "MaskCountMismatch",
    "MemoryBudgetTooSmall",
    "NotAnImage",
    "Progress",
    "RestyleError",
    "StyleMask",
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
