"""Optical flow between photo frames and the trust it deserves, as Ruder et al. use them.

Flow is DIS (Kroeger et al., ECCV 2016) from OpenCV: dense, fast on a CPU, and with no weights to fetch. It is
measured on the photo frames, never on results: the results are what the flow is to keep steady.

Trust follows the paper's forward–backward check. Where following the flow back to the previous frame and then
forward again does not return to the start, the pixel was hidden in the previous frame (a disocclusion); where the
flow changes sharply, the pixel sits on a motion boundary, where flow is least accurate. Both get no temporal pull,
and neither does a pixel whose flow leads outside the previous frame.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

# Ruder et al.'s thresholds, in pixels² of the frames they are computed on: a round trip off by more than 1% of the
# two flows' squared lengths plus half a pixel² is a disocclusion; a flow gradient beyond 1% of the flow's squared
# length plus 0.002 is a motion boundary.
ROUND_TRIP_SHARE = 0.01
ROUND_TRIP_SLACK = 0.5
BOUNDARY_SHARE = 0.01
BOUNDARY_SLACK = 0.002


@dataclass(frozen=True)
class FrameMotion:
    """How frame t relates to frame t−1, at frame t's size.

    ``backward`` ([2, H, W], pixels): for each pixel x of frame t, where it was in frame t−1 is x + backward(x).
    ``reliability`` ([1, 1, H, W], 0 or 1): whether that correspondence is trusted.
    """

    backward: Tensor
    reliability: Tensor

    def warp(self, previous: Tensor) -> Tensor:
        """``previous`` ([1, C, H, W], frame t−1's grid) carried into frame t: the value at x is
        previous(x + backward(x)), sampled bilinearly; outside the frame, the nearest edge."""
        return warp(previous, self.backward)


def dis_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """DIS flow from ``source`` to ``target`` (grey uint8 [H, W]): [H, W, 2] float32 such that
    source(x) ≈ target(x + flow(x))."""
    import cv2

    # OpenCV's stubs do not declare its DIS factory, which its compiled module has.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flow = dis.calc(source, target, None)
    return np.asarray(flow, dtype=np.float32)


def motion(previous: Image.Image, current: Image.Image) -> FrameMotion:
    """The motion from photo frame ``previous`` to photo frame ``current`` (same size) and where it is trusted."""
    if previous.size != current.size:
        raise ValueError(f"frames of one clip share a size, not {previous.size} and {current.size}")
    earlier, later = _grey(previous), _grey(current)
    backward = _as_tensor(dis_flow(later, earlier))
    forward = _as_tensor(dis_flow(earlier, later))
    return FrameMotion(backward, reliability(forward, backward))


def reliability(forward: Tensor, backward: Tensor) -> Tensor:
    """1 where the backward flow ([2, H, W], frame t to t−1) is trusted, else 0 ([1, 1, H, W]); ``forward`` is the flow
    from frame t−1 to t on frame t−1's grid."""
    height, width = backward.shape[-2:]
    # The forward flow at the point each pixel comes from: a perfect round trip cancels the backward flow.
    forward_there = warp(forward[None], backward)[0]
    round_trip = (forward_there + backward).pow(2).sum(0)
    lengths = forward_there.pow(2).sum(0) + backward.pow(2).sum(0)
    disoccluded = round_trip > ROUND_TRIP_SHARE * lengths + ROUND_TRIP_SLACK
    gradient = _gradient_energy(backward)
    boundary = gradient > BOUNDARY_SHARE * backward.pow(2).sum(0) + BOUNDARY_SLACK
    x, y = _pixel_grid(height, width)
    source_x, source_y = x + backward[0], y + backward[1]
    outside = (source_x < 0) | (source_x > width - 1) | (source_y < 0) | (source_y > height - 1)
    trusted = ~(disoccluded | boundary | outside)
    return trusted.float()[None, None]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` ([N, C, H, W]) sampled at x + ``flow``(x) ([2, H, W], pixels), bilinearly, edges extended."""
    height, width = flow.shape[-2:]
    x, y = _pixel_grid(height, width, flow.device)
    # grid_sample's coordinates run from −1 to 1 between the centres of the corner pixels (align_corners=True).
    grid_x = 2 * (x + flow[0]) / max(width - 1, 1) - 1
    grid_y = 2 * (y + flow[1]) / max(height - 1, 1) - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)[None].expand(image.shape[0], -1, -1, -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def temporal_error(photos: Sequence[Image.Image], results: Sequence[Image.Image]) -> float:
    """Mean over frame pairs of the squared difference between a result and its predecessor warped along the photo
    frames' flow, over trusted pixels (0–1 scale, per channel value)."""
    errors = []
    pairs = zip(itertools.pairwise(photos), itertools.pairwise(results), strict=True)
    for (photo_before, photo), (before, result) in pairs:
        moved = motion(photo_before, photo)
        difference = (_pixels(result) - moved.warp(_pixels(before))).pow(2).mean(1, keepdim=True)
        errors.append(float((difference * moved.reliability).sum() / moved.reliability.sum().clamp_min(1)))
    return statistics.mean(errors)


def _gradient_energy(flow: Tensor) -> Tensor:
    """|∇u|² + |∇v|² per pixel ([H, W]), from forward differences (zero past the last row and column)."""
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[..., :, :-1] = flow[..., :, 1:] - flow[..., :, :-1]
    dy[..., :-1, :] = flow[..., 1:, :] - flow[..., :-1, :]
    return (dx.pow(2) + dy.pow(2)).sum(0)


def _pixel_grid(height: int, width: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return x, y


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _as_tensor(flow: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))


def _pixels(image: Image.Image) -> Tensor:
    return pil_to_tensor(image).float().div_(255.0)[None]
