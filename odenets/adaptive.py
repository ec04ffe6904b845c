"""Adaptive-step integration of a single shared f, delegated to torchdiffeq."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .step import Context, Field


class Adaptive:
    """u(t0 + T) (or the trajectory at ``steps`` equal intervals) for u' = f(t, u) by the
    adaptive ``method`` of torchdiffeq, to tolerances ``rtol``/``atol``; ``adjoint``
    backpropagates by torchdiffeq's adjoint method, in memory constant in the number of
    steps the solver takes.

    A plain object, not a module: the ODENet owns f."""

    def __init__(self, f: nn.Module, method: str, t0: float, dt: float, steps: int, rtol: float, atol: float,
                 adjoint: bool):
        self.f, self.field = f, Field(f, 0)  # its signature read once, not at every call
        self.method, self.t0, self.dt, self.steps = method, t0, dt, steps
        self.rtol, self.atol, self.adjoint = rtol, atol, adjoint

    def check_context(self, context: Context) -> None:
        """A clear error for a context key f does not take."""
        self.field.check_keywords(context)

    def __call__(self, u0: Tensor, trajectory: bool, context: Context) -> Tensor:
        """``context`` goes to every evaluation of f (a closure for torchdiffeq); under the
        adjoint, its tensors that require a gradient get one, as f's parameters do."""
        import torchdiffeq

        n = self.steps if trajectory else 1
        t = torch.linspace(self.t0, self.t0 + self.steps * self.dt, n + 1, dtype=u0.dtype, device=u0.device)
        field = _Field(self.f, self.field.bind(context))
        kwargs = dict(method=self.method, rtol=self.rtol, atol=self.atol)
        if self.adjoint:
            tensors = tuple(v for v in context.values() if isinstance(v, Tensor) and v.requires_grad)
            out = torchdiffeq.odeint_adjoint(field, u0, t, adjoint_params=tuple(field.parameters()) + tensors,
                                             **kwargs)
        else:
            out = torchdiffeq.odeint(field, u0, t, **kwargs)
        return out if trajectory else out[-1]


class _Field(nn.Module):
    """f as the nn.Module torchdiffeq's adjoint expects (its parameters are the adjoint's),
    called as f(t, u, **context) and checked like a step's."""

    def __init__(self, f: nn.Module, call: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.f, self.call = f, call

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        return self.call(t, u)
