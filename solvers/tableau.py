"""Butcher tableaus of explicit Runge–Kutta schemes, each checked for consistency.

A tableau (c, A, b) defines the s-stage scheme

    k_i     = f(t_n + c_i dt, u_n + dt * sum_{j<i} a_ij k_j),   i = 1..s
    u_{n+1} = u_n + dt * sum_i b_i k_i.

Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I*, §II.1–2.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import isclose
from numbers import Rational

from torch import Tensor

from .characteristic import one_step
from .rooted_trees import bracket, density, elementary_weights, trees

_TOL = 1e-12  # for float entries; Fractions (and ints) are compared exactly


def _equal(x, y) -> bool:
    if isinstance(x, Rational) and isinstance(y, Rational):
        return x == y
    return isclose(x, y, abs_tol=_TOL)


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta tableau.

    ``a`` holds the rows of the strictly lower-triangular matrix A (row i has i entries),
    so ``a[0] == ()``. On construction the tableau checks that it is explicit, that
    c_i = sum_j a_ij, and that it has the order it claims: for every rooted tree t of at
    most ``order`` nodes, sum_i b_i Phi_i(t) = 1/gamma(t) (Butcher's order conditions, one
    per tree, see :mod:`odenets.solvers.rooted_trees`; 8 up to order 4, 37 up to order 6). Entries
    may be floats, checked to within 1e-12, or Fractions, checked exactly and then kept
    as floats.
    """

    name: str
    order: int
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]

    def __post_init__(self) -> None:
        s = len(self.b)
        if s < 1 or len(self.c) != s or len(self.a) != s:
            raise ValueError(f"tableau {self.name!r}: a, b and c must describe the same number of stages "
                             f"(got {len(self.a)} rows of a, {len(self.b)} b, {len(self.c)} c)")
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(f"tableau {self.name!r}: row {i} of a must have {i} entries "
                                 f"(explicit schemes have a strictly lower-triangular A), got {len(row)}")
            if not _equal(sum(row), self.c[i]):
                raise ValueError(f"tableau {self.name!r}: c[{i}] = {self.c[i]} but row {i} of a sums to {sum(row)}")
        if self.order < 1:
            raise ValueError(f"tableau {self.name!r}: order must be at least 1, got {self.order}")
        for q in range(1, self.order + 1):
            for t in trees(q):
                value = sum(bi * phi for bi, phi in zip(self.b, elementary_weights(t, self.a)))
                want = Fraction(1, density(t))
                if not _equal(value, want):
                    raise ValueError(f"tableau {self.name!r} claims order {self.order} but fails an order-{q} "
                                     f"condition, that of the tree {bracket(t)}: "
                                     f"sum_i b_i Phi_i = {value} != 1/gamma = {want}")
        # the steppers and analyses compute in floats (and tensors), which Fractions do not mix with
        object.__setattr__(self, "a", tuple(tuple(map(float, row)) for row in self.a))
        object.__setattr__(self, "b", tuple(map(float, self.b)))
        object.__setattr__(self, "c", tuple(map(float, self.c)))

    @property
    def stages(self) -> int:
        """The number of stages, that is of f-evaluations per step."""
        return len(self.b)

    @property
    def stability_function(self) -> tuple[float, ...]:
        """The coefficients r_0..r_s of R(z) = 1 + z b^T (I - zA)^{-1} 1 = sum_m r_m z^m,
        the factor by which a step multiplies u on u' = lambda u (z = dt lambda): A is
        nilpotent, so r_0 = 1 and r_{m+1} = b^T A^m 1."""
        r, v = [1.0], [1.0] * self.stages
        for _ in range(self.stages):
            r.append(sum(bi * vi for bi, vi in zip(self.b, v)))
            v = [sum(aij * vj for aij, vj in zip(row, v)) for row in self.a]
        return tuple(r)

    def characteristic(self) -> Tensor:
        """pi = zeta - R(z) (:func:`odenets.solvers.characteristic.one_step`)."""
        return one_step(self.stability_function)


EULER = ButcherTableau("euler", 1, a=((),), b=(1.0,), c=(0.0,))
MIDPOINT = ButcherTableau("midpoint", 2, a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5))
HEUN = ButcherTableau("heun", 2, a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0))
RK3 = ButcherTableau("rk3", 3, a=((), (0.5,), (-1.0, 2.0)), b=(1 / 6, 2 / 3, 1 / 6), c=(0.0, 0.5, 1.0))
RK4 = ButcherTableau("rk4", 4, a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                     b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), c=(0.0, 0.5, 0.5, 1.0))
