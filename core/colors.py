"""Colour preservation after Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic
Style Transfer" (2016): either transfer luminance only and keep the photo's chroma, or first recolour the
painting so its colour statistics match the photo's."""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

# Added to each covariance's diagonal, so that a flat picture (or masked part) still has an invertible one.
_COVARIANCE_FLOOR = 1e-5


def match_color_statistics(
    style: Tensor, content: Tensor, style_weights: Tensor | None = None, content_weights: Tensor | None = None
) -> Tensor:
    """Affinely map the style pixels ([3, H, W], 0–1) so their mean and covariance equal the content's.

    Uses the symmetric square roots of the covariances (the paper's "image analogies" variant), which
    recolours without rotating hues the way a Cholesky factor can. Weights ([H, W] of either picture, from
    spatial-control masks) make each picture's statistics those of its masked part, so that a painting
    drawn on the sky is recoloured to the sky's colours, not to the whole photo's.
    """
    s = style.reshape(3, -1).double()
    c = content.reshape(3, -1).double()
    s_mean, s_covariance = _statistics(s, style_weights)
    c_mean, c_covariance = _statistics(c, content_weights)
    transform = _sqrtm(c_covariance) @ torch.linalg.inv(_sqrtm(s_covariance))
    matched = transform @ (s - s_mean) + c_mean
    return matched.reshape(style.shape).clamp(0, 1).to(style.dtype)


def _statistics(pixels: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean ([3, 1]) and covariance of [3, N] pixels, weighted per pixel when ``weights`` are given."""
    if weights is None:
        return pixels.mean(1, keepdim=True), _covariance(pixels)
    share = weights.reshape(1, -1).double()
    share = share / share.sum().clamp_min(torch.finfo(share.dtype).tiny)
    mean = (pixels * share).sum(1, keepdim=True)
    centred = pixels - mean
    return mean, (centred * share) @ centred.T + _COVARIANCE_FLOOR * torch.eye(3, dtype=pixels.dtype)


def luminance_only(image: Image.Image) -> Image.Image:
    """The picture's luminance as a grey RGB picture, so the optimisation sees no colour at all."""
    return image.convert("L").convert("RGB")


def match_luminance(style: Image.Image, content: Image.Image) -> Image.Image:
    """Shift and scale the style's luminance to the content's mean and spread (the paper's eq. 6)."""
    s = pil_to_tensor(style.convert("L")).double()
    c = pil_to_tensor(content.convert("L")).double()
    matched = (s - s.mean()) * (c.std() / s.std().clamp_min(1e-6)) + c.mean()
    return to_pil_image(matched.round().clamp(0, 255).to(torch.uint8)).convert("RGB")


def with_chroma_of(luminance_source: Image.Image, chroma_source: Image.Image) -> Image.Image:
    """Combine one picture's luminance (Y) with another's chroma (Cb, Cr); both must be the same size."""
    y, _, _ = luminance_source.convert("YCbCr").split()
    _, cb, cr = chroma_source.convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def _covariance(pixels: Tensor) -> Tensor:
    centred = pixels - pixels.mean(1, keepdim=True)
    return centred @ centred.T / pixels.shape[1] + _COVARIANCE_FLOOR * torch.eye(3, dtype=pixels.dtype)


def _sqrtm(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
