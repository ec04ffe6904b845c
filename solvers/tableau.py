"""Butcher tableaus of explicit Runge–Kutta schemes, each checked for consistency.

A tableau (c, A, b) defines the s-stage scheme

    k_i     = f(t_n + c_i dt, u_n + dt * sum_{j<i} a_ij k_j),   i = 1..s
    u_{n+1} = u_n + dt * sum_i b_i k_i.

Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I*, §II.1–2.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import isclose

_TOL = 1e-12


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta tableau.

    ``a`` holds the rows of the strictly lower-triangular matrix A (row i has i entries),
    so ``a[0] == ()``. On construction the tableau checks that it is explicit, that
    c_i = sum_j a_ij, and that it satisfies the order conditions up to ``order``
    (checked for orders up to 4; a higher claimed order is checked up to 4).
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
            if not isclose(sum(row), self.c[i], abs_tol=1e-12):
                raise ValueError(f"tableau {self.name!r}: c[{i}] = {self.c[i]} but row {i} of a sums to {sum(row)}")
        if self.order < 1:
            raise ValueError(f"tableau {self.name!r}: order must be at least 1, got {self.order}")
        for q, (lhs, rhs) in enumerate(self._order_conditions(), start=1):
            if q > self.order:
                break
            for value, want in zip(lhs, rhs):
                if not isclose(value, want, abs_tol=_TOL):
                    raise ValueError(f"tableau {self.name!r} claims order {self.order} but fails an "
                                     f"order-{q} condition: {value} != {want}")

    @property
    def stages(self) -> int:
        return len(self.b)

    def _order_conditions(self):
        """Yield, for q = 1..4, the values of the order-q tree conditions and their targets."""
        b, c, s = self.b, self.c, len(self.b)

        def A(i, j):
            return self.a[i][j] if j < i else 0.0

        Ac = [sum(A(i, j) * c[j] for j in range(s)) for i in range(s)]
        yield [sum(b)], [1.0]
        yield [sum(bi * ci for bi, ci in zip(b, c))], [1 / 2]
        yield ([sum(bi * ci**2 for bi, ci in zip(b, c)), sum(bi * x for bi, x in zip(b, Ac))],
               [1 / 3, 1 / 6])
        Ac2 = [sum(A(i, j) * c[j] ** 2 for j in range(s)) for i in range(s)]
        AAc = [sum(A(i, j) * Ac[j] for j in range(s)) for i in range(s)]
        yield ([sum(bi * ci**3 for bi, ci in zip(b, c)),
                sum(bi * ci * x for bi, ci, x in zip(b, c, Ac)),
                sum(bi * x for bi, x in zip(b, Ac2)),
                sum(bi * x for bi, x in zip(b, AAc))],
               [1 / 4, 1 / 8, 1 / 12, 1 / 24])


EULER = ButcherTableau("euler", 1, a=((),), b=(1.0,), c=(0.0,))
MIDPOINT = ButcherTableau("midpoint", 2, a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5))
HEUN = ButcherTableau("heun", 2, a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0))
RK3 = ButcherTableau("rk3", 3, a=((), (0.5,), (-1.0, 2.0)), b=(1 / 6, 2 / 3, 1 / 6), c=(0.0, 0.5, 1.0))
RK4 = ButcherTableau("rk4", 4, a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                     b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), c=(0.0, 0.5, 0.5, 1.0))
