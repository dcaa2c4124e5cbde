"""The exact gradient of a whole picture, computed tile by tile so that memory follows the tile, not the picture.

Every loss term is a sum over feature positions: the content error directly, the style error through the Gram
matrix, itself a sum of outer products over positions. So a pass without autograd over overlapping tiles
gathers each layer's whole-picture Gram matrix and content error, counting each position once (the positions
a tile *owns*); once those are known, the upstream gradient of every owned position is known too, and a second
pass runs each tile forward and backward from its owned positions alone and adds the tile's input gradient
into the picture's. The last tile of the first pass keeps its autograd graph and opens the second pass, so
one tile in each evaluation is run once, not twice.

Exactness needs two things of the tiles, both found from the network's layer arithmetic in ``Reach``:
- each crop starts on the grid of the deepest layer's stride, so every pooling window falls where it falls
  on the whole picture;
- each crop reaches past its owned block by the receptive field of the deepest layer (80 px before and
  70 px after for VGG19's relu5_1), so no owned position sees the crop's zero padding.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import Tensor

from core.losses import energy, gram_matrix
from core.networks import Network, stride
from core.networks import Reach as Reach  # part of this module's interface: what ``reach`` returns
from core.vgg import FeatureNet

# A forward and backward pass costs about two forward passes: the network's weights are frozen, so the
# backward pass computes the gradient of each layer's input only, not of its weights.
PASS_COST = 2


@cache
def reach(network: Network, layer: str) -> Reach:
    return network.reach(layer)


def deepest_reach(network: Network, layers: Collection[str]) -> Reach:
    return reach(network, network.deepest(layers))


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


@dataclass(frozen=True)
class LayerTargets:
    """What the picture is compared with at one layer, and the weight of each comparison in the total loss
    (the group's weight times the layer's share of it)."""

    content: Tensor | None
    gram: Tensor | None
    content_weight: float
    style_weight: float


TileCheck = Callable[[], None]


class _Layer:
    """One layer's part of a tiled evaluation: sums over owned positions, then the upstream gradient."""

    def __init__(self, name: str, target: LayerTargets, height: int, width: int) -> None:
        self.name, self.target, self.height, self.width = name, target, height, width
        step = stride(name)
        self.positions = (height // step) * (width // step)
        self.gram_sum: Tensor | None = None
        self.squared_error: Tensor | None = None
        self.style_factor: Tensor | None = None
        self.content_factor = 0.0

    def owned(self, tile: Tile, features: Tensor) -> Tensor:
        return tile.owned(features, self.name, self.height, self.width)

    def content_target(self, tile: Tile) -> Tensor:
        assert self.target.content is not None
        return tile.owned_of_whole(self.target.content, self.name, self.height, self.width)

    def accumulate(self, tile: Tile, owned: Tensor) -> None:
        if self.target.gram is not None:
            product = _gram_sum(owned)
            self.gram_sum = product if self.gram_sum is None else self.gram_sum.add_(product)
        if self.target.content is not None:
            error = (owned - self.content_target(tile)).pow(2).sum()
            self.squared_error = error if self.squared_error is None else self.squared_error.add_(error)

    def errors(self) -> tuple[Tensor | None, Tensor | None]:
        """The relative content and style errors of the whole picture, as the untiled losses define them; also
        fixes the upstream gradient.

        With G = ΣRowsᵀRows / N over the whole picture and E = ‖G − T‖² / ‖T‖², dE/dRows = 4·Rows·(G − T) /
        (‖T‖²·N), since G − T is symmetric; for the content, dE/dF = 2·(F − C) / ‖C‖².
        """
        content_error = style_error = None
        if self.target.gram is not None and self.gram_sum is not None:
            target_energy = energy(self.target.gram)
            difference = self.gram_sum.div(self.positions) - self.target.gram[0]
            style_error = difference.pow(2).sum() / target_energy
            self.style_factor = difference.mul_(4 * self.target.style_weight / self.positions) / target_energy
        if self.target.content is not None and self.squared_error is not None:
            target_energy = energy(self.target.content)
            content_error = self.squared_error / target_energy
            self.content_factor = 2 * self.target.content_weight / target_energy.item()
        return content_error, style_error

    def upstream(self, tile: Tile, owned: Tensor) -> Tensor:
        """dLoss/d(owned features) for this tile, in the owned block's shape."""
        gradient: Tensor | None = None
        if self.style_factor is not None:
            batch, channels, height, width = owned.shape
            rows = owned.new_empty(batch, height, width, channels)
            for band in _bands(height, width):
                rows[:, band] = _rows(owned[..., band, :]).mm(self.style_factor).view(batch, -1, width, channels)
            gradient = rows.permute(0, 3, 1, 2)
        if self.target.content is not None:
            content = (owned - self.content_target(tile)).mul_(self.content_factor)
            gradient = content if gradient is None else gradient.add_(content)
        assert gradient is not None
        return gradient


class _Upstream(torch.autograd.Function):
    """A zero standing for one layer's share of the loss, whose backward is that share's gradient.

    Backpropagating from these rather than from upstream tensors made in advance lets autograd make each
    layer's gradient only when the backward pass reaches the layer, once the deeper layers' buffers are freed,
    as the untiled pass does; made in advance, they held about 130 values a pixel more at the peak.
    """

    @staticmethod
    def forward(ctx: Any, owned: Tensor, layer: _Layer, tile: Tile) -> Tensor:
        ctx.save_for_backward(owned)
        ctx.layer, ctx.tile = layer, tile
        return owned.new_zeros(())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (owned,) = ctx.saved_tensors
        return ctx.layer.upstream(ctx.tile, owned).mul_(grad), None, None


def tiled_gradient(
    net: FeatureNet,
    image: Tensor,
    targets: Mapping[str, LayerTargets],
    pooling: str,
    plan: TilePlan,
    grad: Tensor,
    between_tiles: TileCheck,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Write into ``grad`` the gradient of the weighted content and style losses in ``image``, and return each
    layer's relative content and style errors (what the untiled losses compute) as 0-d tensors."""
    height, width = image.shape[-2:]
    layers = [_Layer(name, target, height, width) for name, target in targets.items()]
    kept: tuple[Tensor, dict[str, Tensor]] | None = None
    for index, tile in enumerate(plan.tiles):
        between_tiles()
        last = index == len(plan.tiles) - 1
        crop = tile.crop(image).detach().requires_grad_(last)
        with torch.set_grad_enabled(last):
            features = net(crop, targets.keys(), pooling)
        for layer in layers:
            layer.accumulate(tile, layer.owned(tile, features[layer.name].detach()))
        if last:
            kept = crop, features
        del crop, features
    content_errors: dict[str, Tensor] = {}
    style_errors: dict[str, Tensor] = {}
    for layer in layers:
        content_error, style_error = layer.errors()
        if content_error is not None:
            content_errors[layer.name] = content_error
        if style_error is not None:
            style_errors[layer.name] = style_error
    grad.zero_()
    for tile in (plan.tiles[-1], *plan.tiles[:-1]):
        if kept is not None:
            (crop, features), kept = kept, None
        else:
            between_tiles()
            crop = tile.crop(image).detach().requires_grad_(True)
            features = net(crop, targets.keys(), pooling)
        shares = [_Upstream.apply(layer.owned(tile, features[layer.name]), layer, tile) for layer in layers]
        torch.autograd.backward(shares)
        assert crop.grad is not None
        tile.crop(grad).add_(crop.grad)
        del crop, features, shares
    return content_errors, style_errors


# Positions copied at a time when owned features are turned into rows, so the copy stays small.
_BAND_POSITIONS = 2**16


def _bands(height: int, width: int) -> list[slice]:
    step = max(1, _BAND_POSITIONS // width)
    return [slice(start, start + step) for start in range(0, height, step)]


def _gram_sum(owned: Tensor) -> Tensor:
    """ΣRowsᵀRows over the owned positions (not divided by their count), a band of rows at a time."""
    channels, height, width = owned.shape[1:]
    total = owned.new_zeros(channels, channels)
    for band in _bands(height, width):
        rows = _rows(owned[..., band, :])
        total.addmm_(rows.T, rows)
    return total


def _rows(owned: Tensor) -> Tensor:
    """Owned positions as rows of a [positions, channels] matrix (a copy: an owned block is not contiguous)."""
    return owned.permute(0, 2, 3, 1).reshape(-1, owned.shape[1])


def whole_features(
    net: FeatureNet, picture: Tensor, layers: Collection[str], pooling: str, plan: TilePlan | None
) -> dict[str, Tensor]:
    """Features of a whole picture without autograd, assembled from the tiles' owned parts when tiled."""
    with torch.no_grad():
        if plan is None:
            return net(picture, layers, pooling)
        height, width = picture.shape[-2:]
        whole: dict[str, Tensor] = {}
        for tile in plan.tiles:
            for layer, features in net(tile.crop(picture), layers, pooling).items():
                if layer not in whole:
                    step = stride(layer)
                    whole[layer] = features.new_zeros(1, features.shape[1], height // step, width // step)
                owned = tile.owned(features, layer, height, width)
                tile.owned_of_whole(whole[layer], layer, height, width).copy_(owned)
        return whole


def whole_grams(
    net: FeatureNet, picture: Tensor, layers: Collection[str], pooling: str, plan: TilePlan | None
) -> dict[str, Tensor]:
    """Gram matrices of a whole picture without autograd ([1, C, C], as ``gram_matrix`` gives), summed over the
    tiles' owned positions when tiled."""
    with torch.no_grad():
        if plan is None:
            return {layer: gram_matrix(features) for layer, features in net(picture, layers, pooling).items()}
        height, width = picture.shape[-2:]
        sums: dict[str, Tensor] = {}
        for tile in plan.tiles:
            for layer, features in net(tile.crop(picture), layers, pooling).items():
                product = _gram_sum(tile.owned(features, layer, height, width))
                sums[layer] = sums[layer].add_(product) if layer in sums else product
        return {
            layer: (total / ((height // stride(layer)) * (width // stride(layer))))[None]
            for layer, total in sums.items()
        }
