"""The modified equation of a step, read from the characteristic polynomial it declares.

A step with characteristic polynomial pi(zeta; z) = sum c_ij zeta^i z^j
(:meth:`odenets.solvers.Scheme.characteristic`, degree s in zeta) relates
u_{n+1+i-s} and dt^j-fold f-terms. Expanded by Taylor about t_n (zeta^i -> e^{(i-s+1) x},
x = dt d/dt, z -> dt f), P(x, z) = sum c_ij e^{(i-s+1) x} z^j = sum P_qj x^q z^j, and
after division by dt the step solves, up to O(dt^2),

    P_10 u' + P_20 dt u'' = -P_01 f(u) - dt (P_11 - P_02 P_10 / P_01) (d/dt) f(u),

where the z^2 term of a Runge–Kutta step, dt^2 f'(u) f(u), is written through
f' f = -(P_10 / P_01) (d/dt) f + O(dt) (exact to O(dt^2) for linear multistep and
Runge–Kutta steps on any f; PolyNet's compositions F(F(u)) read the same for linear f).
For u_{n+1} = sum_j alpha_j u_{n-j} + dt sum_j beta_j f(u_{n-j}) this is

    a_1 u' + a_2 (dt / 2) u'' = b_0 f(u) + b_1 dt (d/dt) f(u),
    a_q = 1 - sum_j alpha_j (-j)^q,   b_q = sum_j beta_j (-j)^q.

LM-ResNet's step (alpha = (1 - k, k), beta = (1, 0)) gives (1 + k) u' + (1 - k)(dt/2) u'' = f(u),
the equation of :mod:`odenets.analysis.modified_equation`; the momentum step
(alpha = (1 + gamma, -gamma), beta = (1 - gamma, 0)) gives
(1 - gamma) u' + (1 + gamma)(dt/2) u'' = (1 - gamma) f(u): a damped second-order ODE
eps u'' + u' = f(u) with eps = (1 + gamma) dt / (2 (1 - gamma)); forward Euler gives
u' + (dt/2) u'' = f(u), Heun u' + (dt/2) u'' = f(u) + (dt/2) (d/dt) f(u), i.e. u' = f + O(dt^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from odenets.solvers import MultistepCoefficients, Scheme

from .schemes import resolve

Number = Union[float, Tensor]


@dataclass(frozen=True, eq=False)
class SecondOrderEquation:
    """``du * u' + ddu * u'' = f * f(u) + df * d/dt f(u)``, the modified equation of a step to O(dt^2)."""

    du: Number
    ddu: Number
    f: Number
    df: Number

    @property
    def epsilon(self) -> Number:
        """The inertia eps of eps u'' + u' = (f / du) f(u) when df = 0: ddu / du."""
        return self.ddu / self.du


def modified_multistep(scheme: Union[str, Scheme, MultistepCoefficients], dt: float = 1.0,
                       **params) -> SecondOrderEquation:
    """The modified equation of one step of ``scheme`` (a name, a Scheme or data that
    declares a characteristic polynomial: MultistepCoefficients, a ButcherTableau) at step
    ``dt``. ``params`` are the step's trained coefficients, e.g. ``k=-0.5`` for ``'lm'``
    (floats, or tensors, per channel, which give tensors), and for a name the options
    that build it (``gamma=0.5`` for ``'momentum'``)."""
    tensors = any(isinstance(v, Tensor) for v in params.values())
    scheme, _, params = resolve(scheme, params, "modified equation")
    if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not dt > 0:
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    c = scheme.characteristic(**params)
    if c is None:
        raise ValueError(f"{scheme.name!r} declares no characteristic polynomial: it is not one linear recurrence, "
                         "and has no modified equation of this form")
    shift = torch.arange(c.shape[-2], dtype=torch.float64) - (c.shape[-2] - 2)  # zeta^i is u(t_n + (i - s + 1) dt)

    def moment(j: int, q: int) -> Tensor:
        return (c[..., j] * shift ** q).sum(-1) / (2 if q == 2 else 1) if j < c.shape[-1] else torch.zeros(())

    p10, p20, p01, p11, p02 = moment(0, 1), moment(0, 2), moment(1, 0), moment(1, 1), moment(2, 0)
    df = p11 - (p02 * p10 / p01 if bool(p02.ne(0).any()) else 0)
    out = (p10, dt * p20, -p01, -dt * df + 0.0)  # + 0.0: no negative zero
    if not tensors:
        out = tuple(float(v) for v in out)
    return SecondOrderEquation(*out)
