"""A whole picture's features and Gram matrices without autograd, gathered tile by tile when it is tiled.

What the picture is compared with (the photo's content features, the paintings' Gram matrices) is computed
once per stage; a plan of tiles bounds its memory as it bounds the gradient's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import Tensor

from core.losses import gram_matrix, guided_gram_matrix
from core.networks import stride
from core.tiling.geometry import TilePlan
from core.tiling.sums import gram_sum, weighted_gram_sums
from core.vgg import FeatureNet


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
    net: FeatureNet,
    picture: Tensor,
    layers: Collection[str],
    pooling: str,
    plan: TilePlan | None,
    weights: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Gram matrices of a whole picture without autograd ([1, C, C], as ``gram_matrix`` gives), summed over the
    tiles' owned positions when tiled; guided by ``weights`` (each layer's, [H, W] summing to one: a painting
    mask's, ``core.regions.painting_weights``) when given."""
    with torch.no_grad():
        if plan is None:
            return {
                layer: gram_matrix(features) if weights is None else guided_gram_matrix(features, weights[layer][None])
                for layer, features in net(picture, layers, pooling).items()
            }
        height, width = picture.shape[-2:]
        sums: dict[str, Tensor] = {}
        for tile in plan.tiles:
            for layer, features in net(tile.crop(picture), layers, pooling).items():
                owned = tile.owned(features, layer, height, width)
                if weights is None:
                    product = gram_sum(owned)
                else:
                    product = weighted_gram_sums(
                        owned, tile.owned_of_whole(weights[layer][None], layer, height, width)
                    )[0]
                sums[layer] = sums[layer].add_(product) if layer in sums else product
        if weights is not None:  # the weights sum to one: the sums are the means already
            return {layer: total[None] for layer, total in sums.items()}
        return {
            layer: (total / ((height // stride(layer)) * (width // stride(layer))))[None]
            for layer, total in sums.items()
        }
