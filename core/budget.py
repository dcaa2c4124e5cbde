"""How much memory a run may take, and how each stage spends it: L-BFGS history, tiles, or neither.

The figures are a model: a pass with autograd holds a fixed number of float32 values per activation of the
network, one without fewer (``VALUES_PER_ACTIVATION_GRAD`` and ``_NO_GRAD``), where the activations of a pixel
are the channels of every convolution up to the deepest layer in use, divided by its stride squared (290 for
VGG19's relu5_1). Its constants were fitted to the peak RSS of forward and backward passes on the CPU at picture
sizes from 256×320 to 1280×1600 px, glibc keeping freed memory as ``core.memory`` asks; refit them when
bench/highres.py finds runs under a budget peaking above it. The budget covers everything the run adds to the
process: what the process held before (libraries, the network's weights) is taken off first.

Spatial control (``core.masks``) adds what the model names on its own: each region's mask on the photo's grid and
its weights on every style layer's, kept for the stage, and one weighted copy of a style layer's features, which a
guided Gram matrix makes for each region in turn (the widest style layer's, per pixel, bounds it).

Policy when a stage does not fit whole with the full L-BFGS history of 50 pairs: the grid of tiles with the
least work that still leaves ``MIN_HISTORY`` pairs, then as many pairs as the rest holds. Tiles cost time, not
loss; fewer pairs cost a little loss (bench/highres.py --history measures how much), so time wins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import MemoryBudgetTooSmall
from core.networks import Network, stride
from core.tiling import TilePlan, deepest_reach, plan_tiles
from core.units import format_bytes

FULL_HISTORY = 50
MIN_HISTORY = 5
# The share of a budget planned for; the rest is margin for what the model leaves out (the allocator's own
# overhead, short-lived temporaries, the pictures as PIL images).
PLANNED_SHARE = 0.9
# Share of the machine a run takes when no budget is set: of physical (or cgroup-limited) memory on the CPU,
# of free memory on a GPU.
DEFAULT_CPU_SHARE = 0.75
DEFAULT_GPU_SHARE = 0.9
# Fitted constants of the model (fitted as the module's docstring says): float32 values held per activation
# with and without autograd, and picture-sized RGB float32 buffers a run keeps (the picture, its gradient,
# L-BFGS's last step and gradient with their temporaries, the total-variation term's differences, the photo).
VALUES_PER_ACTIVATION_GRAD = 2.6
VALUES_PER_ACTIVATION_NO_GRAD = 0.9
PICTURE_BUFFERS = 16
_FLOAT = 4
_RGB = 3


def default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(torch.cuda.memory_reserved(device) + DEFAULT_GPU_SHARE * free)
    return int(DEFAULT_CPU_SHARE * _physical_memory())


def in_use(device: torch.device) -> int:
    """What the process holds already and the budget must leave out: RSS on the CPU, allocations on a GPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _physical_memory() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


@dataclass(frozen=True)
class StagePlan:
    """How one stage spends the budget. ``tiles`` is None when the picture runs whole (the fast path);
    the target plans are None when those pictures fit whole in a pass without autograd."""

    height: int
    width: int
    history: int
    tiles: TilePlan | None
    content_tiles: TilePlan | None
    style_tiles: tuple[TilePlan | None, ...]

    @property
    def work(self) -> float:
        """Network work of one iteration, in untiled picture-pixels (for time estimates across stages)."""
        return self.height * self.width * (self.tiles.work if self.tiles is not None else 1.0)


def activations_per_pixel(network: Network, layers: Collection[str]) -> float:
    """Activations per input pixel of a pass through ``network`` up to the deepest of ``layers``."""
    return sum(_per_pixel(network, name) for name in network.up_to(layers) if name.startswith("conv"))


def _per_pixel(network: Network, layer: str) -> float:
    """Values of ``layer`` per input pixel."""
    return network.channels(layer) / stride(layer) ** 2


def mask_values_per_pixel(style_layers: Collection[str]) -> float:
    """Values one mask holds per picture pixel: itself on the picture's grid and its weights on each style
    layer's (``core.regions``)."""
    return 1 + sum(1 / stride(layer) ** 2 for layer in style_layers)


def guided_copy_per_pixel(network: Network, style_layers: Collection[str]) -> float:
    """Values per pixel of the one weighted copy of a style layer's features that a guided Gram matrix holds at a
    time, forward or backward: the widest style layer's."""
    return max(_per_pixel(network, layer) for layer in style_layers)


