"""Schemes by name: ``get('rk4')``, ``available()``, ``register(name, factory)``."""
from __future__ import annotations

import inspect
from typing import Callable, Union

from .euler_maruyama import EulerMaruyama
from .fractal import Fractal
from .lm import LM
from .momentum import Momentum
from .multistep import AB2, AB3, AB4, LinearMultistep, MultistepCoefficients
from .polynet import PolyNet
from .revnet import RevNet
from .runge_kutta import RungeKutta
from .scheme import Scheme
from .tableau import EULER, HEUN, MIDPOINT, RK3, RK4, ButcherTableau

ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
"""Adaptive-step methods, delegated to torchdiffeq for a single shared f."""

_SCHEMES: dict[str, Callable[..., Scheme]] = {}


_STARTERS = {1: EULER, 2: HEUN, 3: RK3, 4: RK4}
"""One-step starters of each order, for multistep coefficients registered as data."""


def register(name: str, factory: Union[Callable[..., Scheme], ButcherTableau, MultistepCoefficients]) -> None:
    """Make ``factory(**options)`` available as ``name``. A Butcher tableau or multistep
    coefficients can be given instead of a factory: a scheme is data. Coefficients of
    order p <= 4 are started by the Runge–Kutta scheme of order p here (heun for 2)."""
    if name in _SCHEMES or name in ADAPTIVE:
        raise ValueError(f"a scheme named {name!r} is already registered")
    if isinstance(factory, ButcherTableau):
        tableau = factory
        factory = lambda: RungeKutta(tableau)  # noqa: E731
    elif isinstance(factory, MultistepCoefficients):
        coefficients = factory
        if coefficients.order not in _STARTERS:
            raise ValueError(f"no built-in starter of order {coefficients.order} for {name!r}; register a factory "
                             "returning LinearMultistep(coefficients, starter=...) instead")
        starter = _STARTERS[coefficients.order]
        factory = lambda: LinearMultistep(coefficients, starter=RungeKutta(starter))  # noqa: E731
    elif not callable(factory):
        raise TypeError(f"register takes a factory returning a Scheme, a ButcherTableau or MultistepCoefficients; "
                        f"got {type(factory).__name__}")
    _SCHEMES[name] = factory


def unregister(name: str) -> None:
    """Remove scheme ``name`` from the registry (to register another under its name, as
    a notebook cell run twice does). Networks built with it keep their scheme."""
    if name in ADAPTIVE:
        raise ValueError(f"{name!r} is one of torchdiffeq's adaptive methods, which cannot be unregistered")
    if name not in _SCHEMES:
        raise ValueError(f"no scheme named {name!r} is registered; registered: {', '.join(sorted(_SCHEMES))}")
    del _SCHEMES[name]


def available() -> list[str]:
    """Names of every scheme: the fixed-step ones, then the adaptive ones."""
    return sorted(_SCHEMES) + list(ADAPTIVE)


def is_adaptive(name: str) -> bool:
    """Whether ``name`` is an adaptive-step method (integrated by torchdiffeq)."""
    return name in ADAPTIVE


def takes(name: str, option: str) -> bool:
    """Whether the factory of scheme ``name`` names an option ``option`` (one taking
    ``**options`` takes more, but names none)."""
    if name not in _SCHEMES:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(available())}")
    params = inspect.signature(_SCHEMES[name]).parameters.values()
    return any(p.name == option and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)


def get(name: str, **options) -> Scheme:
    """The scheme called ``name``, built with ``options`` (e.g. ``get('lm', channels=16)``)."""
    if name not in _SCHEMES:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(available())}")
    factory = _SCHEMES[name]
    params = inspect.signature(factory).parameters.values()
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in params):  # a factory taking **options takes any keyword
        unknown = sorted(set(options) - set(named))
        if unknown:
            takes = ", ".join(named) if named else "no options"
            raise ValueError(f"solver {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    missing = [p for p, spec in named.items() if spec.default is spec.empty and p not in options]
    if missing:
        raise ValueError(f"solver {name!r} needs option(s) {', '.join(missing)}")
    scheme = factory(**options)
    if not isinstance(scheme, Scheme):
        raise TypeError(f"the factory registered as {name!r} returned a {type(scheme).__name__}, not a Scheme")
    return scheme


for _tableau in (EULER, MIDPOINT, HEUN, RK3, RK4):
    register(_tableau.name, _tableau)
for _coefficients in (AB2, AB3, AB4):
    register(_coefficients.name, _coefficients)
register("lm", LM)
register("momentum", Momentum)
register("polynet", PolyNet)
register("fractal", Fractal)
register("revnet", RevNet)
register("euler_maruyama", EulerMaruyama)
