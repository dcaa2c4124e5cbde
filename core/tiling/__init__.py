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

The modules, in the order a run meets them:
- ``halos``: how far past its owned block a crop reaches, and on which grid it starts (``reach``);
- ``geometry``: tiles, their crops and owned blocks, and the grid with the least work that fits (``plan_tiles``);
- ``features``: a whole picture's features and Gram matrices gathered tile by tile (the targets);
- ``gradient``: the losses' gradient, tile by tile (``tiled_gradient``);
- ``sums``: the sums over owned positions that the last two share.
"""

from __future__ import annotations

from core.tiling.features import whole_features, whole_grams
from core.tiling.geometry import PASS_COST, Span, Tile, TilePlan, grid, plan_tiles, split
from core.tiling.gradient import LayerTargets, TileCheck, tiled_gradient
from core.tiling.halos import Reach, deepest_reach, reach

__all__ = [
    "PASS_COST",
    "LayerTargets",
    "Reach",
    "Span",
    "Tile",
    "TileCheck",
    "TilePlan",
    "deepest_reach",
    "grid",
    "plan_tiles",
    "reach",
    "split",
    "tiled_gradient",
    "whole_features",
    "whole_grams",
]
