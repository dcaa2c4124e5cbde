"""Behaviour of the optimisation on tiny pictures with random weights."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from core.engine import Progress, stylize
from core.errors import Cancelled, ImageTooSmall, InvalidRequest
from core.images import encode_image, fit_longest_side
from core.losses import content_loss, gram_matrix, style_loss
from core.params import StyleParams
from core.vgg import FeatureNet
from tests.core.pictures import make_painting, make_photo
from tests.core.runs import params


def distances(net: FeatureNet, image: Image.Image, photo: Image.Image, painting: Image.Image) -> tuple[float, float]:
    """(content error to the photo at relu4_2, style error to the painting over the default style layers)."""

    def tensor(picture: Image.Image) -> torch.Tensor:
        return pil_to_tensor(fit_longest_side(picture, 48)).float()[None] / 255

    layers = list(StyleParams().style_layers)
    with torch.no_grad():
        out = net(tensor(image), [*layers, "relu4_2"])
        target = net(tensor(photo), ["relu4_2"])["relu4_2"]
        grams = {k: gram_matrix(v) for k, v in net(tensor(painting), layers).items()}
    style = sum(float(style_loss(out[k], grams[k])) for k in layers) / len(layers)
    return float(content_loss(out["relu4_2"], target)), style


def test_result_has_the_requested_size(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    result = stylize(photo, [painting], params(size=40, iterations=2), net=net)
    assert result.image.size == (40, 33) and result.image.mode == "RGB"


def test_result_reports_the_weights_and_iterations(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    result = stylize(photo, [painting], params(iterations=3), net=net)
    assert (result.weights, result.iterations) == ("random(seed=0)", 3)
    assert set(result.losses) == {"content", "style", "tv", "total"}


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls(net: FeatureNet, photo: Image.Image, painting: Image.Image, optimizer: str) -> None:
    seen: list[Progress] = []
    stylize(photo, [painting], params(optimizer=optimizer, iterations=15), net=net, on_progress=seen.append)
    assert seen[-1].total_loss < seen[0].total_loss
    # The run starts at the photo, where the style error is all of the loss: it is what the steps must bring down
    # (the content error can only rise from zero as they do).
    assert seen[-1].style_loss < 0.5 * seen[0].style_loss


def test_a_painting_that_is_the_photo_gives_finite_losses(net: FeatureNet, photo: Image.Image) -> None:
    """The content and style gradients vanish at the start; the balance must not turn that into unbounded weights
    (which overflowed into NaN losses)."""
    result = stylize(photo, [photo], params(iterations=3), net=net)
    assert all(math.isfinite(value) for value in result.losses.values())


def test_more_style_weight_trades_content_for_style(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    gentle = stylize(photo, [painting], params(style_weight=10, iterations=20), net=net).image
    strong = stylize(photo, [painting], params(style_weight=10_000, iterations=20), net=net).image
    gentle_content, gentle_style = distances(net, gentle, photo, painting)
    strong_content, strong_style = distances(net, strong, photo, painting)
    assert strong_style < gentle_style
    assert strong_content > gentle_content


def test_blend_of_one_to_zero_equals_the_single_style(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    other = make_painting(phase=1.5).rotate(90)
    single = stylize(photo, [painting], params(), net=net).image
    blended = stylize(photo, [painting, other], params(style_blend=[1, 0]), net=net).image
    assert blended.tobytes() == single.tobytes()


def test_blending_two_styles_differs_from_either(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    other = make_painting(phase=1.5).rotate(90)
    half = stylize(photo, [painting, other], params(), net=net).image
    assert half.tobytes() != stylize(photo, [painting], params(), net=net).image.tobytes()
    assert half.tobytes() != stylize(photo, [other], params(), net=net).image.tobytes()


def test_blend_that_does_not_match_the_styles_is_refused(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    with pytest.raises(InvalidRequest, match="style_blend has 2 weights but 1"):
        stylize(photo, [painting], params(style_blend=[1, 2]), net=net)


def test_luminance_preservation_keeps_the_contents_chroma(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    def chroma_gap(image: Image.Image) -> float:
        """Mean absolute Cb/Cr difference to the photo, in 8-bit levels."""
        out = pil_to_tensor(image.convert("YCbCr"))[1:].float()
        source = pil_to_tensor(fit_longest_side(photo, 48).convert("YCbCr"))[1:].float()
        return float((out - source).abs().mean())

    kept = stylize(photo, [painting], params(preserve_colors="luminance"), net=net).image
    free = stylize(photo, [painting], params(), net=net).image
    assert chroma_gap(kept) < 1.0  # only 8-bit rounding and the odd out-of-gamut pixel differ
    assert chroma_gap(free) > 5 * chroma_gap(kept)


def test_histogram_preservation_pulls_colours_towards_the_photo(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    def mean_colour(image: Image.Image) -> torch.Tensor:
        return pil_to_tensor(image).float().mean((1, 2))

    plain = stylize(photo, [painting], params(style_weight=1e4, iterations=20), net=net).image
    matched = stylize(
        photo, [painting], params(style_weight=1e4, iterations=20, preserve_colors="histogram"), net=net
    ).image
    target = mean_colour(fit_longest_side(photo, 48))
    assert (mean_colour(matched) - target).norm() < (mean_colour(plain) - target).norm()


def test_cancellation_stops_within_one_iteration(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    seen: list[Progress] = []
    with pytest.raises(Cancelled, match="after 3 of 12"):
        stylize(photo, [painting], params(), net=net, on_progress=seen.append, is_cancelled=lambda: len(seen) >= 3)
    assert len(seen) == 3


def test_same_seed_gives_the_same_bytes(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    runs = [stylize(photo, [painting], params(init="noise", seed=7), net=net).image for _ in range(2)]
    assert encode_image(runs[0]) == encode_image(runs[1])


def test_another_seed_gives_another_picture(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    first = stylize(photo, [painting], params(init="noise", seed=7), net=net).image
    second = stylize(photo, [painting], params(init="noise", seed=8), net=net).image
    assert first.tobytes() != second.tobytes()


def test_progress_counts_every_iteration_across_scales(
    net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    seen: list[Progress] = []
    stylize(
        photo,
        [painting],
        StyleParams(size=64, iterations=10, multiscale=True),
        net=net,
        on_progress=seen.append,
    )
    assert [p.iteration for p in seen] == list(range(1, 11))
    assert {p.total for p in seen} == {10}


def test_snapshots_arrive_every_n_iterations(net: FeatureNet, photo: Image.Image, painting: Image.Image) -> None:
    snapshots: list[tuple[int, tuple[int, int]]] = []
    stylize(
        photo,
        [painting],
        params(iterations=7),
        net=net,
        snapshot_every=3,
        on_snapshot=lambda i, image: snapshots.append((i, image.size)),
    )
    assert snapshots == [(3, (48, 40)), (6, (48, 40))]


def test_a_picture_too_thin_for_the_network_is_refused_before_any_work(net: FeatureNet, painting: Image.Image) -> None:
    ribbon = make_photo(400, 16)  # 48 px wide at size 48: 2 px tall, where relu5_1 needs 16
    with pytest.raises(ImageTooSmall, match="content is 400×16"):
        stylize(ribbon, [painting], params(iterations=1), net=net)


def test_a_layer_the_network_lacks_is_refused_naming_it_before_any_work(
    vgg16_net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    reports: list[Progress] = []
    with pytest.raises(InvalidRequest, match=r"^VGG16 has no layer relu5_4: .* whose layers are conv1_1, relu1_1, "):
        stylize(
            photo,
            [painting],
            params(style_layers={"relu1_1": 1, "relu5_4": 1}),
            net=vgg16_net,
            on_progress=reports.append,
        )
    assert reports == []


def test_a_vgg16_net_runs_the_default_layers_and_the_loss_falls(
    vgg16_net: FeatureNet, photo: Image.Image, painting: Image.Image
) -> None:
    seen: list[Progress] = []
    result = stylize(photo, [painting], params(), net=vgg16_net, on_progress=seen.append)
    assert result.weights == "random-vgg16"
    assert seen[-1].total_loss < seen[0].total_loss
