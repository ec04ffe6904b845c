"""Momentum ResNets (Sander, Ablin, Blondel & Peyré, ICML 2021): a heavy-ball step, which
is an explicit linear two-step scheme and can be run backwards."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .characteristic import one_step
from .multistep import LinearMultistep, MultistepCoefficients
from .scheme import Past, Record, Scheme, axpy, channelwise, plus


class FirstStep(Scheme):
    """Momentum's step without a history (v_0 = 0), x_1 = x_0 + dt (1 - gamma) f(x_0):
    forward Euler on the field (1 - gamma) f, stable where |1 + (1 - gamma) z| <= 1, a disc
    1 / (1 - gamma) times Euler's. Momentum takes this step itself; it is the starter the
    analysis judges a net's first step by (:meth:`Scheme.with_history`)."""

    order = 1

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.name = f"momentum start(gamma={gamma:g})"

    def characteristic(self, **params: Tensor) -> Tensor:
        return one_step((1.0, 1 - self.gamma))

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        v = (1 - self.gamma) * f(t, u)
        return u.add(v, alpha=dt), Record(u, v)


class Momentum(LinearMultistep):
    """The momentum step, v_0 = 0:

        v_{n+1} = gamma v_n + (1 - gamma) f_n(x_n),    x_{n+1} = x_n + dt v_{n+1},

    i.e. the explicit two-step scheme with x_{-1} = x_0

        x_{n+1} = (1 + gamma) x_n - gamma x_{n-1} + dt (1 - gamma) f_n(x_n).

    At dt = 1 it is Sander et al.'s Momentum ResNet. With gamma fixed it is a first-order,
    zero-stable scheme for x' = f(x) (rho(zeta) = (zeta - 1)(zeta - gamma)) whose modified
    equation is x' + (1 + gamma) / (1 - gamma) (dt / 2) x'' = f(x); with gamma = 1 - dt / eps
    it is a first-order scheme for the second-order ODE eps x'' + x' = f(x), x'(0) = 0
    (eps (x_{n+1} - 2 x_n + x_{n-1}) / dt^2 + (x_n - x_{n-1}) / dt = f(x_n)).

    The step is computed in the velocity form, as the authors' code does: the two-step form
    subtracts two nearly equal terms and has about ten times its float32 error. Step n's
    record is (x_n, v_{n+1}): the velocity is the history a step reads (a record without
    one, handed in from elsewhere, gives v_{n+1} = (x_{n+1} - x_n) / dt).

    ``gamma`` is in (0, 1), default 0.9. ``train_gamma=True`` makes it a trainable
    coefficient of each step, starting at ``gamma`` and left unconstrained; the first step
    of a net built without ``carry_in`` has no coefficients (it has no x_{n-1}) and uses
    ``gamma``. A shape-changing step (a downsampling block) is the ResNet step
    P(x_n) + dt f_n(x_n) and hands P(x_n) on as x_{n-1}, so the velocity after it is
    f_n(x_n). The step is invertible (:meth:`inverse`), exactly on a fixed-point carrier
    (:meth:`fixed_step`).
    """

    invertible = True
    exact_reversal = True
    vjp = True

    def __init__(self, gamma: float = 0.9, train_gamma: bool = False):
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool):
            raise TypeError(f"gamma must be a number in (0, 1), got {type(gamma).__name__}")
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must be in (0, 1) (0 is forward Euler and cannot be inverted; 1 never moves), "
                             f"got {gamma}")
        if not isinstance(train_gamma, bool):
            raise TypeError(f"train_gamma must be True or False, got {type(train_gamma).__name__}")
        g = float(gamma)
        super().__init__(MultistepCoefficients("momentum", 1, alpha=(1 + g, -g), beta=(1 - g, 0.0)),
                         starter=FirstStep(g))
        self.gamma, self.train_gamma = g, train_gamma
        self.trained = ("gamma",) if train_gamma else ()

    def init_params(self, n: int) -> dict[str, Tensor]:
        return {"gamma": torch.tensor(self.gamma)} if self.train_gamma else {}

    def weights(self, gamma: Optional[Tensor] = None) -> tuple[Sequence, Sequence]:
        g = self.gamma if gamma is None else gamma
        return (1 + g, -g), (1 - g, 0.0)

    def _gamma(self, u: Tensor, params: dict) -> Union[float, Tensor]:
        g = params.get("gamma", self.gamma)
        return channelwise(g, u) if isinstance(g, Tensor) else g

    @staticmethod
    def _velocity(dt: float, u: Tensor, past: Past) -> Optional[Tensor]:
        """v_n from the history (None for v_0 = 0)."""
        if not past:
            return None
        return past[0].f if past[0].f is not None else (u - past[0].u) / dt

    def own_records(self, dt: float, u: Tensor, past: Past) -> Past:
        """A record handed in without the velocity gets it: (x_n - x_{n-1}) / dt."""
        if past and past[0].f is None:
            return (Record(past[0].u, self._velocity(dt, u, past)), *past[1:])
        return past

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        g = self._gamma(u, params)
        v = self._velocity(dt, u, past)
        v = (1 - g) * f(t, u) if v is None else g * v + (1 - g) * f(t, u)
        return u.add(v, alpha=dt), Record(u, v)

    def transition(self, f, t: float, dt: float, u: Tensor, pu: Tensor) -> tuple[Tensor, Record]:
        v = f(t, u)
        return pu.add(v, alpha=dt), Record(pu, v)

    def inverse(self, f, t: float, dt: float, u_next: Tensor, past_next: Past,
                **params: Tensor) -> tuple[Tensor, Past]:
        """(x_n, past_n) from (x_{n+1}, past_{n+1}): x_n is past_{n+1}[0].u, and

            v_n = (v_{n+1} - (1 - gamma) f_n(x_n)) / gamma,    x_{n-1} = x_n - dt v_n.

        In floats rounding errors grow by about 1 / gamma per inverted step (inverting the
        first step gives v_0 = 0 up to rounding); :meth:`fixed_inverse` is exact."""
        if not past_next:
            raise ValueError("inverting a momentum step needs past_next[0].u = x_n, the state the step started from")
        u = past_next[0].u
        g = self._gamma(u, params)
        v = (self._velocity(dt, u_next, past_next) - (1 - g) * f(t, u)) / g
        return u, (Record(u.sub(v, alpha=dt), v),)

    def step_vjp(self, vjp, dt: float, grad_u: Tensor, grad_past: tuple, records: int) -> tuple[Tensor, tuple]:
        """With the gradients a of x_{n+1} and (b, c) of the record (x_n, v_{n+1}) it
        leaves: v_{n+1}'s is w = dt a + c, x_n's a + b + (1 - gamma) f'(x_n)^T w, and v_n's
        (in the record handed in) gamma w; for a fixed gamma (a trained one is recomputed)."""
        b, c = grad_past
        w = axpy(c, dt, grad_u)
        x = plus(plus(grad_u, b), vjp(0, 0, axpy(None, 1 - self.gamma, w)))
        return x, (None, axpy(None, self.gamma, w)) if records else ()

    # -- on a fixed-point carrier (X, V, B): x_n, v_n and the buffer of the bits that the
    # multiplications by gamma dropped (solvers.fixed_point)

    def fixed_encode(self, dt: float, u: Tensor, past: Past, fx) -> tuple[Tensor, ...]:
        v = self._velocity(dt, u, past)
        V = fx.zeros(u.shape, u.device) if v is None else fx.fixed(v)
        return fx.fixed(u), V, torch.zeros_like(V)

    def fixed_decode(self, dt: float, carrier: tuple[Tensor, ...], fx) -> tuple[Tensor, Past]:
        X, V, _ = carrier
        return fx.float(X), (Record(fx.float(X - fx.times(V, dt)), fx.float(V)),)

    def fixed_step(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx, **params: Tensor):
        X, V, B = carrier
        g = params.get("gamma", self.gamma)
        W, B = fx.scale_down(V, fx.ratio(g), B)
        V = fx.add(W, f(t, fx.float(X)), 1 - g)
        return X + fx.times(V, dt), V, B

    def fixed_inverse(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx, **params: Tensor):
        X, V, B = carrier
        g = params.get("gamma", self.gamma)
        X = X - fx.times(V, dt)
        V, B = fx.scale_up(fx.add(V, f(t, fx.float(X)), 1 - g, sign=-1), fx.ratio(g), B)
        return X, V, B
