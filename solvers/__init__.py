"""Fixed-step numerical schemes for u' = f(t, u), on tensors; torch is the only dependency.

Explicit Runge–Kutta schemes are Butcher tableaus fed to :class:`RungeKutta`; linear
multistep schemes are coefficients fed to :class:`LinearMultistep`. The remaining
classes are the paper's readings of architectures as schemes.
"""
from .batch_drop import batch_drop, death_rates
from .euler_maruyama import EulerMaruyama
from .fractal import Fractal
from .lm import LM
from .multistep import AB2, AB3, AB4, LinearMultistep, MultistepCoefficients
from .noise import expected_step, shake_shake, stochastic_depth, survival_probabilities
from .polynet import PolyNet
from .registry import ADAPTIVE, available, get, is_adaptive, register
from .revnet import RevNet
from .runge_kutta import RungeKutta
from .scheme import Field, Past, Record, Scheme, takes_time, timed
from .tableau import EULER, HEUN, MIDPOINT, RK3, RK4, ButcherTableau

__all__ = [
    "ADAPTIVE", "AB2", "AB3", "AB4", "EULER", "HEUN", "MIDPOINT", "RK3", "RK4",
    "ButcherTableau", "EulerMaruyama", "Field", "Fractal", "LM", "LinearMultistep",
    "MultistepCoefficients", "Past", "PolyNet", "Record", "RevNet", "RungeKutta", "Scheme",
    "available", "batch_drop", "death_rates", "expected_step", "get", "is_adaptive", "register", "shake_shake",
    "stochastic_depth", "survival_probabilities", "takes_time", "timed",
]
