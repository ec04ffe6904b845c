"""Euler–Maruyama, the stochastic counterpart of forward Euler."""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
from torch import Tensor

from .runge_kutta import RungeKutta
from .scheme import Past, Record, Scheme, takes_time
from .tableau import EULER


class EulerMaruyama(Scheme):
    """Strong order 1/2 scheme for the Itô SDE du = f(t, u) dt + g(t, u) dW:

        u_{n+1} = u_n + dt f_n(u_n) + g(u_n) sqrt(dt) xi_n,    xi_n ~ N(0, I).

    ``diffusion`` is g: a float (additive noise) or a callable of u or (t, u), applied
    elementwise (diagonal noise). In eval mode the deterministic drift path, forward
    Euler, is taken instead (:attr:`deterministic`).
    """

    name = "euler_maruyama"
    order = 1

    def __init__(self, diffusion: Union[float, Callable]):
        if callable(diffusion):
            # keep the callable itself (not a wrapper around it), so a copied network uses its own copy
            self.g, self.g_timed = diffusion, takes_time(diffusion)
        elif isinstance(diffusion, (int, float)) and not isinstance(diffusion, bool):
            self.g = float(diffusion)
        else:
            raise ValueError("euler_maruyama needs diffusion=g: a float (additive noise) or a callable/module "
                             f"of the state, got {diffusion!r}")
        self._drift = RungeKutta(EULER)

    @property
    def deterministic(self) -> Scheme:
        return self._drift

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        g = self.g if isinstance(self.g, float) else self.g(t, u) if self.g_timed else self.g(u)
        noise = torch.randn_like(u).mul_(math.sqrt(dt))
        return u.add(f(t, u), alpha=dt) + g * noise, Record(u)
