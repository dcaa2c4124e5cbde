"""The three terms of the Gatys objective, normalised so that a weight means the same at any image size.

Departures from the paper, and why:
- Gram matrices are divided by the number of positions (H·W), so they are averages, not sums, and do not
  grow with the image.
- Each layer's content and style error is *relative*: the squared error divided by the target's energy.
  Layer activations differ by orders of magnitude (and arbitrarily so with random weights); relative errors
  put every layer on the same footing, so per-layer weights and the style/content trade-off stay meaningful
  whichever weights the network has.
- Guided Gram matrices (spatial control, ``core.masks``) are weighted means over a region's positions, divided
  by the weights' sum instead of H·W, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

_EPS = 1e-12


def gram_matrix(features: Tensor) -> Tensor:
    """Channel co-activation averaged over positions: [B, C, H, W] -> [B, C, C].

    Positions are gathered as rows of a [B, H·W, C] matrix, which is a free view of channels-last features
    (the layout the network runs in), and the transpose is left to the matmul kernel instead of copying.
    """
    batch, channels, height, width = features.shape
    rows = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
    gram: Tensor = _Gram.apply(rows)
    return gram


class _Gram(torch.autograd.Function):
    """Rows -> RowsᵀRows / N with a backward of one matrix product instead of autograd's two.

    Autograd treats the two operands of RowsᵀRows as unrelated, so it runs two products and then adds a
    transposed copy of one to the other. Since G is symmetric in Rows, dL/dRows = Rows (dG + dGᵀ) / N: one
    product, written straight into the channels-last layout the features live in. Of the three Gram products
    per layer and iteration (one forward, two backward) this drops one, and the transposed add with it.
    """

    @staticmethod
    def forward(ctx: Any, rows: Tensor) -> Tensor:
        ctx.save_for_backward(rows)
        return torch.bmm(rows.transpose(1, 2), rows).div_(rows.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (rows,) = ctx.saved_tensors
        return torch.bmm(rows, (grad + grad.transpose(1, 2)).div_(rows.shape[1]))


def guided_gram_matrix(features: Tensor, weights: Tensor) -> Tensor:
    """One Gram matrix per region, each a weighted mean over positions: [1, C, H, W] and [R, H, W] -> [R, C, C].

    G_r = Σ_p w_r(p) F_p F_pᵀ, where each region's weights (its mask squared, divided by their sum: ``core.regions``)
    sum to one; weights of 1 / (H·W) everywhere give ``gram_matrix``. A single picture, as the engine runs.
    """
    batch, channels, height, width = features.shape
    assert batch == 1, "guided Gram matrices are taken of one picture"
    rows = features.permute(0, 2, 3, 1).reshape(height * width, channels)
    gram: Tensor = _GuidedGram.apply(rows, weights.reshape(-1, height * width))
    return gram


class _GuidedGram(torch.autograd.Function):
    """Rows, weights -> [RowsᵀW_rRows for each region r], with W_r = diag(weights_r), holding no weighted copy.

    Autograd through ``rows * weights`` would keep one weighted copy of the layer per region for the backward
    pass; here only the rows (a free view of the features) and the weights are kept, each region's weighted copy
    lives for the one product that needs it, and the backward is one product per region: since G_r is symmetric
    in Rows, dL/dRows = Σ_r W_r Rows (dG_r + dG_rᵀ).
    """

    @staticmethod
    def forward(ctx: Any, rows: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(rows, weights)
        grams = rows.new_empty(weights.shape[0], rows.shape[1], rows.shape[1])
        for region, region_weights in enumerate(weights):
            torch.mm(rows.T, rows * region_weights[:, None], out=grams[region])
        return grams

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        rows, weights = ctx.saved_tensors
        symmetric = grad + grad.transpose(1, 2)
        gradient = rows.mm(symmetric[0]).mul_(weights[0][:, None])
        for region in range(1, weights.shape[0]):
            gradient.addcmul_(rows.mm(symmetric[region]), weights[region][:, None])
        return gradient, None


@dataclass(frozen=True)
class GuidedTargets:
    """What a masked run compares one style layer with: per region, its weights on the layer's positions (mask
    squared over its sum, [R, H, W]), its target Gram matrix ([R, C, C]) with that target's energy ([R]), and its
    factor in the layer's style error ([R]: its styles' blend weight times its share of the positions)."""

    weights: Tensor
    grams: Tensor
    energies: Tensor
    factors: Tensor


def guided_style_loss(features: Tensor, targets: GuidedTargets) -> Tensor:
    """Σ_r factor_r · ‖G_r − T_r‖² / ‖T_r‖²: every region's relative Gram error, weighted by its factor."""
    grams = guided_gram_matrix(features, targets.weights)
    errors = (grams - targets.grams).pow(2).sum((1, 2)) / targets.energies
    return (errors * targets.factors).sum()


def relative_error(value: Tensor, target: Tensor) -> Tensor:
    """||value - target||² / ||target||²: zero when they match, about one when value carries no information."""
    return (value - target).pow(2).sum() / energy(target)


def energy(target: Tensor) -> Tensor:
    """||target||², the denominator of every relative error, kept off zero for an all-zero target."""
    return target.pow(2).sum().clamp_min(_EPS)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Feature reconstruction error against the content image's features at the same layer."""
    return relative_error(features, target)


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Gram matrix error against the (possibly blended) style Gram at the same layer."""
    return relative_error(gram_matrix(features), target_gram)


def tv_loss(image: Tensor) -> Tensor:
    """Mean squared difference between neighbouring pixels; penalises high-frequency noise."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def tv_loss_into(image: Tensor, weight: float, gradient: Tensor) -> Tensor:
    """``tv_loss(image)``, adding ``weight`` times its gradient into ``gradient`` in place.

    The tiled evaluation's way: autograd would hold four picture-sized buffers for the differences and their
    squares, where this holds one at a time; each is as large as the picture, which at print sizes is the
    memory that tiling exists to save.
    """
    loss = torch.zeros((), device=image.device)
    for dim in (-1, -2):
        length = image.shape[dim]
        difference = image.narrow(dim, 1, length - 1) - image.narrow(dim, 0, length - 1)
        loss += torch.linalg.vector_norm(difference).square() / difference.numel()
        difference.mul_(2 * weight / difference.numel())
        gradient.narrow(dim, 1, length - 1).add_(difference)
        gradient.narrow(dim, 0, length - 1).sub_(difference)
        del difference
    return loss
