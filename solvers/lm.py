"""The LM-architecture of Lu, Zhong, Li & Dong (ICML 2018), a two-step scheme with a
trainable coefficient per step."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .multistep import LinearMultistep, MultistepCoefficients
from .runge_kutta import RungeKutta
from .scheme import channelwise
from .tableau import EULER

# k = 0 reduces the LM step to forward Euler; the learned k_n replace these values.
_EULER_AS_TWO_STEP = MultistepCoefficients("lm", 1, alpha=(1.0, 0.0), beta=(1.0, 0.0))


class LM(LinearMultistep):
    """LM-ResNet's linear two-step scheme with a trainable k_n per step:

        u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + dt * f_n(u_n).

    It is first order for its modified equation
    (1 + k_n) u' + (1 - k_n) (dt / 2) u'' = f(u), so with k_n fixed it converges to
    the solution of (1 + k_n) u' = f(u). The first step, with no u_{-1}, is forward
    Euler. k_n starts uniform in ``k_init`` (the paper's [-0.1, 0]; a float gives a
    constant start, 0.0 makes the network a ResNet at initialisation). ``channels``
    gives one k per channel (an int, or one int per step) instead of one scalar.

    ``k_bounds=(lo, hi)``, -1 < lo < hi < 1, keeps every step zero-stable (the root -k of
    (zeta - 1)(zeta + k) inside the unit disc) by training k_raw in
    k = c + r tanh(k_raw), c = (lo + hi) / 2, r = (hi - lo) / 2: a smooth map whose
    gradient never vanishes, unlike a clamp; the step's trained coefficient is then
    ``k_raw``, and :meth:`k` gives k.
    """

    trained = ("k",)
    euler_options = {"k_init": 0.0}  # k_n = 0: u_n + dt f_n(u_n)
    combine_is_new = True  # torch.lerp's autograd node keeps its inputs, not its result

    def __init__(self, k_init: Union[float, tuple[float, float]] = (-0.1, 0.0),
                 channels: Optional[Union[int, Sequence[int]]] = None,
                 k_bounds: Optional[tuple[float, float]] = None):
        super().__init__(_EULER_AS_TWO_STEP, starter=RungeKutta(EULER))
        bounds = (k_init, k_init) if _is_number(k_init) else tuple(k_init) if isinstance(k_init, (tuple, list)) else ()
        if len(bounds) != 2 or not all(map(_is_number, bounds)) or not bounds[0] <= bounds[1]:
            raise ValueError(f"k_init must be a number or a range (low, high) with low <= high, got {k_init!r}")
        counts = [channels] if channels is None or _is_count(channels) else channels
        if not isinstance(counts, (list, tuple)) or not counts or not all(c is None or _is_count(c) for c in counts):
            raise ValueError(f"channels must be None (one k per step), a channel count >= 1 or a list of one "
                             f"count per step, got {channels!r}")
        if k_bounds is not None:
            if (not isinstance(k_bounds, (tuple, list)) or len(k_bounds) != 2 or not all(map(_is_number, k_bounds))
                    or not -1 < k_bounds[0] < k_bounds[1] < 1):
                raise ValueError(f"k_bounds must be (lo, hi) with -1 < lo < hi < 1, got {k_bounds!r}")
            if not k_bounds[0] < bounds[0] <= bounds[1] < k_bounds[1]:
                raise ValueError(f"k_init {k_init!r} must lie strictly inside k_bounds {tuple(k_bounds)!r}")
            k_bounds = (float(k_bounds[0]), float(k_bounds[1]))
        self.k_init = (float(bounds[0]), float(bounds[1]))
        self.channels = channels
        self.k_bounds = k_bounds
        self.trained = ("k",) if k_bounds is None else ("k_raw",)

    def init_params(self, n: int) -> dict[str, Tensor]:
        c = self.channels
        if isinstance(c, (list, tuple)):
            if n >= len(c):
                raise ValueError(f"channels lists {len(c)} channel counts, but the net has a step {n}: give one per step")
            c = c[n]
        shape = () if c is None else (c,)
        lo, hi = self.k_init
        k = torch.empty(shape).uniform_(lo, hi) if hi > lo else torch.full(shape, lo)
        if self.k_bounds is None:
            return {"k": k}
        c, r = _centre_radius(self.k_bounds)
        return {"k_raw": torch.atanh((k - c) / r)}

    def k(self, k: Optional[Tensor] = None, k_raw: Optional[Tensor] = None) -> Tensor:
        """k_n from a step's trained coefficients (``k``, or ``k_raw`` under ``k_bounds``)."""
        if k_raw is None:
            return k
        c, r = _centre_radius(self.k_bounds)
        return c + r * torch.tanh(k_raw)

    def coefficient_values(self, **params: Tensor) -> dict[str, Tensor]:
        """The step's k, also under ``k_bounds`` (where the trained coefficient is k_raw)."""
        return {"k": self.k(**params)}

    def weights(self, **params: Tensor) -> tuple[Sequence, Sequence]:
        k = self.k(**params)
        return (1 - k, k), (1.0, 0.0)

    def combine(self, states: Sequence[Tensor], alpha: Sequence) -> Tensor:
        """(1 - k) u_n + k u_{n-1} as one lerp: two passes over the state instead of four,
        which is most of LM-ResNet's cost over ResNet on a CPU."""
        u, previous = states
        k = channelwise(alpha[1], u)
        if torch.compiler.is_compiling():  # inductor fuses the plain form into the step's one kernel
            return (1 - k) * u + k * previous
        return torch.lerp(u, previous, k)


def _centre_radius(bounds: tuple[float, float]) -> tuple[float, float]:
    return (bounds[0] + bounds[1]) / 2, (bounds[1] - bounds[0]) / 2


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1
