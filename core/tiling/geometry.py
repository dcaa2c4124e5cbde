"""Where the tiles lie: each one's crop and owned block, a grid of them, and the grid a memory limit allows.

Arithmetic on pixel positions only: a tile cuts a tensor with slices, but nothing here computes on one.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.networks import Network, Reach, stride
from core.tiling.halos import deepest_reach

if TYPE_CHECKING:
    from torch import Tensor

# A forward and backward pass costs about two forward passes: the network's weights are frozen, so the
# backward pass computes the gradient of each layer's input only, not of its weights.
PASS_COST = 2


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the crop [start, stop) and the owned block [own_start, own_stop) inside it."""

    start: int
    stop: int
    own_start: int
    own_stop: int

    def owned_positions(self, stride: int, length: int) -> slice:
        """The owned positions of a layer of this ``stride``, counted on the whole picture.

        A block ending at the picture's edge owns up to the layer's last position (the layer floors the
        length), any other block up to its own end, which lies on the grid.
        """
        stop = length // stride if self.own_stop == length else self.own_stop // stride
        return slice(self.own_start // stride, stop)

    def owned_in_crop(self, stride: int, length: int) -> slice:
        """The same positions counted from the crop's first one (crops start on the grid, so this is exact)."""
        whole = self.owned_positions(stride, length)
        return slice(whole.start - self.start // stride, whole.stop - self.start // stride)


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    @property
    def pixels(self) -> int:
        return (self.rows.stop - self.rows.start) * (self.cols.stop - self.cols.start)

    def crop(self, picture: Tensor) -> Tensor:
        return picture[..., self.rows.start : self.rows.stop, self.cols.start : self.cols.stop]

    def owned(self, features: Tensor, layer: str, height: int, width: int) -> Tensor:
        """The part of this tile's features at ``layer`` that the tile owns (of a ``height``×``width`` picture)."""
        step = stride(layer)
        return features[..., self.rows.owned_in_crop(step, height), self.cols.owned_in_crop(step, width)]

    def owned_of_whole(self, features: Tensor, layer: str, height: int, width: int) -> Tensor:
        """The same positions in features of the whole picture (a target, or the assembled features)."""
        step = stride(layer)
        return features[..., self.rows.owned_positions(step, height), self.cols.owned_positions(step, width)]


@dataclass(frozen=True)
class TilePlan:
    """A grid of tiles covering a picture; ``tiles`` in the order the evaluation runs them."""

    height: int
    width: int
    tiles: tuple[Tile, ...]

    @property
    def largest(self) -> int:
        """Pixels of the largest crop: what one tile's pass costs in memory."""
        return max(tile.pixels for tile in self.tiles)

    @property
    def work(self) -> float:
        """Network work per evaluation relative to one untiled forward and backward pass: every crop's forward
        and backward, plus a second forward for all tiles but the one whose graph is kept."""
        crops = sum(tile.pixels for tile in self.tiles)
        repeated = crops - self.tiles[-1].pixels if len(self.tiles) > 1 else 0
        return (PASS_COST * crops + repeated) / (PASS_COST * self.height * self.width)


def split(length: int, reach_: Reach, parts: int) -> list[Span]:
    """``parts`` owned blocks of nearly equal size on the stride grid, the last one reaching the picture's end."""
    positions = length // reach_.stride
    bounds = [reach_.stride * (positions * i // parts) for i in range(parts)] + [length]
    return [
        Span(
            start=max(0, own_start - reach_.halo_before),
            stop=min(length, own_stop + reach_.halo_after),
            own_start=own_start,
            own_stop=own_stop,
        )
        for own_start, own_stop in itertools.pairwise(bounds)
    ]


def grid(network: Network, height: int, width: int, layers: Collection[str], rows: int, cols: int) -> TilePlan:
    reach_ = deepest_reach(network, layers)
    tiles = tuple(Tile(r, c) for r in split(height, reach_, rows) for c in split(width, reach_, cols))
    return TilePlan(height, width, tiles)


def plan_tiles(network: Network, height: int, width: int, layers: Collection[str], max_pixels: int) -> TilePlan | None:
    """The grid with the least work whose largest crop has at most ``max_pixels``; None when none has.

    A grid's largest crop is its longest row span times its longest column span, and its crops add up to the
    spans' totals multiplied, so each axis is split once per count and the grids compared by arithmetic.
    One tile (the untiled picture) wins whenever it fits, since it has the least work of all.
    """
    reach_ = deepest_reach(network, layers)
    rows = [_axis(height, reach_, parts) for parts in range(1, height // reach_.stride + 1)]
    cols = [_axis(width, reach_, parts) for parts in range(1, width // reach_.stride + 1)]
    best: tuple[float, int, int] | None = None
    for row_parts, (row_longest, row_total, row_last) in enumerate(rows, 1):
        for col_parts, (col_longest, col_total, col_last) in enumerate(cols, 1):
            if row_longest * col_longest > max_pixels:
                continue
            crops, last = row_total * col_total, row_last * col_last
            work = PASS_COST * crops + (crops - last if row_parts * col_parts > 1 else 0)
            if best is None or work < best[0]:
                best = (work, row_parts, col_parts)
            break  # more columns only add work once the crops fit
    return None if best is None else grid(network, height, width, layers, best[1], best[2])


def _axis(length: int, reach_: Reach, parts: int) -> tuple[int, int, int]:
    """(longest crop, total of the crops, last crop) of one axis split into ``parts``."""
    spans = [span.stop - span.start for span in split(length, reach_, parts)]
    return max(spans), sum(spans), spans[-1]
