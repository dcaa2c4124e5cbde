"""Picture-quality figures for the benchmarks: how a stylised result compares with the photo and the painting it
was made from, by measures that do not come from the network being optimised (a net could otherwise be judged
by its own opinion of its pictures).

- ``colour_distance``: Hellinger distance of joint RGB histograms, result to painting (0 same, 1 disjoint);
- ``orientation_distance``: Hellinger distance of magnitude-weighted Sobel orientation histograms, result to
  painting: whether the strokes run the painting's ways;
- ``edge_ssim``: SSIM of the result's edges to the photo's (1 the same edges): how much of the photo's
  structure survives;
- ``content_error``: relative feature error at relu4_2 of a network the caller passes (a trained one, never the
  one that made the picture), the figure Gatys et al.'s content loss is built on.

Pictures are RGB ``PIL.Image``s; everything but ``content_error`` is computed on the CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from core.vgg import FeatureNet

HISTOGRAM_BINS = 8
ORIENTATION_BINS = 36
CONTENT_LAYER = "relu4_2"


def measure(result: Image.Image, photo: Image.Image, painting: Image.Image) -> dict[str, float]:
    """The three pixel metrics of a result against the photo and the painting it was made from, by the names
    ``colour``, ``orientation`` (both lower is nearer the painting) and ``edge_ssim`` (higher is nearer the photo)."""
    return {
        "colour": colour_distance(result, painting),
        "orientation": orientation_distance(result, painting),
        "edge_ssim": edge_ssim(result, photo),
    }


def colour_distance(result: Image.Image, painting: Image.Image) -> float:
    """Hellinger distance, in [0, 1], between the joint RGB histograms (HISTOGRAM_BINS per channel) of the two
    pictures; sizes may differ, as histograms are distributions."""
    return _hellinger(_colour_histogram(to_tensor(result)[0]), _colour_histogram(to_tensor(painting)[0]))


def orientation_distance(result: Image.Image, painting: Image.Image) -> float:
    """Hellinger distance, in [0, 1], between the gradient-orientation histograms of the two pictures' greys."""
    return _hellinger(_orientation_histogram(to_tensor(result)[0]), _orientation_histogram(to_tensor(painting)[0]))


def edge_ssim(result: Image.Image, photo: Image.Image) -> float:
    """SSIM (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K 0.01/0.03) of the Sobel magnitudes of the greys,
    the photo first resized (Lanczos) to the result's size.

    The dynamic range is the photo's largest edge magnitude, so every result from one photo is scored on one scale.
    """
    photo_pixels = to_tensor(photo.resize(result.size, Image.Resampling.LANCZOS))[0]
    return _edge_ssim(to_tensor(result)[0], photo_pixels)


def content_error(result: Image.Image, photo: Image.Image, net: FeatureNet) -> float:
    """‖F(result) − F(photo)‖² / ‖F(photo)‖² with F the ``net``'s relu4_2 features: 0 when the result keeps the
    photo's content exactly, 1 when its features are as far from the photo's as none at all would be.

    ``photo`` is the photo at the size the run fitted it to; a result of another size is resized (Lanczos) to it.
    Runs on the net's device, without building a graph.
    """
    if result.size != photo.size:
        result = result.resize(photo.size, Image.Resampling.LANCZOS)
    with torch.inference_mode():
        ours, theirs = (
            net(to_tensor(image).to(net.device), [CONTENT_LAYER])[CONTENT_LAYER] for image in (result, photo)
        )
        error = (ours.double() - theirs.double()).pow(2).sum() / theirs.double().pow(2).sum()
    return float(error)


def to_tensor(image: Image.Image) -> Tensor:
    """An RGB picture as a [1, 3, H, W] float tensor in 0–1, on the CPU."""
    return pil_to_tensor(image).float().div_(255.0)[None]


def _colour_histogram(pixels: Tensor) -> Tensor:
    """Joint RGB histogram, HISTOGRAM_BINS per channel, as a distribution."""
    bins = (pixels * HISTOGRAM_BINS).long().clamp(0, HISTOGRAM_BINS - 1)
    index = (bins[0] * HISTOGRAM_BINS + bins[1]) * HISTOGRAM_BINS + bins[2]
    counts = torch.bincount(index.flatten(), minlength=HISTOGRAM_BINS**3).double()
    return counts / counts.sum()


def _orientation_histogram(pixels: Tensor) -> Tensor:
    """Sobel gradient orientations over [0, π), weighted by gradient magnitude, as a distribution."""
    gx, gy = _sobel(_grey(pixels))
    angle = torch.atan2(gy, gx).remainder(math.pi)
    index = (angle / math.pi * ORIENTATION_BINS).long().clamp(0, ORIENTATION_BINS - 1)
    counts = torch.bincount(index.flatten(), weights=torch.hypot(gx, gy).flatten().double(), minlength=ORIENTATION_BINS)
    return counts / counts.sum()


def _hellinger(p: Tensor, q: Tensor) -> float:
    return float((1 - (p * q).sqrt().sum()).clamp_min(0).sqrt())


def _edge_ssim(result: Tensor, photo: Tensor) -> float:
    """``edge_ssim`` on [3, H, W] pixel tensors of one size."""
    a, b = (torch.hypot(*_sobel(_grey(pixels)))[None, None] for pixels in (result, photo))
    data_range = float(b.max())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    taps = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = (taps[:, None] * taps[None, :] / taps.sum() ** 2)[None, None]

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim.mean())


def _grey(pixels: Tensor) -> Tensor:
    return 0.299 * pixels[0] + 0.587 * pixels[1] + 0.114 * pixels[2]


def _sobel(grey: Tensor) -> tuple[Tensor, Tensor]:
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    padded = F.pad(grey[None, None], (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kernel[None, None])[0, 0]
    gy = F.conv2d(padded, kernel.T[None, None])[0, 0]
    return gx, gy
