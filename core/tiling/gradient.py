"""The gradient of the weighted content and style losses of a whole picture, computed tile by tile.

Two passes over the plan's tiles (the package's docstring says why they are exact): the first, without
autograd, sums each layer's Gram matrix and content error over the positions each tile owns; the second runs
each tile forward and backward from its owned positions, whose upstream gradient the sums have fixed. The
first pass's last tile keeps its graph and opens the second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from core.losses import GuidedTargets, energy
from core.networks import stride
from core.tiling.geometry import Tile, TilePlan
from core.tiling.sums import bands, gram_sum, rows, weighted_gram_sums
from core.vgg import FeatureNet


@dataclass(frozen=True)
class LayerTargets:
    """What the picture is compared with at one layer, and the weight of each comparison in the total loss
    (the group's weight times the layer's share of it). ``guided``: the regions of a masked run (``core.masks``),
    whose errors count with ``style_weight`` as ``gram``'s does."""

    content: Tensor | None
    gram: Tensor | None
    content_weight: float
    style_weight: float
    guided: GuidedTargets | None = None


TileCheck = Callable[[], None]


class _Layer:
    """One layer's part of a tiled evaluation: sums over owned positions, then the upstream gradient."""

    def __init__(self, name: str, target: LayerTargets, height: int, width: int) -> None:
        self.name, self.target, self.height, self.width = name, target, height, width
        step = stride(name)
        self.positions = (height // step) * (width // step)
        self.gram_sum: Tensor | None = None
        self.guided_sums: Tensor | None = None
        self.squared_error: Tensor | None = None
        self.style_factor: Tensor | None = None
        self.guided_factors: Tensor | None = None
        self.content_factor = 0.0

    def owned(self, tile: Tile, features: Tensor) -> Tensor:
        return tile.owned(features, self.name, self.height, self.width)

    def content_target(self, tile: Tile) -> Tensor:
        assert self.target.content is not None
        return tile.owned_of_whole(self.target.content, self.name, self.height, self.width)

    def guided_weights(self, tile: Tile) -> Tensor:
        """The owned block's part of each region's weights: [R, h, w]. A position's weight depends on its own
        block of the mask alone (``core.regions.layer_mask``), so slicing the whole layer's weights is exact."""
        assert self.target.guided is not None
        return tile.owned_of_whole(self.target.guided.weights, self.name, self.height, self.width)

    def accumulate(self, tile: Tile, owned: Tensor) -> None:
        if self.target.gram is not None:
            product = gram_sum(owned)
            self.gram_sum = product if self.gram_sum is None else self.gram_sum.add_(product)
        if self.target.guided is not None:
            sums = weighted_gram_sums(owned, self.guided_weights(tile))
            self.guided_sums = sums if self.guided_sums is None else self.guided_sums.add_(sums)
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
        guided = self.target.guided
        if guided is not None and self.guided_sums is not None:
            # Guided: G_r = Σ w_r(p)·F_pF_pᵀ with weights summing to one, and the error Σ_r f_r·‖G_r − T_r‖² / ‖T_r‖²,
            # so dE/dRows = Σ_r 4·f_r·W_r·Rows·(G_r − T_r) / ‖T_r‖², each region's factor fixed here.
            difference = self.guided_sums - guided.grams
            guided_error = (difference.pow(2).sum((1, 2)) / guided.energies * guided.factors).sum()
            style_error = guided_error if style_error is None else style_error + guided_error
            scale = 4 * self.target.style_weight * guided.factors / guided.energies
            self.guided_factors = difference.mul_(scale[:, None, None])
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
            by_position = owned.new_empty(batch, height, width, channels)
            for band in bands(height, width):
                by_position[:, band] = rows(owned[..., band, :]).mm(self.style_factor).view(batch, -1, width, channels)
            gradient = by_position.permute(0, 3, 1, 2)
        if self.guided_factors is not None:
            guided = self._guided_upstream(tile, owned, self.guided_factors)
            gradient = guided if gradient is None else gradient.add_(guided)
        if self.target.content is not None:
            content = (owned - self.content_target(tile)).mul_(self.content_factor)
            gradient = content if gradient is None else gradient.add_(content)
        assert gradient is not None
        return gradient

    def _guided_upstream(self, tile: Tile, owned: Tensor, factors: Tensor) -> Tensor:
        """Σ_r W_r·Rows·factor_r over the owned block, one region's product at a time."""
        batch, channels, height, width = owned.shape
        weights = self.guided_weights(tile)
        by_position = owned.new_empty(batch, height, width, channels)
        for band in bands(height, width):
            band_rows = rows(owned[..., band, :])
            band_weights = weights[:, band, :].reshape(len(factors), -1)
            gradient = band_rows.mm(factors[0]).mul_(band_weights[0][:, None])
            for region in range(1, len(factors)):
                gradient.addcmul_(band_rows.mm(factors[region]), band_weights[region][:, None])
            by_position[:, band] = gradient.view(batch, -1, width, channels)
        return by_position.permute(0, 3, 1, 2)


class _Upstream(torch.autograd.Function):
    """A zero standing for one layer's share of the loss, whose backward is that share's gradient.

    Backpropagating from these rather than from upstream tensors made in advance lets autograd make each
    layer's gradient only when the backward pass reaches the layer, once the deeper layers' buffers are freed,
    as the untiled pass does; made in advance, every layer's upstream gradient would be held at the peak too.
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
