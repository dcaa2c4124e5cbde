"""The regions of a masked run and what each compares with at every style layer (``core.masks`` says why it is
built this way): styles grouped by their photo masks, each mask carried to a layer on the layer's pooling grid,
and the stacked per-layer targets that ``core.losses.guided_style_loss`` takes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from core.losses import GuidedTargets, energy
from core.masks import mask_weights
from core.networks import stride


@dataclass(frozen=True)
class Region:
    """Where a group of styles paints: ``mask`` on the photo's grid ([H, W], 0..1), None for everywhere; and the
    indices of the styles that paint there, blended in Gram space as styles without masks are."""

    mask: Tensor | None
    styles: tuple[int, ...]


def grid_mask(mask: Image.Image, size: tuple[int, int], device: torch.device) -> Tensor:
    """``mask`` as weights in 0..1 on a picture of ``size`` (width, height): a [height, width] float tensor."""
    weights = np.array(mask_weights(mask, size), dtype=np.float32)
    return torch.from_numpy(weights).to(device)


def layer_mask(mask: Tensor, layer: str) -> Tensor:
    """A picture-grid mask ([H, W]) on ``layer``'s positions: each position takes the mean of the mask over the
    stride × stride block of pixels it sits on, the block its pooling windows were made from. The layer's
    pooling floors a picture's sides, and so does this, so the two grids agree position for position."""
    step = stride(layer)
    return mask if step == 1 else F.avg_pool2d(mask[None, None], step)[0, 0]


def normalised(mask: Tensor) -> tuple[Tensor, Tensor]:
    """A layer mask's weights for a guided Gram matrix, m² / Σm² (all zero where the mask is), and its share of
    the layer's positions, Σm² / N."""
    squared = mask.square()
    mass = squared.sum()
    weights = squared / mass.clamp_min(torch.finfo(mask.dtype).tiny)
    return weights, mass / mask.numel()


def painting_weights(mask: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
    """A painting mask's weights at each of ``layers``, which make a guided Gram matrix of the painting its
    statistics over the masked part."""
    return {layer: normalised(layer_mask(mask, layer))[0] for layer in layers}


def group(photo_masks: Sequence[Tensor | None]) -> list[Region]:
    """The regions that styles with these photo masks paint, in the order styles first name them: styles with the
    same mask (the same grey levels on the photo's grid) share a region, and so do styles with none."""
    regions: list[tuple[Tensor | None, list[int]]] = []
    for index, mask in enumerate(photo_masks):
        for region_mask, styles in regions:
            if (mask is None and region_mask is None) or (
                mask is not None and region_mask is not None and torch.equal(mask, region_mask)
            ):
                styles.append(index)
                break
        else:
            regions.append((mask, [index]))
    return [Region(mask, tuple(styles)) for mask, styles in regions]


def guided_targets(
    regions: Sequence[Region],
    style_grams: Sequence[Mapping[str, Tensor]],
    blend: Sequence[float],
    layers: Collection[str],
    size: tuple[int, int],
) -> dict[str, GuidedTargets]:
    """Each style layer's targets for ``guided_style_loss`` on a photo of ``size`` (height, width): per region,
    the blend of its styles' Gram matrices (``style_grams``, [1, C, C] each, by layer), its weights on the
    layer, and its factor, the sum of its styles' ``blend`` weights times its share of the layer's positions."""
    height, width = size
    targets: dict[str, GuidedTargets] = {}
    for layer in layers:
        step = stride(layer)
        weights, grams, factors = [], [], []
        for region in regions:
            share_of_blend = sum(blend[index] for index in region.styles)
            # A region whose styles all have blend weight 0 paints nothing: factor 0, any target will do.
            divisor = share_of_blend if share_of_blend > 0 else 1.0
            gram = blend[region.styles[0]] * style_grams[region.styles[0]][layer][0]
            for index in region.styles[1:]:
                gram = gram + blend[index] * style_grams[index][layer][0]
            if region.mask is None:
                positions = (height // step, width // step)
                region_weights, share = normalised(style_grams[region.styles[0]][layer].new_ones(positions))
            else:
                region_weights, share = normalised(layer_mask(region.mask, layer))
            weights.append(region_weights)
            grams.append(gram / divisor)
            factors.append(share * share_of_blend)
        stacked = torch.stack(grams)
        targets[layer] = GuidedTargets(
            weights=torch.stack(weights),
            grams=stacked,
            energies=torch.stack([energy(gram) for gram in stacked]),
            factors=torch.stack(factors).to(stacked.dtype),
        )
    return targets
