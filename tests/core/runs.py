"""Engine parameters sized for the tiny test pictures, so that one run takes well under a second, and a memory
budget small enough to make such a run tiled."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from core import budget
from core.images import scaled_size
from core.networks import VGG19, Network
from core.params import StyleParams

SMALL: dict[str, Any] = {"size": 48, "iterations": 12, "multiscale": False}

# VGG16's relu5_1 reaches less far than VGG19's (core.networks: 58 px before and 73 after, not 70 and 85), so its
# crops are smaller and a smaller picture tiles: 141 px is the least at which the test photo (141×118) does, in 3 tiles
# (from 96 px up, VGG16 tiles it at 141, 142 and from 149; VGG19 first at 167).
VGG16_TILED_SIZE = 141


def params(**overrides: Any) -> StyleParams:
    return StyleParams(**{**SMALL, **overrides})


def tiling_budget(
    photo: Image.Image,
    painting: Image.Image,
    size: int,
    *,
    optimizer: str = "lbfgs",
    device: str = "cpu",
    network: Network = VGG19,
) -> int:
    """A budget, counted from what this process holds now, that the planner meets only with tiles of ``network``."""
    run = params(size=size, optimizer=optimizer)
    content, style = scaled_size(photo.size, size), scaled_size(painting.size, size)
    limit = 400 * 2**20
    while True:
        stage = budget.plan_stage(network, content, [style], run.content_layers, run.style_layers, optimizer, limit)
        if stage.tiles is not None:
            return budget.in_use(torch.device(device)) + limit
        limit = int(limit * 0.9)
