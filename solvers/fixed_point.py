"""Fixed-point integer states, in which a step can be undone bit for bit.

A float step is not exactly invertible: x + a - a need not give x back, and dividing by
gamma to undo a multiplication by gamma magnifies the rounding error by 1 / gamma a step.
On integers both are exact. A scheme that declares ``exact_reversal`` runs its steps on
int64 tensors holding round(x 2^bits) (``bits`` = 32 for a float32, bfloat16 or float16
state, 48 for float64): it adds integers (exact, and undone by subtracting the same
integers, recomputed from the rebuilt state) and multiplies by a ratio gamma = n / d
(d <= 2^30; :meth:`FixedPoint.ratio`) by flooring, keeping in an information buffer
the digit the floor drops, so the multiplication can be undone too (Maclaurin, Duvenaud
& Adams, ICML 2015, "Gradient-based hyperparameter optimization through reversible
learning", Alg. 3 with the digit kept as below; MacKay, Vicol, Ba & Grosse, NeurIPS 2018,
"Reversible recurrent neural networks").

The digit kept is the index of x among the integers that floor(x n / d) maps to the
same value, ceil(d / n) or one fewer of them: about log2(1 / gamma) bits a number per
multiplication. The buffer is one int64 per number; when one would overflow, the low 32
bits of every number's buffer go onto a stack, 4 bytes a number. The values a state may
hold are bounded: |x| < 2^(61 - bits), about 5e8 for float32 and 8e3 for float64; a
larger one raises :class:`FixedPointRange`.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional, Union

import torch
from torch import Tensor

RATIO_BITS = 30
"""A ratio gamma is held as n / d with d <= 2^30."""

_RANGE = 2.0 ** 61  # integers stay below this, so the sum of two never overflows int64
_CHUNK = 2 ** 32  # what goes onto the stack when a buffer would overflow
_DENOMINATOR = 2 ** RATIO_BITS
_SMALLEST_RATIO = 2.0 ** -24  # a ratio's digit has at most 24 bits, so a buffer fits 32 more

Number = Union[float, Tensor]


class FixedPointRange(ValueError):
    """A value too large (or not finite) for the fixed-point representation."""


class FixedPoint:
    """The fixed-point representation of one run of steps, and the stack of the bits its
    steps dropped (last in, first out). The engine sets :attr:`step` before each step (and
    each inverse step), so an inverse step takes back what its own forward step pushed."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.bits = 48 if dtype == torch.float64 else 32
        self.step = 0
        self.stack: list[tuple[int, Tensor]] = []
        self._ratios: dict[float, tuple[int, int]] = {}

    def fixed(self, x: Tensor, scale: Number = 1.0) -> Tensor:
        """round(scale x 2^bits) as int64 (computed in float64, deterministically)."""
        scale = scale.detach().double() if isinstance(scale, Tensor) else scale
        y = (x.double() * scale * 2.0 ** self.bits).round()
        self._check(y)
        return y.long()

    def float(self, X: Tensor) -> Tensor:
        """X 2^-bits in the state's dtype."""
        y = X.double()
        self._check(y)
        return (y * 2.0 ** -self.bits).to(self.dtype)

    def times(self, X: Tensor, c: float) -> Tensor:
        """round(c X) for a float c (X itself for c = 1): an integer function of X."""
        return X if c == 1 else (X.double() * c).round().long()

    def _check(self, y: Tensor) -> None:
        m = float(y.abs().amax()) if y.numel() else 0.0
        if not m < _RANGE:  # also catches nan
            raise FixedPointRange(f"a value of magnitude {m * 2.0 ** -self.bits:.3g} is beyond the fixed-point "
                                  f"range of exact reversal (|x| < 2^{61 - self.bits} for a {self.dtype} state)")

    def ratio(self, gamma: Number) -> tuple[int, int]:
        """gamma as n / d, d <= 2^30: exactly for a float32 gamma >= 2^-7 and for a ratio of
        small integers (0.9 = 9 / 10), else the nearest such fraction (within 2^-30 of it,
        most often far closer). gamma must lie in [2^-24, 1)."""
        g = float(gamma) if not isinstance(gamma, Tensor) else float(gamma.detach())  # one number
        if g not in self._ratios:
            if not _SMALLEST_RATIO <= g < 1:
                raise FixedPointRange(f"exact reversal multiplies by a ratio in [2^-24, 1); got {g!r}")
            r = Fraction(g).limit_denominator(_DENOMINATOR)
            self._ratios[g] = r.numerator, r.denominator
        return self._ratios[g]

    def scale_down(self, V: Tensor, ratio: tuple[int, int], buffer: Tensor) -> tuple[Tensor, Tensor]:
        """(floor(V n / d), buffer with V's digit pushed): the exact multiplication by the
        ratio (n, d); :meth:`scale_up` undoes it."""
        W = _floor_times(V, *ratio)
        start, count = _preimage(W, *ratio)
        if float(buffer.amax()) * float(count.amax()) >= 2.0 ** 62:
            self.stack.append((self.step, (buffer % _CHUNK - 2 ** 31).to(torch.int32)))
            buffer = buffer.div(_CHUNK, rounding_mode="floor")
        return W, buffer * count + (V - start)

    def scale_up(self, W: Tensor, ratio: tuple[int, int], buffer: Tensor) -> tuple[Tensor, Tensor]:
        """The V and buffer that :meth:`scale_down` took to (W, buffer)."""
        start, count = _preimage(W, *ratio)
        rest = buffer.div(count, rounding_mode="floor")
        V, buffer = start + (buffer - rest * count), rest
        chunk = self._pop()
        if chunk is not None:
            buffer = buffer * _CHUNK + (chunk.long() + 2 ** 31)
        return V, buffer

    def _pop(self) -> Optional[Tensor]:
        if self.stack and self.stack[-1][0] == self.step:
            return self.stack.pop()[1]
        return None


def _floor_times(V: Tensor, n: int, d: int) -> Tensor:
    """floor(V n / d) without overflow: V = hi d + lo, 0 <= lo < d."""
    hi = V.div(d, rounding_mode="floor")
    return hi * n + ((V - hi * d) * n).div(d, rounding_mode="floor")


def _preimage(W: Tensor, n: int, d: int) -> tuple[Tensor, Tensor]:
    """The integers V with floor(V n / d) = W: ``count`` of them from
    start = ceil(W d / n). With W d = start n - b (0 <= b < n) and d = c n + e (0 <= e < n),
    count = c + (e > b). W = q n + r and r d = k n + m keep every product below 2^61."""
    c, e = divmod(d, n)
    q = W.div(n, rounding_mode="floor")
    rd = (W - q * n) * d
    k = rd.div(n, rounding_mode="floor")
    m = rd - k * n
    up = m > 0
    start = q * d + k + up
    return start, c + (torch.where(up, n - m, 0) < e)
