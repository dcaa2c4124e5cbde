"""The engine's L-BFGS takes the steps of torch.optim.LBFGS (fixed step, no line search) by other arithmetic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from core.lbfgs import LBFGS

Objective = Callable[[torch.Tensor], torch.Tensor]


def quadratic(size: int = 12) -> Objective:
    """A convex bowl with unequal curvatures, so the history has something to learn."""
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))[0]
    hessian = basis @ torch.diag(torch.linspace(0.5, 4.0, size, dtype=torch.float64)) @ basis.T
    centre = torch.randn(size, generator=generator, dtype=torch.float64)
    return lambda x: 0.5 * (x - centre) @ hessian @ (x - centre)


def wavy(x: torch.Tensor) -> torch.Tensor:
    """Non-convex: some steps see negative curvature, and their pairs must be left out of the history."""
    return torch.cos(3 * x).sum() + 0.1 * x.pow(2).sum()


def torch_trajectory(objective: Objective, start: torch.Tensor, history: int, steps: int, lr: float) -> torch.Tensor:
    x = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x], lr=lr, max_iter=steps, max_eval=steps + 1, tolerance_grad=-1, tolerance_change=-1, history_size=history
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss

    optimizer.step(closure)
    return x.detach()


def our_run(objective: Objective, start: torch.Tensor, history: int, steps: int, lr: float) -> LBFGS:
    x = start.clone().requires_grad_(True)
    optimizer = LBFGS(x, history=history, lr=lr)
    for _ in range(steps):
        x.grad = None
        objective(x).backward()
        assert x.grad is not None
        optimizer.step(x.grad)
    return optimizer


@pytest.mark.parametrize(("history", "steps"), [(10, 6), (3, 12)], ids=["history-not-full", "history-wraps"])
def test_takes_the_steps_of_torch_lbfgs_on_a_convex_problem(history: int, steps: int) -> None:
    objective, start = quadratic(), torch.zeros(12, dtype=torch.float64)
    ours = our_run(objective, start, history, steps, lr=1.0).param.detach()
    # float64 throughout: the compact form and the two-loop recursion agree but for its rounding (1e-16) over a few
    # dozen operations, far inside 1e-9, while one wrong pair or scale moves the steps by whole percents.
    assert torch.allclose(ours, torch_trajectory(objective, start, history, steps, lr=1.0), rtol=1e-9, atol=1e-9)


def test_takes_the_steps_of_torch_lbfgs_where_curvature_turns_negative() -> None:
    start = torch.linspace(-1, 1, 8, dtype=torch.float64)
    ours = our_run(wavy, start, 20, 10, lr=1.0)
    assert ours.remembered < 10 - 1, "every pair was taken in, so the skipping path went untested"
    # float64, as above.
    assert torch.allclose(ours.param.detach(), torch_trajectory(wavy, start, 20, 10, lr=1.0), rtol=1e-9, atol=1e-9)


def test_reaches_the_minimum_of_a_convex_problem() -> None:
    objective = quadratic()
    x = our_run(objective, torch.zeros(12, dtype=torch.float64), 10, 30, lr=1.0).param.detach()
    assert float(objective(x)) < 1e-12  # a 12-dimensional quadratic: L-BFGS solves it to float64 rounding


def test_keeps_the_parameters_shape_and_layout() -> None:
    start = torch.rand(1, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    x = our_run(lambda x: x.pow(2).sum(), start, 5, 3, lr=1.0).param
    assert x.shape == (1, 3, 4, 5) and x.is_contiguous(memory_format=torch.channels_last)
