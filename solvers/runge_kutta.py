"""One stepper for every explicit Runge–Kutta scheme: a scheme is its Butcher tableau."""
from __future__ import annotations

from torch import Tensor

from .scheme import Past, Record, Scheme, axpy
from .tableau import ButcherTableau


class RungeKutta(Scheme):
    """Explicit Runge–Kutta scheme driven by a :class:`ButcherTableau`.

        k_i     = f(t_n + c_i dt, u_n + dt * sum_{j<i} a_ij k_j)
        u_{n+1} = u_n + dt * sum_i b_i k_i

    Forward Euler (one stage, b = 1) is ResNet: u_{n+1} = u_n + f_n(u_n) at dt = 1.
    The record of step n keeps k_1 = f(t_n, u_n), which a multistep scheme started by
    this one reuses.
    """

    def __init__(self, tableau: ButcherTableau):
        if not isinstance(tableau, ButcherTableau):
            raise TypeError(f"RungeKutta takes a ButcherTableau, got {type(tableau).__name__}")
        self.tableau = tableau
        self.name = tableau.name
        self.order = tableau.order
        self.evals = tableau.stages
        self.euler_options = {} if tableau.b == (1.0,) else None  # one stage at u_n: forward Euler

    def characteristic(self, **params: Tensor) -> Tensor:
        """pi = zeta - R(z), R the tableau's stability function."""
        return self.tableau.characteristic()

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        tab = self.tableau
        if tab.stages == 1:  # forward Euler, every step of a converted ResNet or transformer: no loops
            k = f(t, u)
            return axpy(u, dt * tab.b[0], k), Record(u, k)
        ks: list[Tensor] = []
        for row, ci in zip(tab.a, tab.c):
            ui = u
            for aij, kj in zip(row, ks):
                ui = axpy(ui, dt * aij, kj)
            ks.append(f(t + ci * dt, ui))
        out = u
        for bi, ki in zip(tab.b, ks):
            out = axpy(out, dt * bi, ki)
        return out, Record(u, ks[0])
