"""Momentum ResNets (Sander, Ablin, Blondel & Peyré, ICML 2021): a heavy-ball step, which
is an explicit linear two-step scheme and can be run backwards."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .multistep import LinearMultistep, MultistepCoefficients
from .runge_kutta import RungeKutta
from .scheme import Past, Record, axpy, channelwise
from .tableau import EULER


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

    ``gamma`` is in (0, 1), default 0.9. ``train_gamma=True`` makes it a trainable
    coefficient of each step, starting at ``gamma`` and left unconstrained; the first step
    of a net built without ``carry_in`` has no coefficients (it has no x_{n-1}) and uses
    ``gamma``. A shape-changing step (a downsampling block) is the ResNet step
    P(x_n) + dt f_n(x_n) and hands P(x_n) on as x_{n-1}, so the velocity after it is
    f_n(x_n). The step is invertible: :meth:`inverse`.
    """

    invertible = True
    combine_is_new = True

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
                         starter=RungeKutta(EULER))  # never used: the first step takes x_{-1} = x_0
        self.gamma, self.train_gamma = g, train_gamma
        self.trained = ("gamma",) if train_gamma else ()

    def init_params(self, n: int) -> dict[str, Tensor]:
        return {"gamma": torch.tensor(self.gamma)} if self.train_gamma else {}

    def weights(self, gamma: Optional[Tensor] = None) -> tuple[Sequence, Sequence]:
        g = self.gamma if gamma is None else gamma
        return (1 + g, -g), (1 - g, 0.0)

    def combine(self, states: Sequence[Tensor], alpha: Sequence) -> Tensor:
        """(1 + gamma) x_n - gamma x_{n-1} as one lerp (LM's, at k = -gamma)."""
        u, previous = states
        w = alpha[1]
        return torch.lerp(u, previous, channelwise(w, u) if isinstance(w, Tensor) else w)

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        # v_0 = 0 is x_{-1} = x_0: the first step needs no starter
        return super().step(f, t, dt, u, past or (Record(u),), **params)

    def inverse(self, f, t: float, dt: float, u_next: Tensor, past_next: Past,
                **params: Tensor) -> tuple[Tensor, Past]:
        """(x_n, past_n) from (x_{n+1}, past_{n+1}): x_n is past_{n+1}[0].u, and

            x_{n-1} = x_n - (x_{n+1} - x_n - dt (1 - gamma) f_n(x_n)) / gamma,

        i.e. v_n = (v_{n+1} - (1 - gamma) f_n(x_n)) / gamma. Rounding errors grow by a little
        more than 1 / gamma per inverted step (docs/architectures-are-solvers.md gives the
        depths at which it stays accurate). Inverting the first step gives x_{-1} = x_0 up
        to rounding."""
        if not past_next:
            raise ValueError("inverting a momentum step needs past_next[0].u = x_n, the state the step started from")
        g = self.gamma if "gamma" not in params else params["gamma"]
        u = past_next[0].u
        drift = axpy(u_next - u, -dt * (1 - g), f(t, u))  # gamma (x_n - x_{n-1})
        previous = u - drift / (channelwise(g, u) if isinstance(g, Tensor) else g)
        return u, (Record(previous),)
