"""Whole runs under a memory budget: tiles change the time, not the steps, and a hopeless budget fails first."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from core.engine import Progress, stylize
from core.errors import MemoryBudgetTooSmall
from core.networks import VGG16, VGG19
from core.vgg import FeatureNet
from tests.core.runs import (
    LOSS_AGREEMENT,
    MEAN_LEVELS,
    VGG16_TILED_SIZE,
    losses_per_iteration,
    mean_level_difference,
    params,
    tiling_budget,
)

SIZE = 192


# (network fixture, picture size, its architecture): VGG16 tiles a smaller picture than VGG19 does (tests/core/runs.py).
NETWORKS = {"vgg19": ("net", SIZE, VGG19), "vgg16": ("vgg16_net", VGG16_TILED_SIZE, VGG16)}


@pytest.mark.slow  # two whole runs per case, one of them in tiles
@pytest.mark.parametrize(("network", "optimizer"), [("vgg19", "lbfgs"), ("vgg19", "adam"), ("vgg16", "lbfgs")])
def test_a_tiled_run_takes_the_steps_an_untiled_run_takes(
    network: str, optimizer: str, photo: Image.Image, painting: Image.Image, request: pytest.FixtureRequest
) -> None:
    fixture, size, architecture = NETWORKS[network]
    model: FeatureNet = request.getfixturevalue(fixture)
    run = params(size=size, iterations=3, optimizer=optimizer)
    whole_steps: list[Progress] = []
    tiled_steps: list[Progress] = []
    whole = stylize(photo, [painting], run, net=model, on_progress=whole_steps.append)
    limit = tiling_budget(photo, painting, size, optimizer=optimizer, network=architecture)
    tiled = stylize(photo, [painting], run, net=model, memory_budget=limit, on_progress=tiled_steps.append)
    assert losses_per_iteration(tiled_steps) == pytest.approx(losses_per_iteration(whole_steps), rel=LOSS_AGREEMENT)
    assert mean_level_difference(whole.image, tiled.image) < MEAN_LEVELS


def test_vgg16_tiles_a_picture_too_small_for_vgg19_to_tile(photo: Image.Image, painting: Image.Image) -> None:
    """The planner sizes crops by the network that runs: at ``VGG16_TILED_SIZE`` VGG16 splits the photo, while a crop
    of VGG19's (166 px across, its halo about one stride) is wider than the photo, so no budget tiles it."""
    assert tiling_budget(photo, painting, VGG16_TILED_SIZE, network=VGG16) > 0
    with pytest.raises(MemoryBudgetTooSmall):
        tiling_budget(photo, painting, VGG16_TILED_SIZE)


def test_a_budget_that_fits_no_tile_fails_before_any_work(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    reports: list[Progress] = []
    with pytest.raises(MemoryBudgetTooSmall, match="raise the budget"):
        stylize(photo, [painting], params(size=SIZE), net=net, memory_budget=2**20, on_progress=reports.append)
    assert reports == []


@pytest.mark.slow  # a whole two-stage run at 320 px
def test_progress_names_the_stage_and_counts_down_the_time_left(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    reports: list[Progress] = []
    stylize(photo, [painting], params(size=320, iterations=4, multiscale=True), net=net, on_progress=reports.append)
    assert [(p.stage, p.stages, p.size) for p in reports] == [(1, 2, 160)] * 2 + [(2, 2, 320)] * 2
    remaining = [p.remaining for p in reports]
    assert all(r is not None and r >= 0 for r in remaining) and remaining[-1] == 0


@pytest.mark.slow  # whole runs, tiled
def test_same_seed_same_bytes_under_a_budget(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    run = params(size=SIZE, iterations=2, init="noise", seed=3)
    limit = tiling_budget(photo, painting, SIZE)
    first = stylize(photo, [painting], run, net=net, memory_budget=limit)
    second = stylize(photo, [painting], run, net=net, memory_budget=limit)
    assert torch.equal(pil_to_tensor(first.image), pil_to_tensor(second.image))