def plan_stage(
    network: Network,
    size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    content_layers: Collection[str],
    style_layers: Collection[str],
    optimizer: str,
    budget: int,
    *,
    regions: int = 0,
    painting_masks: bool = False,
) -> StagePlan:
    """Fit one stage (picture ``size`` as (width, height)) into ``budget`` bytes, or raise
    ``MemoryBudgetTooSmall`` naming what the smallest tiling would need. ``regions``: how many masked regions
    the photo has (0 without spatial control); ``painting_masks``: whether any painting has a mask."""
    available = budget * PLANNED_SHARE
    width, height = size
    layers = set(content_layers) | set(style_layers)
    pixels = height * width
    activations = activations_per_pixel(network, layers)
    guided_copy = guided_copy_per_pixel(network, style_layers) * _FLOAT
    with_grad = VALUES_PER_ACTIVATION_GRAD * activations * _FLOAT + (guided_copy if regions else 0)
    without_grad = VALUES_PER_ACTIVATION_NO_GRAD * activations * _FLOAT
    # The content target is kept whole, whatever the tiles; so are the regions' masks.
    content_target = sum(_per_pixel(network, layer) for layer in content_layers) * _FLOAT
    masks = regions * mask_values_per_pixel(style_layers) * _FLOAT
    fixed = pixels * (PICTURE_BUFFERS * _RGB * _FLOAT + content_target + masks)
    pair = 2 * _RGB * _FLOAT * pixels

    def state(history: int) -> int:
        return history * pair if optimizer == "lbfgs" else pair  # Adam's two moments: the size of one pair

    def tiles_leaving(history: int) -> TilePlan | None:
        room = available - fixed - state(history)
        return plan_tiles(network, height, width, layers, int(room / with_grad)) if room > 0 else None

    tiles = tiles_leaving(FULL_HISTORY)
    history = FULL_HISTORY
    if tiles is None or len(tiles.tiles) > 1:
        # The least-work grid that leaves room for MIN_HISTORY pairs; the history then takes what the grid
        # leaves, up to the full one.
        tiles = tiles_leaving(MIN_HISTORY)
        if tiles is None:
            needed = fixed + state(MIN_HISTORY) + with_grad * _smallest_crop(network, layers, height, width)
            raise MemoryBudgetTooSmall(
                f"a {width}×{height} px stage needs at least {format_bytes(needed / PLANNED_SHARE)} even in the "
                f"smallest tiles, and the memory budget leaves {format_bytes(max(budget, 0))} for the run: raise "
                "the budget (RESTYLE_MEMORY_BUDGET, --memory-budget) or ask for a smaller size"
            )
        left = available - fixed - with_grad * tiles.largest
        history = max(MIN_HISTORY, min(FULL_HISTORY, math.floor(left / pair)))
    room_for_targets = available - fixed
    content_tiles = _tiles_for_targets(network, height, width, layers, room_for_targets, without_grad)
    # A painting's mask is held whole while its crops run, each making one weighted copy at a time.
    painting_mask = mask_values_per_pixel(style_layers) * _FLOAT if painting_masks else 0.0
    painting_copy = guided_copy if painting_masks else 0.0
    style_tiles = tuple(
        _tiles_for_targets(
            network, h, w, style_layers, room_for_targets - w * h * painting_mask, without_grad + painting_copy
        )
        for w, h in style_sizes
    )
    return StagePlan(
        height,
        width,
        history if optimizer == "lbfgs" else 0,
        tiles if len(tiles.tiles) > 1 else None,
        content_tiles,
        style_tiles,
    )


def _tiles_for_targets(
    network: Network, height: int, width: int, layers: Collection[str], room: float, per_pixel: float
) -> TilePlan | None:
    plan = plan_tiles(network, height, width, layers, int(room / per_pixel)) if room > 0 else None
    if plan is None:
        raise MemoryBudgetTooSmall(
            f"a {width}×{height} px picture does not fit the memory budget even in tiles: raise the budget "
            "(RESTYLE_MEMORY_BUDGET, --memory-budget) or ask for a smaller size"
        )
    return plan if len(plan.tiles) > 1 else None


def _smallest_crop(network: Network, layers: Collection[str], height: int, width: int) -> int:
    reach_ = deepest_reach(network, layers)
    side = reach_.stride + reach_.halo_before + reach_.halo_after
    return min(height, side) * min(width, side)
