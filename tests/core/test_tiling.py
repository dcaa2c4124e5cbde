"""Tiled evaluation gives the untiled losses and gradient: the geometry, the two passes and the targets."""

from __future__ import annotations

from collections.abc import Collection

import pytest
import torch
from torch import Tensor

from core import tiling
from core.losses import content_loss, gram_matrix, style_loss
from core.networks import VGG19
from core.vgg import FeatureNet

DEFAULT_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _pictures(height: int, width: int, seed: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    image, photo = (torch.rand(1, 3, height, width, generator=generator) for _ in range(2))
    paintings = [torch.rand(1, 3, 96 + 32 * i, 128, generator=generator) for i in range(2)]
    return image, photo, paintings


def _targets(
    net: FeatureNet,
    photo: Tensor,
    paintings: list[Tensor],
    content_layers: Collection[str],
    style_layers: Collection[str],
    pooling: str,
) -> dict[str, tiling.LayerTargets]:
    """Blended style Grams of two paintings (weights 0.7 and 0.3) and the photo's content, weights 1 and 1e3."""
    with torch.no_grad():
        content = net(photo, content_layers, pooling)
        grams = [{k: gram_matrix(v) for k, v in net(p, style_layers, pooling).items()} for p in paintings]
    return {
        name: tiling.LayerTargets(
            content=content.get(name),
            gram=0.7 * grams[0][name] + 0.3 * grams[1][name] if name in style_layers else None,
            content_weight=1.0 / len(content_layers) if name in content_layers else 0.0,
            style_weight=1e3 / len(style_layers) if name in style_layers else 0.0,
        )
        for name in {*content_layers, *style_layers}
    }


def _untiled(net: FeatureNet, image: Tensor, targets: dict[str, tiling.LayerTargets], pooling: str) -> Tensor:
    """The gradient as the untiled engine computes it, with the losses of core.losses."""
    picture = image.clone().requires_grad_(True)
    features = net(picture, targets.keys(), pooling)
    total = torch.zeros(())
    for name, target in targets.items():
        if target.content is not None:
            total = total + target.content_weight * content_loss(features[name], target.content)
        if target.gram is not None:
            total = total + target.style_weight * style_loss(features[name], target.gram)
    total.backward()
    assert picture.grad is not None
    return picture.grad


def _relative_error(value: Tensor, reference: Tensor) -> float:
    return float((value - reference).norm() / reference.norm())


def test_reach_of_the_deepest_default_layers() -> None:
    assert tiling.reach(VGG19, "relu4_2") == tiling.Reach(stride=8, before=38, after=45)
    assert tiling.reach(VGG19, "relu5_1") == tiling.Reach(stride=16, before=70, after=85)
    assert tiling.reach(VGG19, "pool5") == tiling.Reach(stride=32, before=118, after=149)


def test_halo_covers_the_receptive_field_on_the_stride_grid() -> None:
    relu5_1 = tiling.reach(VGG19, "relu5_1")
    assert (relu5_1.halo_before, relu5_1.halo_after) == (80, 70)
    assert relu5_1.halo_before % relu5_1.stride == 0


@pytest.mark.parametrize(("height", "width", "rows", "cols"), [(256, 192, 2, 2), (250, 190, 3, 2), (97, 300, 1, 3)])
@pytest.mark.parametrize("layer", ["relu1_1", "relu3_2", "relu5_1", "pool5"])
def test_owned_blocks_count_every_position_once(height: int, width: int, rows: int, cols: int, layer: str) -> None:
    plan = tiling.grid(VGG19, height, width, [layer], rows, cols)
    stride = tiling.reach(VGG19, layer).stride
    counts = torch.zeros(height // stride, width // stride)
    for tile in plan.tiles:
        counts[tile.rows.owned_positions(stride, height), tile.cols.owned_positions(stride, width)] += 1
    assert bool((counts == 1).all())


@pytest.mark.slow  # a forward and backward of the whole network per case, at up to 300 px
@pytest.mark.parametrize(
    ("height", "width", "rows", "cols", "pooling", "content_layers", "style_layers"),
    [
        (256, 192, 2, 2, "max", ("relu4_2",), DEFAULT_STYLE),
        (250, 190, 3, 2, "avg", ("relu4_2",), DEFAULT_STYLE),
        (200, 296, 2, 3, "max", ("relu2_2", "relu4_1"), ("relu1_1", "relu4_1", "pool5")),
        (160, 224, 1, 2, "avg", ("relu3_1",), ("relu1_1", "relu2_1", "relu3_1")),
    ],
)
def test_tiled_gradient_equals_the_untiled_one(
    net: FeatureNet,
    height: int,
    width: int,
    rows: int,
    cols: int,
    pooling: str,
    content_layers: tuple[str, ...],
    style_layers: tuple[str, ...],
) -> None:
    image, photo, paintings = _pictures(height, width, seed=height)
    targets = _targets(net, photo, paintings, content_layers, style_layers, pooling)
    gradient = torch.zeros_like(image)
    tiling.tiled_gradient(
        net, image, targets, pooling, tiling.grid(VGG19, height, width, targets, rows, cols), gradient, lambda: None
    )
    # float32 sums of the Gram numerators and errors over tiles instead of the whole: rounding of about
    # log2(positions)·2⁻²⁴ ≈ 1e-6 per sum, compounded through backward; a wrong halo errs by percents.
    assert _relative_error(gradient, _untiled(net, image, targets, pooling)) <= 1e-4


def test_tiled_errors_equal_the_untiled_losses(net: FeatureNet) -> None:
    image, photo, paintings = _pictures(224, 176, seed=1)
    targets = _targets(net, photo, paintings, ("relu4_2",), DEFAULT_STYLE, "max")
    plan = tiling.grid(VGG19, 224, 176, targets, 2, 2)
    contents, styles = tiling.tiled_gradient(net, image, targets, "max", plan, torch.zeros_like(image), lambda: None)
    with torch.no_grad():
        features = net(image, targets.keys(), "max")
    photo_features = targets["relu4_2"].content
    # float32 sums over positions, grouped by tile (~1e-6 relative); 1e-5 leaves room for the squares' rounding.
    assert photo_features is not None
    assert float(contents["relu4_2"]) == pytest.approx(
        float(content_loss(features["relu4_2"], photo_features)), rel=1e-5
    )
    for name in DEFAULT_STYLE:
        gram = targets[name].gram
        assert gram is not None
        assert float(styles[name]) == pytest.approx(float(style_loss(features[name], gram)), rel=1e-5)


def test_tiles_are_checked_between_passes(net: FeatureNet) -> None:
    image, photo, paintings = _pictures(192, 192, seed=2)
    targets = _targets(net, photo, paintings, ("relu4_2",), DEFAULT_STYLE, "max")
    plan = tiling.grid(VGG19, 192, 192, targets, 2, 2)
    checks: list[int] = []
    tiling.tiled_gradient(net, image, targets, "max", plan, torch.zeros_like(image), lambda: checks.append(1))
    # Four tiles in the first pass, three recomputed in the second (the last one's graph is kept).
    assert len(checks) == 7


@pytest.mark.slow  # two full forwards per pooling
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_tiled_targets_equal_whole_ones(net: FeatureNet, pooling: str) -> None:
    picture = _pictures(208, 272, seed=3)[0]
    plan = tiling.grid(VGG19, 208, 272, DEFAULT_STYLE, 2, 3)
    whole_grams = tiling.whole_grams(net, picture, DEFAULT_STYLE, pooling, None)
    # The same float32 values, summed by tile (~1e-6 relative rounding); a misplaced crop errs by percents.
    for name, gram in tiling.whole_grams(net, picture, DEFAULT_STYLE, pooling, plan).items():
        assert _relative_error(gram, whole_grams[name]) <= 1e-5
    whole = tiling.whole_features(net, picture, ["relu4_2"], pooling, None)["relu4_2"]
    assert _relative_error(tiling.whole_features(net, picture, ["relu4_2"], pooling, plan)["relu4_2"], whole) <= 1e-5


def test_plan_is_one_tile_when_the_picture_fits() -> None:
    plan = tiling.plan_tiles(VGG19, 300, 400, DEFAULT_STYLE, 300 * 400)
    assert plan is not None and len(plan.tiles) == 1 and plan.work == 1.0


def test_plan_keeps_every_crop_within_the_limit() -> None:
    plan = tiling.plan_tiles(VGG19, 1536, 2048, DEFAULT_STYLE, 1_000_000)
    assert plan is not None and len(plan.tiles) > 1 and plan.largest <= 1_000_000


def test_plan_is_none_when_not_even_the_smallest_crop_fits() -> None:
    assert tiling.plan_tiles(VGG19, 1536, 2048, DEFAULT_STYLE, 100 * 100) is None


def test_work_counts_the_halos_and_the_repeated_forward() -> None:
    plan = tiling.grid(VGG19, 512, 512, DEFAULT_STYLE, 1, 2)
    crops = [tile.pixels for tile in plan.tiles]
    assert crops == [512 * (256 + 70), 512 * (256 + 80)]
    assert plan.work == pytest.approx((2 * sum(crops) + crops[0]) / (2 * 512 * 512))  # float division: default 1e-6
