"""RevNet read as forward Euler on a coupled system, which can be run backwards."""
from __future__ import annotations

import torch
from torch import Tensor

from .scheme import Past, Record, Scheme, axpy, plus


class RevNet(Scheme):
    """Forward Euler on the split system X' = F(Y), Y' = G(X), with the state split
    into halves (X, Y) along dim 1:

        X_{n+1} = X_n + dt F_n(Y_n)
        Y_{n+1} = Y_n + dt G_n(X_{n+1})

    Each step is invertible whatever F and G are
    (Y_n = Y_{n+1} - dt G_n(X_{n+1}), X_n = X_{n+1} - dt F_n(Y_n)), so the states need
    not be stored for the backward pass: they are recomputed from the output. In floats
    the inverse is exact only up to rounding; on a fixed-point carrier
    (``exact_reversal``) the additions are of integers and the inverse is exact.
    """

    name = "revnet"
    order = 1
    evals = 2
    functions = 2
    splits_state = True
    invertible = True
    exact_reversal = True
    vjp = True

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        F, G = f
        x, y = u.chunk(2, dim=1)
        x = x.add(F(t, y), alpha=dt)
        y = y.add(G(t, x), alpha=dt)
        return torch.cat((x, y), dim=1), Record(u)

    def inverse(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Past]:
        """u_n from u_{n+1}; a one-step scheme leaves no history."""
        F, G = f
        x, y = u.chunk(2, dim=1)
        y = y.sub(G(t, x), alpha=dt)
        x = x.sub(F(t, y), alpha=dt)
        return torch.cat((x, y), dim=1), ()

    # on a fixed-point carrier (X, Y): the two halves, each stepped without a concatenation

    def fixed_encode(self, dt: float, u: Tensor, past: Past, fx) -> tuple[Tensor, ...]:
        return tuple(fx.fixed(half) for half in u.chunk(2, dim=1))

    def fixed_decode(self, dt: float, carrier: tuple[Tensor, ...], fx) -> tuple[Tensor, Past]:
        return torch.cat([fx.float(half) for half in carrier], dim=1), ()

    def fixed_step(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx, **params: Tensor):
        F, G = f
        X, Y = carrier
        X = fx.add(X, F(t, fx.float(Y)), dt)
        return X, fx.add(Y, G(t, fx.float(X)), dt)

    def fixed_inverse(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx, **params: Tensor):
        F, G = f
        X, Y = carrier
        Y = fx.add(Y, G(t, fx.float(X)), dt, sign=-1)
        return fx.add(X, F(t, fx.float(Y)), dt, sign=-1), Y

    def step_vjp(self, vjp, dt: float, grad_u: Tensor, grad_past: tuple, records: int) -> tuple[Tensor, tuple]:
        """With the gradients (a, b) of (X_{n+1}, Y_{n+1}): X_{n+1}'s is
        a + dt G'(X_{n+1})^T b, Y_n's is b + dt F'(Y_n)^T (that), and X_n's is that too."""
        a, b = grad_u.chunk(2, dim=1)
        a = plus(a, vjp(1, 0, axpy(None, dt, b)))  # the inverse evaluates G first, F second
        b = plus(b, vjp(0, 0, axpy(None, dt, a)))
        return torch.cat((a, b), dim=1), ()

    def transition(self, f, t: float, dt: float, u: Tensor, pu: Tensor) -> tuple[Tensor, Record]:
        """A shape-changing step on each half: X' = P(X) + dt F(Y), Y' = P(Y) + dt G(X'),
        with ``pu`` = (P(X), P(Y)); not invertible, as RevNet's downsampling blocks."""
        F, G = f
        _, y = u.chunk(2, dim=1)
        px, py = pu.chunk(2, dim=1)
        x = px.add(F(t, y), alpha=dt)
        y = py.add(G(t, x), alpha=dt)
        return torch.cat((x, y), dim=1), Record(pu)
