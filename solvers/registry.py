"""Schemes by name: ``get('rk4')``, ``available()``, ``register(name, factory)``."""
from __future__ import annotations

import inspect
from typing import Callable

from .euler_maruyama import EulerMaruyama
from .fractal import Fractal
from .lm import LM
from .multistep import AB2, AB3, AB4, LinearMultistep
from .polynet import PolyNet
from .revnet import RevNet
from .runge_kutta import RungeKutta
from .scheme import Scheme
from .tableau import EULER, HEUN, MIDPOINT, RK3, RK4, ButcherTableau

ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
"""Adaptive-step methods, delegated to torchdiffeq for a single shared f."""

_SCHEMES: dict[str, Callable[..., Scheme]] = {}


def register(name: str, factory: Callable[..., Scheme]) -> None:
    """Make ``factory(**options)`` available as ``name``; a tableau or multistep
    coefficients can be passed instead of a factory."""
    if name in _SCHEMES or name in ADAPTIVE:
        raise ValueError(f"a scheme named {name!r} is already registered")
    if isinstance(factory, ButcherTableau):
        tableau = factory
        factory = lambda: RungeKutta(tableau)  # noqa: E731
    _SCHEMES[name] = factory


def available() -> list[str]:
    """Names of every scheme: the fixed-step ones, then the adaptive ones."""
    return sorted(_SCHEMES) + list(ADAPTIVE)


def is_adaptive(name: str) -> bool:
    """Whether ``name`` is an adaptive-step method (integrated by torchdiffeq)."""
    return name in ADAPTIVE


def get(name: str, **options) -> Scheme:
    """The scheme called ``name``, built with ``options`` (e.g. ``get('lm', channels=16)``)."""
    if name not in _SCHEMES:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(available())}")
    factory = _SCHEMES[name]
    allowed = [p for p in inspect.signature(factory).parameters]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "no options"
        raise ValueError(f"solver {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    return factory(**options)


for _tableau in (EULER, MIDPOINT, HEUN, RK3, RK4):
    register(_tableau.name, _tableau)
register("ab2", lambda: LinearMultistep(AB2, starter=RungeKutta(HEUN)))
register("ab3", lambda: LinearMultistep(AB3, starter=RungeKutta(RK3)))
register("ab4", lambda: LinearMultistep(AB4, starter=RungeKutta(RK4)))
register("lm", LM)
register("polynet", PolyNet)
register("fractal", Fractal)
register("revnet", RevNet)
register("euler_maruyama", EulerMaruyama)
