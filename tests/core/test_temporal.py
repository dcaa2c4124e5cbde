"""The temporal term of a video frame (``core.temporal``): Ruder et al.'s loss, its hand-written gradient for tiled
runs, the scale that puts its weight in the units of the others, and where a frame starts."""

from __future__ import annotations

import pytest
import torch

from core.engine import _initial_image
from core.params import StyleParams
from core.temporal import TemporalTarget, temporal_gradient_scale, temporal_loss, temporal_loss_into


def target(reliability: torch.Tensor | None = None, weight: float = 1.0) -> TemporalTarget:
    generator = torch.Generator().manual_seed(0)
    previous = torch.rand(1, 3, 6, 8, generator=generator)
    return TemporalTarget(previous, torch.ones(1, 1, 6, 8) if reliability is None else reliability, weight)


def test_the_loss_is_the_mean_squared_difference_where_the_warp_is_reliable() -> None:
    goal = target()
    image = goal.previous + 0.1
    # Every channel value is 0.1 off: the mean of 0.01 (float32 rounding of the sum).
    assert float(temporal_loss(image, goal)) == pytest.approx(0.01, rel=1e-5)


def test_pixels_whose_warp_is_unreliable_pull_nothing() -> None:
    reliability = torch.ones(1, 1, 6, 8)
    reliability[..., :, :4] = 0
    goal = target(reliability)
    image = goal.previous.clone()
    image[..., :, :4] += 0.5
    assert float(temporal_loss(image, goal)) == 0.0


def test_the_tiled_runs_gradient_is_autograds() -> None:
    generator = torch.Generator().manual_seed(1)
    goal = target(torch.rand(1, 1, 6, 8, generator=generator))
    image = torch.rand(1, 3, 6, 8, generator=generator).requires_grad_(True)
    (3.0 * temporal_loss(image, goal)).backward()
    gradient = torch.zeros_like(image)
    loss = temporal_loss_into(image.detach(), goal, 3.0, gradient)
    # The same sums in another order: float32 rounding.
    torch.testing.assert_close(gradient, image.grad, rtol=1e-5, atol=1e-8)
    assert float(loss) == pytest.approx(float(temporal_loss(image.detach(), goal)), rel=1e-5)


def test_the_gradient_scale_is_the_gradients_length_at_that_distance() -> None:
    goal = target()
    image = (goal.previous + 0.05).requires_grad_(True)
    temporal_loss(image, goal).backward()
    assert image.grad is not None
    # A plain quadratic: the formula is exact up to float32 rounding of the norm.
    assert temporal_gradient_scale(image, 0.05) == pytest.approx(float(image.grad.norm()), rel=1e-5)


def test_a_coarse_stage_gets_the_target_resampled_to_its_size() -> None:
    smaller = target().at_size(3, 4)
    assert smaller.previous.shape == (1, 3, 3, 4)
    assert smaller.reliability.shape == (1, 1, 3, 4)


def test_a_frame_starts_from_the_warp_where_it_is_trusted_and_from_the_photo_elsewhere() -> None:
    previous, photo = torch.full((1, 3, 4, 6), 0.25), torch.full((1, 3, 4, 6), 0.75)
    reliability = torch.ones(1, 1, 4, 6)
    reliability[..., 4:] = 0.0  # the two columns the camera brought into view
    start = _initial_image(StyleParams(), photo, TemporalTarget(previous, reliability, 1.0))
    assert torch.equal(start[..., :4], previous[..., :4]) and torch.equal(start[..., 4:], photo[..., 4:])
