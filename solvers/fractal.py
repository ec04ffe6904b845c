"""FractalNet read as a second-order Runge–Kutta scheme with learned combination weights."""
from __future__ import annotations

import torch
from torch import Tensor

from .scheme import Past, Record, Scheme


class Fractal(Scheme):
    """Two functions per step, f1 and f2, and trainable k1, k2, k3 per step:

        y_n     = k3 u_n + dt f1(u_n)
        u_{n+1} = k1 u_n + k2 y_n + dt f2(y_n)

    At dt = 1 this is the paper's x_{n+1} = k1 x_n + k2 (k3 x_n + f1(x_n)) + f2(k3 x_n + f1(x_n)).
    The weights start at k1 = k2 = 1/2, k3 = 1, where f1 = f and f2 = f/2 give Heun's
    second-order scheme; training moves them freely.
    """

    name = "fractal"
    order = 2
    evals = 2
    functions = 2
    trained = ("k1", "k2", "k3")

    def init_params(self, n: int) -> dict[str, Tensor]:
        return {"k1": torch.tensor(0.5), "k2": torch.tensor(0.5), "k3": torch.tensor(1.0)}

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, *, k1: Tensor, k2: Tensor,
             k3: Tensor) -> tuple[Tensor, Record]:
        f1, f2 = f
        y = (k3 * u).add(f1(t, u), alpha=dt)
        return (k1 * u + k2 * y).add(f2(t + dt, y), alpha=dt), Record(u)
