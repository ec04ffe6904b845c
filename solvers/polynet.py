"""PolyNet read as a truncated backward Euler scheme."""
from __future__ import annotations

from torch import Tensor

from .characteristic import one_step
from .scheme import Past, Record, Scheme


class PolyNet(Scheme):
    """Backward Euler, u_{n+1} = (I - F)^{-1} u_n with F = dt f_n, whose Neumann series
    is truncated after ``truncation`` terms:

        u_{n+1} = u_n + F(u_n) + F(F(u_n)) + ... + F^r(u_n)      (r = truncation, 2 = PolyNet's poly-2)

    Each term is a composition of the block with itself, as in PolyNet. For linear f the
    series is exactly that of backward Euler; for nonlinear f it is a first-order scheme
    for u' = f(u) when f(t, 0) = 0, since then F^i(u) = O(dt^i). f is evaluated at
    t_{n+1}, where backward Euler evaluates it.
    """

    name = "polynet"
    order = 1

    def __init__(self, truncation: int = 2):
        if not isinstance(truncation, int) or truncation < 1:
            raise ValueError(f"polynet truncation must be an integer >= 1, got {truncation!r}")
        self.truncation = truncation
        self.evals = truncation

    def characteristic(self, **params: Tensor) -> Tensor:
        """Truncated backward Euler on u' = lambda u: R(z) = 1 + z + ... + z^r."""
        return one_step([1.0] * (self.truncation + 1))

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        out, term = u, u
        for _ in range(self.truncation):
            term = f(t + dt, term)
            if dt != 1:
                term = dt * term
            out = out + term
        return out, Record(u)
