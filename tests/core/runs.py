"""Engine parameters sized for the tiny test pictures, so that one run takes well under a second, a memory budget
small enough to make such a run tiled, and how closely a tiled run must follow the untiled one."""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image, ImageChops
from torchvision.transforms.functional import pil_to_tensor

from core import budget
from core.engine import Progress
from core.errors import MemoryBudgetTooSmall
from core.images import scaled_size
from core.networks import VGG19, Network
from core.params import StyleParams

SMALL: dict[str, Any] = {"size": 48, "iterations": 12, "multiscale": False}

# VGG16's relu5_1 reaches less far than VGG19's (core.networks: 58 px before and 73 after, not 70 and 85), so its
# crops are smaller and a smaller picture tiles: 141 px is the least at which the test photo (141×118) does, in 3 tiles
# (from 96 px up, VGG16 tiles it at 141, 142 and from 149; VGG19 first at 167).
VGG16_TILED_SIZE = 141


# Whole runs, tiled and untiled, compared (test_budgeted_runs.py, test_masks.py). What tiling guarantees is the
# objective: the tiled (loss, gradient) is the untiled one but for float32 rounding of sums taken in another grouping
# (tests/core/test_tiling.py). A whole run adds the optimiser, which may amplify rounding where it divides by something
# small (L-BFGS's first curvature pairs come from a tiny step; Adam divides each pixel's step by its own gradient's
# size), so single pixel values may part by a level or more on one machine and not another. Hence these tests compare
# every iteration's total loss, which such pixels hardly move (the terms alone may trade a little against each other
# along the two paths; the optimiser answers for their sum): float32 sums over the picture's ~10⁴–10⁵ positions carry a
# relative rounding of about log2(n)·2⁻²⁴ ≈ 1e-6 per sum, and 1e-4 leaves two orders of magnitude for the amplification,
# while a tiling that is wrong anywhere (a halo one stride short) parts the losses by 3e-3 or more. The pictures must
# agree on average to a fraction of a level (0.25), far below what a misplaced or missing tile does to a whole region.
LOSS_AGREEMENT = 1e-4
MEAN_LEVELS = 0.25


def losses_per_iteration(reports: list[Progress]) -> list[float]:
    return [report.total_loss for report in reports]


def mean_level_difference(first: Image.Image, second: Image.Image) -> float:
    """The mean absolute difference of two pictures' channel values, in levels of 0–255."""
    difference = pil_to_tensor(ImageChops.difference(first, second)).double()
    return float(difference.mean())


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
    regions: int = 0,
    painting_masks: bool = False,
) -> int:
    """A budget, counted from what this process holds now, that the planner meets only with tiles of ``network``
    (for a run whose photo has that many masked ``regions``, and whose paintings have masks if so said).

    The middle of the range of such budgets, not its top: what the process holds may drift by a few MiB between
    this call and the run, and at the tests' small sizes the range is narrow (a few percent for VGG16 at its least
    tiled size). Raises ``MemoryBudgetTooSmall`` when no budget makes the planner tile."""
    run = params(size=size, optimizer=optimizer)
    content, style = scaled_size(photo.size, size), scaled_size(painting.size, size)
    limit, tiled = 400 * 2**20, list[int]()
    while True:
        try:
            stage = budget.plan_stage(
                network,
                content,
                [style],
                run.content_layers,
                run.style_layers,
                optimizer,
                limit,
                regions=regions,
                painting_masks=painting_masks,
            )
        except MemoryBudgetTooSmall:
            if not tiled:
                raise
            return budget.in_use(torch.device(device)) + round(math.sqrt(tiled[0] * tiled[-1]))
        if stage.tiles is not None:
            tiled.append(limit)
        limit = int(limit * 0.98)
