"""What a run will do before it does it: the sizes it works at, and whether the pictures fit them.

This module does not import torch, so the API can refuse a picture that the run could never use (a
panorama too thin once scaled, a painting shrunk too far by ``style_scale``) when it is uploaded, instead
of failing the job later in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ImageTooSmall
from core.images import scaled_size
from core.params import StyleParams

# Below this longest side a coarse stage sees too little of the picture to be worth its iterations.
MIN_COARSE_SIDE = 160
# Share of all iterations spent at the final size; the rest is split evenly across the coarser stages.
FINAL_STAGE_SHARE = 0.4
# Paintings are never scaled below this longest side, whatever style_scale asks.
MIN_STYLE_SIDE = 16

Size = tuple[int, int]


@dataclass(frozen=True)
class Stage:
    """One step of the coarse-to-fine schedule."""

    size: int
    iterations: int


def plan_stages(params: StyleParams) -> list[Stage]:
    """Split the iteration budget over sizes halving from the final one, coarsest first."""
    sizes = [params.size]
    while params.coarse_to_fine and sizes[0] // 2 >= MIN_COARSE_SIDE:
        sizes.insert(0, sizes[0] // 2)
    if len(sizes) == 1:
        return [Stage(params.size, params.iterations)]
    final = max(1, round(params.iterations * FINAL_STAGE_SHARE))
    coarse, extra = divmod(params.iterations - final, len(sizes) - 1)
    counts = [coarse + (1 if i < extra else 0) for i in range(len(sizes) - 1)] + [final]
    return [Stage(size, count) for size, count in zip(sizes, counts, strict=True) if count > 0]


def style_side(params: StyleParams, stage_size: int) -> int:
    """The longest side paintings are scaled to at a stage: the stage's size times ``style_scale``."""
    return max(MIN_STYLE_SIDE, round(stage_size * params.style_scale))


def check_fits(params: StyleParams, content: tuple[str, Size], styles: Sequence[tuple[str, Size]]) -> None:
    """Raise ``ImageTooSmall`` for a picture whose short side, at the smallest size the run scales it to,
    would not reach the deepest layer in use. Pictures come as (name for messages, (width, height))."""
    smallest = plan_stages(params)[0].size
    scaled = [(content, smallest)] + [(style, style_side(params, smallest)) for style in styles]
    for (name, size), side in scaled:
        width, height = scaled_size(size, side)
        if min(width, height) < params.min_side:
            raise ImageTooSmall(
                f"{name} is {size[0]}×{size[1]}, so at {side} px on its longest side it would be {width}×{height}; "
                f"the layers in use need at least {params.min_side} px on each side. Use a less elongated picture, "
                "a larger size or, for a painting, a larger style_scale"
            )
