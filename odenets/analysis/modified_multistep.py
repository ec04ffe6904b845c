"""The modified equation of any explicit linear multistep step, from its coefficients.

A step u_{n+1} = sum_j alpha_j u_{n-j} + dt sum_j beta_j f(u_{n-j}), with u_{n-j} = u(t_n - j dt)
and g(t) = f(u(t)) expanded by Taylor about t_n, reads after division by dt

    sum_{q>=1} dt^{q-1} / q! a_q u^(q) = sum_{q>=0} dt^q / q! b_q g^(q),
    a_q = 1 - sum_j alpha_j (-j)^q,   b_q = sum_j beta_j (-j)^q

(sum_j alpha_j = 1 for a consistent scheme), so up to O(dt^2) the step solves

    a_1 u' + a_2 (dt / 2) u'' = b_0 f(u) + b_1 dt (d/dt) f(u).

LM-ResNet's step (alpha = (1 - k, k), beta = (1, 0)) gives (1 + k) u' + (1 - k)(dt/2) u'' = f(u),
the equation of :mod:`odenets.analysis.modified_equation`; the momentum step
(alpha = (1 + gamma, -gamma), beta = (1 - gamma, 0)) gives
(1 - gamma) u' + (1 + gamma)(dt/2) u'' = (1 - gamma) f(u): a damped second-order ODE
eps u'' + u' = f(u) with eps = (1 + gamma) dt / (2 (1 - gamma)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from torch import Tensor

from odenets import solvers
from odenets.solvers import LinearMultistep, MultistepCoefficients

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


def modified_multistep(scheme: Union[str, LinearMultistep, MultistepCoefficients], dt: float = 1.0,
                       **params) -> SecondOrderEquation:
    """The modified equation of one step of ``scheme`` (a name, a LinearMultistep or its
    coefficients) at step ``dt``. ``params`` are the step's coefficients for a scheme whose
    weights are learned, e.g. ``k=-0.5`` for ``'lm'``, ``gamma=0.5`` for ``'momentum'``
    (floats or tensors); without them a scheme's fixed coefficients are used."""
    if isinstance(scheme, str):
        scheme = solvers.get(scheme)
    if isinstance(scheme, MultistepCoefficients):
        if params:
            raise ValueError(f"fixed coefficients take no step parameters, got {', '.join(params)}")
        alpha, beta = scheme.alpha, scheme.beta
    elif isinstance(scheme, LinearMultistep):
        alpha, beta = scheme.weights(**params)
    else:
        raise TypeError(f"expected a linear multistep scheme (a name, LinearMultistep or MultistepCoefficients), "
                        f"got {type(scheme).__name__}")
    if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not dt > 0:
        raise ValueError(f"dt must be a positive number, got {dt!r}")

    def a(q: int) -> Number:
        return 1 - sum(x * (-j) ** q for j, x in enumerate(alpha))

    def b(q: int) -> Number:
        return sum(x * (-j) ** q for j, x in enumerate(beta))

    return SecondOrderEquation(du=a(1), ddu=a(2) * dt / 2, f=b(0), df=b(1) * dt)
