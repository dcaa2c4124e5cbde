"""The three terms of the Gatys objective, normalised so that a weight means the same at any image size.

Departures from the paper, and why:
- Gram matrices are divided by the number of positions (H·W), so they are averages, not sums, and do not
  grow with the image.
- Each layer's content and style error is *relative*: the squared error divided by the target's energy.
  Layer activations differ by orders of magnitude (and arbitrarily so with random weights); relative errors
  put every layer on the same footing, so per-layer weights and the style/content trade-off stay meaningful
  whichever weights the network has.
"""

from __future__ import annotations

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
