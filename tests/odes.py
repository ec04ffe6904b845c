"""Test problems with known solutions, shared by the solver tests.

Each field is an nn.Module with no trainable parameters, called as f(u) or f(t, u) on a
state of shape (batch, d); ``t`` may be a float (ODENet) or a tensor (torchdiffeq).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
from odenets.solvers import takes_time
from torch import Tensor, nn

from odenets import solvers

F64 = torch.float64

# A stable, non-normal 3x3 matrix with a rotation: exercises every coupling term.
A3 = torch.tensor([[-0.5, 1.0, 0.0], [-1.0, -0.5, 0.3], [0.0, -0.2, -1.0]], dtype=F64)


class Counter(nn.Module):
    """f(u) = -u, counting its calls (so a test can check that none happened)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, u):
        self.calls += 1
        return -u


class Linear(nn.Module):
    """u' = A u."""

    def __init__(self, A: Tensor):
        super().__init__()
        self.register_buffer("A", A)

    def forward(self, u: Tensor) -> Tensor:
        return u @ self.A.T

    def exact(self, u0: Tensor, t: float) -> Tensor:
        return u0 @ torch.linalg.matrix_exp(self.A * t).T


class Logistic(nn.Module):
    """u' = u (1 - u), elementwise; f(0) = 0. u(t) = u0 e^t / (1 - u0 + u0 e^t)."""

    def forward(self, u: Tensor) -> Tensor:
        return u * (1 - u)

    @staticmethod
    def exact(u0: Tensor, t: float) -> Tensor:
        e = math.exp(t)
        return u0 * e / (1 - u0 + u0 * e)


class Forced(nn.Module):
    """u' = -u + cos(t), elementwise: u(t) = (u0 - 1/2) e^{-t} + (cos t + sin t) / 2."""

    def forward(self, t, u: Tensor) -> Tensor:
        return -u + torch.cos(torch.as_tensor(t, dtype=u.dtype, device=u.device))

    @staticmethod
    def exact(u0: Tensor, t: float) -> Tensor:
        return (u0 - 0.5) * math.exp(-t) + 0.5 * (math.cos(t) + math.sin(t))


class Scaled(nn.Module):
    """c * f, called with the time (FractalNet's f2 = f / 2 for Heun's scheme)."""

    def __init__(self, f: nn.Module, c: float):
        super().__init__()
        self.f, self.c = f, c

    def forward(self, t, u: Tensor) -> Tensor:
        return self.c * (self.f(t, u) if takes_time(self.f) else self.f(u))


class MatTanh(nn.Module):
    """u' = B tanh(u): a nonlinear coupling with f(0) = 0 (RevNet's F or G)."""

    def __init__(self, B: Tensor):
        super().__init__()
        self.register_buffer("B", B)

    def forward(self, u: Tensor) -> Tensor:
        return torch.tanh(u) @ self.B.T


class Split(nn.Module):
    """The coupled system RevNet discretises, as one field: X' = F(Y), Y' = G(X)."""

    def __init__(self, F: nn.Module, G: nn.Module):
        super().__init__()
        self.F, self.G = F, G

    def forward(self, t, u: Tensor) -> Tensor:
        x, y = u.chunk(2, dim=1)
        return torch.cat((self.F(y), self.G(x)), dim=1)


def dopri5_reference(f: nn.Module, u0: Tensor, t: float) -> Tensor:
    """A tight adaptive reference solution (torchdiffeq dopri5, rtol 1e-12)."""
    import torchdiffeq

    times = torch.tensor([0.0, t], dtype=u0.dtype)
    field = Scaled(f, 1.0)  # called as f(t, u), as torchdiffeq calls it
    return torchdiffeq.odeint(field, u0, times, method="dopri5", rtol=1e-12, atol=1e-14)[-1]


def observed_orders(errors: list[float]) -> list[float]:
    """log2 of successive error ratios for a step halved each time."""
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


@contextlib.contextmanager
def registered(schemes: dict[str, Callable]) -> Iterator[None]:
    """Register user schemes for the duration of a test module, so that other tests
    see the registry as the library ships it."""
    for name, factory in schemes.items():
        solvers.register(name, factory)
    try:
        yield
    finally:
        for name in schemes:
            solvers.unregister(name)


def saved_bytes(net: nn.Module, u0: Tensor) -> int:
    """Bytes of the tensors autograd saves in ``net``'s forward pass (counted with
    saved_tensors_hooks); the backward pass is then run to show the graph is usable."""
    total = 0

    def pack(x: Tensor) -> Tensor:
        nonlocal total
        total += x.numel() * x.element_size()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):  # the forward pass only
        out = net(u0.clone().requires_grad_(True))
    out.sum().backward()
    return total
