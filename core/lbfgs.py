"""L-BFGS with a fixed step, computing the search direction in compact matrix form.

It takes the same steps as ``torch.optim.LBFGS`` with ``lr`` and no line search (the engine's setting), but
``torch.optim.LBFGS`` runs the two-loop recursion one history pair at a time and turns each pair's scalar into a
Python number: a handful of small kernels and two device-to-host waits per pair, every iteration. On a GPU each
wait stalls the queue of launched work, so with a full history the waits cost more than the arithmetic, and a
sizeable share of a whole iteration at moderate picture sizes. Here the direction is H·g in the compact form of
Byrd, Nocedal & Schnabel (Math. Programming 63, 1994):

    H·g = γ·g + Sᵀu − γ·Yᵀp,   p = R⁻¹(S·g),   u = R⁻ᵀ((D + γ·Y·Yᵀ)·p − γ·(Y·g))

with the pairs stacked as rows of S and Y, R the upper triangle of S·Yᵀ, D its diagonal and γ the latest
sᵀy / yᵀy. The long vectors meet in two matrix products per step; the m×m algebra runs in float64.
The one wait left per step is the curvature check that decides whether a pair enters the history.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Pairs whose curvature sᵀy is not safely positive would make H indefinite; torch.optim.LBFGS skips them too.
_MIN_CURVATURE = 1e-10


class LBFGS:
    """Steps one tensor in place along -H·g, H built from the last ``history`` (step, gradient change) pairs."""

    def __init__(self, param: Tensor, history: int, lr: float = 1.0) -> None:
        self.param, self.lr = param, lr
        # Pair k lives in rows 2k (its step s) and 2k + 1 (its gradient change y) of a ring of ``history``
        # slots, so the filled part is one contiguous [2·count, n] matrix. The small matrices S·Yᵀ and Y·Yᵀ
        # are kept oldest first, which is the order R's triangle needs; a roll maps one order to the other
        # on the device, where indexing by a Python list would wait for the host.
        self._pairs = torch.zeros(history, 2, param.numel(), dtype=param.dtype, device=param.device)
        self._sy = torch.zeros(history, history, dtype=torch.float64, device=param.device)
        self._yy = torch.zeros(history, history, dtype=torch.float64, device=param.device)
        self._gamma = torch.ones((), dtype=torch.float64, device=param.device)
        self._count = 0
        self._oldest = 0
        self._last_grad: Tensor | None = None
        self._last_step: Tensor | None = None

    @property
    def remembered(self) -> int:
        """How many pairs the history holds now (pairs of non-positive curvature are never taken in)."""
        return self._count

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        """Move the parameter by one step from its gradient ``grad`` at the current point."""
        g = grad.reshape(-1)
        if self._last_grad is None or self._last_step is None:
            # The first step has no curvature to scale it; this keeps its length at most lr (torch's rule).
            step = -g * (g.abs().sum().reciprocal().clamp(max=1.0) * self.lr)
        else:
            self._remember(self._last_step, g - self._last_grad)
            step = -self._apply_inverse_hessian(g) * self.lr
        self.param.add_(step.view_as(self.param))
        self._last_grad, self._last_step = g.clone(), step

    def _remember(self, s: Tensor, y: Tensor) -> None:
        """Add (s, y) to the history, dropping the oldest pair when it is full, if its curvature is positive."""
        new = torch.stack([s, y])
        with_old = self._in_time_order((self._filled() @ new.T).double().view(self._count, 2, 2))
        with_new = (new @ new.T).double()
        curvature = with_new[0, 1]
        if curvature.item() <= _MIN_CURVATURE:
            return
        history = self._pairs.shape[0]
        if self._count == history:
            slot, self._oldest = self._oldest, (self._oldest + 1) % history
            with_old = with_old[1:]
            self._sy[:-1, :-1] = self._sy[1:, 1:].clone()
            self._yy[:-1, :-1] = self._yy[1:, 1:].clone()
        else:
            slot, self._count = self._count, self._count + 1
        self._pairs[slot] = new
        last = self._count - 1
        self._sy[:last, last] = with_old[:, 0, 1]  # s_old · y_new
        self._sy[last, :last] = with_old[:, 1, 0]  # s_new · y_old
        self._yy[:last, last] = self._yy[last, :last] = with_old[:, 1, 1]
        self._sy[last, last], self._yy[last, last] = curvature, with_new[1, 1]
        self._gamma = curvature / with_new[1, 1]

    def _apply_inverse_hessian(self, g: Tensor) -> Tensor:
        count = self._count
        if count == 0:
            return g * self._gamma.to(g.dtype)
        filled = self._filled()
        products = self._in_time_order((filled @ g).double().view(count, 2))
        sg, yg = products[:, 0:1], products[:, 1:2]
        sy, yy, gamma = self._sy[:count, :count], self._yy[:count, :count], self._gamma
        r = sy.triu()
        p = torch.linalg.solve_triangular(r, sg, upper=True)
        u = torch.linalg.solve_triangular(r.mT, sy.diagonal()[:, None] * p + gamma * (yy @ p - yg), upper=False)
        coefficients = torch.cat([u, -gamma * p], dim=1).roll(self._oldest, 0)
        return g * gamma.to(g.dtype) + filled.T @ coefficients.view(-1).to(g.dtype)

    def _filled(self) -> Tensor:
        return self._pairs[: self._count].view(2 * self._count, self._pairs.shape[-1])

    def _in_time_order(self, per_slot: Tensor) -> Tensor:
        return per_slot.roll(-self._oldest, 0)
