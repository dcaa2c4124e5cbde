"""Whole runs under a memory budget: tiles change the time, not the picture, and a hopeless budget fails first."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageChops
from torchvision.transforms.functional import pil_to_tensor

from core.engine import Progress, stylize
from core.errors import MemoryBudgetTooSmall
from core.vgg import FeatureNet
from tests.core.runs import params, tiling_budget

SIZE = 192


def share_differing(first: Image.Image, second: Image.Image, *, by_more_than: int) -> float:
    """The fraction of channel values of two pictures that differ by more than ``by_more_than`` levels."""
    difference = ImageChops.difference(first, second)
    histogram = difference.histogram()  # 256 counts per band, bands one after another
    above = sum(count for index, count in enumerate(histogram) if index % 256 > by_more_than)
    return above / sum(histogram)


# Three iterations: the tiled sums run in another order, so the gradients differ by about 1e-6, and both
# optimisers amplify that (L-BFGS's first curvature pairs come from tiny steps; Adam divides by the gradient's
# own size, so where a pixel's gradient is near zero a rounding difference changes its whole step). After
# three, the pictures agree to one level but for a few values in 10,000 (Adam, on an AMD EPYC: 34 of 92,160,
# by up to 4 levels); by the sixth, L-BFGS's differ as much.
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_tiled_run_paints_the_picture_an_untiled_run_paints(
    net: FeatureNet, photo: Image.Image, painting: Image.Image, optimizer: str
) -> None:
    run = params(size=SIZE, iterations=3, optimizer=optimizer)
    whole = stylize(photo, [painting], run, net=net)
    limit = tiling_budget(photo, painting, SIZE, optimizer=optimizer)
    tiled = stylize(photo, [painting], run, net=net, memory_budget=limit)
    assert share_differing(whole.image, tiled.image, by_more_than=1) < 1e-3
    assert tiled.losses["total"] == pytest.approx(whole.losses["total"], rel=1e-4)


def test_a_budget_that_fits_no_tile_fails_before_any_work(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    reports: list[Progress] = []
    with pytest.raises(MemoryBudgetTooSmall, match="raise the budget"):
        stylize(photo, [painting], params(size=SIZE), net=net, memory_budget=2**20, on_progress=reports.append)
    assert reports == []


def test_progress_names_the_stage_and_counts_down_the_time_left(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    reports: list[Progress] = []
    stylize(photo, [painting], params(size=320, iterations=4, multiscale=True), net=net, on_progress=reports.append)
    assert [(p.stage, p.stages, p.size) for p in reports] == [(1, 2, 160)] * 2 + [(2, 2, 320)] * 2
    remaining = [p.remaining for p in reports]
    assert all(r is not None and r >= 0 for r in remaining) and remaining[-1] == 0


def test_same_seed_same_bytes_under_a_budget(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    run = params(size=SIZE, iterations=2, init="noise", seed=3)
    limit = tiling_budget(photo, painting, SIZE)
    first = stylize(photo, [painting], run, net=net, memory_budget=limit)
    second = stylize(photo, [painting], run, net=net, memory_budget=limit)
    assert torch.equal(pil_to_tensor(first.image), pil_to_tensor(second.image))
