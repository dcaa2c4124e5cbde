"""Engine parameters sized for the tiny test pictures, so that one run takes well under a second, and a memory
budget small enough to make such a run tiled."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from core import budget
from core.images import scaled_size
from core.params import StyleParams

SMALL: dict[str, Any] = {"size": 48, "iterations": 12, "multiscale": False}


def params(**overrides: Any) -> StyleParams:
    return StyleParams(**{**SMALL, **overrides})


def tiling_budget(
    photo: Image.Image, painting: Image.Image, size: int, *, optimizer: str = "lbfgs", device: str = "cpu"
) -> int:
    """A budget, counted from what this process holds now, that the planner meets only with tiles."""
    run = params(size=size, optimizer=optimizer)
    content, style = scaled_size(photo.size, size), scaled_size(painting.size, size)
    limit = 400 * 2**20
    while True:
        stage = budget.plan_stage(content, [style], run.content_layers, run.style_layers, optimizer, limit)
        if stage.tiles is not None:
            return budget.in_use(torch.device(device)) + limit
        limit = int(limit * 0.9)
