"""The maths of the objective: Gram matrices, content, style and total-variation losses."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from core.losses import content_loss, gram_matrix, style_loss, tv_loss, tv_loss_into


def features(seed: int = 0, shape: tuple[int, ...] = (1, 4, 5, 6), dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# Unless a test says otherwise, tensors here are float64 and allclose's defaults (1e-5 relative, 1e-8 absolute)
# only forgive rounding: the identities checked hold exactly in real arithmetic.


def test_gram_matrix_is_symmetric() -> None:
    gram = gram_matrix(features())
    assert torch.allclose(gram, gram.transpose(1, 2))


def test_gram_matrix_is_positive_semidefinite() -> None:
    eigenvalues = torch.linalg.eigvalsh(gram_matrix(features(shape=(1, 8, 3, 3))))
    assert eigenvalues.min() >= -1e-10


def test_gram_matrix_ignores_where_activations_are() -> None:
    f = features()
    shuffled = f.flatten(2)[..., torch.randperm(30, generator=torch.Generator().manual_seed(1))].reshape(f.shape)
    assert torch.allclose(gram_matrix(f), gram_matrix(shuffled))


def test_gram_matrix_is_an_average_over_positions() -> None:
    f = features()
    tiled = f.repeat(1, 1, 2, 3)  # six times the positions, same statistics
    assert torch.allclose(gram_matrix(tiled), gram_matrix(f))


def test_gram_matrix_entries_are_mean_channel_products() -> None:
    f = features()
    assert torch.allclose(gram_matrix(f)[0, 1, 2], (f[0, 1] * f[0, 2]).mean())
    assert torch.allclose(gram_matrix(2 * f), 4 * gram_matrix(f))


def test_content_loss_is_zero_for_identical_features() -> None:
    f = features()
    assert content_loss(f, f.clone()).item() == 0.0


def test_content_loss_is_relative_to_the_targets_energy() -> None:
    f, g = features(0), features(1)
    assert torch.allclose(content_loss(10 * f, 10 * g), content_loss(f, g))
    assert torch.allclose(content_loss(torch.zeros_like(g), g), torch.tensor(1.0, dtype=g.dtype))


def test_style_loss_is_zero_for_the_same_texture_at_another_size() -> None:
    f = features()
    assert style_loss(f.repeat(1, 1, 2, 2), gram_matrix(f)).item() < 1e-20  # float64 rounding, squared


def test_tv_loss_is_zero_on_a_constant_image() -> None:
    assert tv_loss(torch.full((1, 3, 8, 8), 0.4)).item() == 0.0


def test_tv_loss_grows_with_high_frequency_noise() -> None:
    smooth = torch.linspace(0, 1, 16).repeat(1, 3, 16, 1)
    noisy = smooth + 0.1 * features(shape=(1, 3, 16, 16), dtype=torch.float32)
    assert tv_loss(noisy) > tv_loss(smooth)


def test_content_loss_gradient_matches_finite_differences() -> None:
    target = features(1)
    assert gradcheck(lambda x: content_loss(x, target), (features(0).requires_grad_(),))


def test_style_loss_gradient_matches_finite_differences() -> None:
    target = gram_matrix(features(1))
    assert gradcheck(lambda x: style_loss(x, target), (features(0).requires_grad_(),))


def test_tv_loss_gradient_matches_finite_differences() -> None:
    assert gradcheck(tv_loss, (features(0, shape=(1, 3, 5, 4)).requires_grad_(),))


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_style_loss_gradient_matches_finite_differences_in_channels_last_layout(device: str) -> None:
    target = gram_matrix(features(1).to(device))
    x = features(0).to(device).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert gradcheck(lambda f: style_loss(f, target), (x,))


def test_gram_matrix_gradient_keeps_the_features_layout() -> None:
    x = features(0, dtype=torch.float32).contiguous(memory_format=torch.channels_last).requires_grad_()
    gram_matrix(x).sum().backward()
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)


def test_tv_loss_into_adds_the_weighted_gradient_autograd_finds() -> None:
    image = torch.rand(1, 3, 21, 34, generator=torch.Generator().manual_seed(5), requires_grad=True)
    tv_loss(image).mul(2.5).backward()
    gradient = torch.ones_like(image)
    loss = tv_loss_into(image.detach(), 2.5, gradient)
    assert image.grad is not None
    # float32, and the same sums in another order: rounding of ~1e-7 per operation, a few of them per value.
    assert float(loss) == pytest.approx(float(tv_loss(image.detach())), rel=1e-6)
    assert torch.allclose(gradient - 1, image.grad, atol=1e-6)
