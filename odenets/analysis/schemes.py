"""The schemes the analyses take by name."""
from __future__ import annotations

from odenets import solvers

SCHEMES = ("euler", "midpoint", "heun", "rk3", "rk4", "ab2", "ab3", "ab4", "lm", "polynet")
"""The built-in deterministic one-function schemes: each reduces to one recurrence for
u' = lambda u (its stability) and runs on one shared f (its convergence). The others take
pairs (F, G) (revnet, fractal), noise (euler_maruyama), or adapt their step (dopri5, ...)."""


def fixed_step() -> list[str]:
    """The registered fixed-step schemes, those registered since import included."""
    return [name for name in solvers.available() if not solvers.is_adaptive(name)]
