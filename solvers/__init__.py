"""Fixed-step numerical schemes for u' = f(t, u), on tensors; torch is the only dependency
(``from odenets import solvers``).

Explicit Runge–Kutta schemes are Butcher tableaus fed to :class:`RungeKutta`; linear
multistep schemes are coefficients fed to :class:`LinearMultistep`. The remaining
classes are the paper's readings of architectures as schemes; noise (stochastic depth,
shake-shake) wraps any of them, and :class:`SolverSpec` is a scheme, its options and its
noise parsed once.
"""
from .euler_maruyama import EulerMaruyama
from .fractal import Fractal
from .lm import LM
from .momentum import Momentum
from .multistep import AB2, AB3, AB4, LinearMultistep, MultistepCoefficients
from .noise import NOISES, Expectation, Noisy, ShakeShake, StochasticDepth, survival_probabilities
from .polynet import PolyNet
from .registry import ADAPTIVE, available, get, is_adaptive, register, takes, unregister
from .revnet import RevNet
from .runge_kutta import RungeKutta
from .scheme import Field, Past, Record, Scheme, takes_time, timed
from .spec import VARIANTS, SolverSpec
from .tableau import EULER, HEUN, MIDPOINT, RK3, RK4, ButcherTableau

__all__ = [
    "ADAPTIVE", "AB2", "AB3", "AB4", "EULER", "HEUN", "MIDPOINT", "NOISES", "RK3", "RK4", "VARIANTS",
    "ButcherTableau", "EulerMaruyama", "Expectation", "Field", "Fractal", "LM", "LinearMultistep", "Momentum",
    "MultistepCoefficients", "Noisy", "Past", "PolyNet", "Record", "RevNet", "RungeKutta", "Scheme",
    "ShakeShake", "SolverSpec", "StochasticDepth", "available", "get", "is_adaptive", "register",
    "survival_probabilities", "takes", "takes_time", "timed", "unregister",
]
