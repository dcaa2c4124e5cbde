"""The temporal term of a video frame's objective, after Ruder, Dosovitskiy & Brox ("Artistic style transfer for
videos", GCPR 2016): the frame's result is pulled towards the previous frame's result carried along the optical
flow, wherever that flow can be trusted. ``core.video`` computes the flow and the trust; this module is the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TemporalTarget:
    """What the previous frame asks of this one.

    ``previous`` is its result warped into this frame ([1, 3, H, W], 0–1) and ``reliability`` how far each pixel's
    warp is trusted ([1, 1, H, W], 0–1; 0 where the flow is inconsistent: disocclusions and motion boundaries).
    ``weight`` is the user's temporal weight, in the units of ``core.params``' other weights (see
    ``temporal_gradient_scale``).
    """

    previous: Tensor
    reliability: Tensor
    weight: float

    def at_size(self, height: int, width: int) -> TemporalTarget:
        """The same target for a picture of another size (a coarse stage), both maps resampled smoothly."""
        if self.previous.shape[-2:] == (height, width):
            return self
        previous = F.interpolate(self.previous, size=(height, width), mode="bilinear", align_corners=False)
        reliability = F.interpolate(self.reliability, size=(height, width), mode="bilinear", align_corners=False)
        return TemporalTarget(previous.clamp(0, 1), reliability.clamp(0, 1), self.weight)


def temporal_loss(image: Tensor, target: TemporalTarget) -> Tensor:
    """(1/D) Σ c · (x − ω)², D the number of channel values: Ruder et al.'s short-term temporal loss."""
    return (target.reliability * (image - target.previous).pow(2)).mean()


def temporal_loss_into(image: Tensor, target: TemporalTarget, weight: float, gradient: Tensor) -> Tensor:
    """``temporal_loss(image, target)``, adding ``weight`` times its gradient into ``gradient`` in place: the tiled
    evaluation's way, as ``core.losses.tv_loss_into`` is for smoothing."""
    difference = (image - target.previous).mul_(target.reliability)
    loss = (difference * (image - target.previous)).mean()
    gradient.add_(difference, alpha=2 * weight / image.numel())
    return loss


def temporal_gradient_scale(image: Tensor, step: float) -> float:
    """The length of ``temporal_loss``' gradient in a fully reliable picture of ``image``'s size whose every channel
    value is ``step`` from its target: 2·step/√D.

    The engine divides the temporal weight by it, as it divides the other weights by their gradients' lengths at
    its balance point (``core.engine.BALANCE_STEP`` from the photo), so that ``temporal_weight / content_weight``
    reads as how much harder the previous frame pulls than the photo when the picture is that far from each. It is
    computed, not measured: the loss is a plain quadratic, so its gradient's length is known at any distance.
    """
    return 2.0 * step / float(image.numel()) ** 0.5


def reliable_share(target: TemporalTarget) -> float:
    """The share of the picture whose warp is trusted, for reports: 1 when the flow is consistent everywhere."""
    return float(torch.mean(target.reliability))
