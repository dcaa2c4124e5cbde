"""Spatial control after Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural
Style Transfer" (CVPR 2017): which style paints where on the photo, and which part of its painting it draws from.

A mask is a picture whose grey levels are weights, white 1 and black 0: ``StyleMask.photo`` says where on the photo
its style paints, ``StyleMask.painting`` which part of the painting its statistics come from. Any mode is read as
greyscale (``L``); levels up to ``BLACK_LEVEL`` count as black, so a JPEG's noise in a black area paints nothing.
A mask of another size or aspect is stretched to the picture it describes, each axis on its own, with Pillow's
bilinear filter on float weights: shrinking, that filter averages every source pixel under each output pixel, so
a thin brush stroke thins out instead of vanishing between samples; enlarging, it interpolates linearly; and as a
filter without negative lobes it never rings past 0 or 1, so the weights stay weights. Masks are never quantised
back to 8 bits once scaled, so a faint stroke on a large mask keeps a small weight at a coarse stage instead of
rounding to black.

How the style term uses them (``core.regions``, ``core.losses.guided_style_loss``):

- **Guided Gram matrices.** Styles that share a photo mask form one region (styles without one share the whole
  photo, blended in Gram space as without masks). Each region's mask, carried to a style layer, weights the
  feature maps before the Gram matrix: G_r = Σ_p m_r(p)² F_p F_pᵀ / Σ_p m_r(p)², a mean over the region's
  positions instead of the whole picture's, so each region is compared with its own painting's statistics, not
  with a mixture. The target is the painting's Gram, weighted the same way by its painting mask where one is
  given. Normalising by the mask's own mass makes a region's statistics independent of its size; its error is
  then weighted by its share of the layer's positions (Σ m² / N) times its styles' blend weights, so that every
  pixel of a region is pulled as hard as an unmasked run pulls it, whatever the region's size: with one region
  covering everything, all of this reduces to the unmasked run's term.
- **Carried to each layer on its pooling grid, not through the receptive fields.** A position of a layer of stride
  s takes the mean of the mask over the s×s block of pixels it sits on, the block its pooling windows were made
  from, whose centre is the centre of its receptive field, so a region's edge lies where it lies on the photo at
  every depth. The paper compares such resizing with propagating masks through the receptive fields: a position
  counts for a region only as far as its whole receptive field lies inside it. That keeps the style's gradient
  inside the region, but relu5_1 sees 132 px (VGG16) to 156 px (VGG19), so it takes every narrower region out of
  the deep layers, and with them the painting's large strokes, and it leaves the painted region unpainted for
  half a receptive field from its edge. What it would spare the uncovered side is little, because most of what
  moves there is the content term's own reach: relu4_2's positions beside the edge see the painted pixels across
  it and pull their own side to make up for them (bench/RESULTS.md compares the two). A block mean also depends on
  no other pixel, so a tiled run slices each layer's weights by the tiles' owned positions and needs no halo for
  the masks: the tiled gradient stays exact.
- **Uncovered regions keep the photo.** Where every given mask is black, no region's Gram matrix weights a position,
  so no style pulls there and the content term holds those pixels at the photo's, but for a soft margin beside a
  region's edge, where the deep style layers and the content term reach across it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from core.errors import MaskAllBlack, MaskCountMismatch

# Grey levels (of 255) at or below which a mask's pixel is black: the noise a JPEG leaves in a black area.
BLACK_LEVEL = 4
_WHITE = 255


@dataclass(frozen=True)
class StyleMask:
    """The masks of one style: ``photo``, where on the photo it paints (None: everywhere); ``painting``, which part
    of its painting it draws statistics from (None: all of it). Grey levels are weights from black 0 to white 1,
    in any mode and at any size: each is scaled to the picture it describes (the module's docstring says how)."""

    photo: Image.Image | None = None
    painting: Image.Image | None = None


def check_masks(masks: Sequence[StyleMask | None] | None, styles: int) -> list[StyleMask | None]:
    """One entry per style, None where a style has no mask, after refusing masks that cannot steer their style:
    ``MaskCountMismatch`` when the count differs from ``styles``, ``MaskAllBlack`` for a mask with no pixel above
    ``BLACK_LEVEL``. Torch-free, so the API can refuse a mask at upload, before any work."""
    if masks is None:
        return [None] * styles
    if len(masks) != styles:
        raise MaskCountMismatch(
            f"{len(masks)} mask entries were given for {styles} style image(s): give one per style, in the styles' "
            "order (none for a style that paints everywhere)"
        )
    checked: list[StyleMask | None] = []
    for number, mask in enumerate(masks, 1):
        if mask is not None and mask.photo is not None and is_all_black(mask.photo):
            raise MaskAllBlack(f"the mask for style {number} is all black: it would paint nothing")
        if mask is not None and mask.painting is not None and is_all_black(mask.painting):
            raise MaskAllBlack(f"the painting mask for style {number} is all black: it would draw from nothing")
        has_any = mask is not None and (mask.photo is not None or mask.painting is not None)
        checked.append(mask if has_any else None)
    return checked


def is_all_black(mask: Image.Image) -> bool:
    """Whether no pixel of ``mask``, read as greyscale, is above ``BLACK_LEVEL``."""
    _, brightest = mask.convert("L").getextrema()
    assert isinstance(brightest, int)
    return brightest <= BLACK_LEVEL


def mask_weights(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``mask`` as float weights in 0..1 (mode ``F``) stretched to ``size`` (width, height): greyscale, black up
    to ``BLACK_LEVEL``, scaled bilinearly as the module's docstring says."""
    grey = mask.convert("L").point(lambda level: 0 if level <= BLACK_LEVEL else level)
    weights = grey.convert("F").point(lambda level: level / _WHITE)
    return weights if weights.size == size else weights.resize(size, Image.Resampling.BILINEAR)
