"""A whole picture's features and Gram matrices without autograd, gathered tile by tile when it is tiled.

What the picture is compared with (the photo's content features, the paintings' Gram matrices) is computed
once per stage; a plan of tiles bounds its memory as it bounds the gradient's.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor

from core.losses import gram_matrix
from core.networks import stride
from core.tiling.geometry import TilePlan
from core.tiling.sums import gram_sum
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
                product = gram_sum(tile.owned(features, layer, height, width))
                sums[layer] = sums[layer].add_(product) if layer in sums else product
        return {
            layer: (total / ((height // stride(layer)) * (width // stride(layer))))[None]
            for layer, total in sums.items()
        }
