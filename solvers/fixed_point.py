"""Fixed-point integer states, in which a step can be undone bit for bit.

A float step is not exactly invertible: x + a - a need not give x back, and dividing by
gamma to undo a multiplication by gamma magnifies the rounding error by 1 / gamma a step.
On integers both are exact. A scheme that declares ``exact_reversal`` runs its steps on a
carrier of integers X = round(x 2^bits): it adds integers (exact, and undone by
subtracting the same integers, recomputed from the rebuilt state) and multiplies by a
ratio gamma = n / d (:meth:`FixedPoint.ratio`) by flooring, keeping in an information
buffer the digit the floor drops, so the multiplication can be undone too (Maclaurin,
Duvenaud & Adams, ICML 2015, "Gradient-based hyperparameter optimization through
reversible learning", Alg. 3 with the digit kept as below; MacKay, Vicol, Ba & Grosse,
NeurIPS 2018, "Reversible recurrent neural networks").

The integers are held where they are cheapest to compute with exactly:

- float32, bfloat16 and float16 states: float64 tensors holding integers below 2^52
  (float64 is exact on them, and its division is several times faster than int64's, which
  no CPU vectorises), ``bits`` = 32, so |x| < 2^20 (about 1e6), and ratios with d <= 2^26
  (exact for a float32 gamma >= 2^-3 and for a ratio of small integers, 0.9 = 9 / 10);
- float64 states: int64 tensors below 2^61, ``bits`` = 48, so |x| < 2^13 (8192), and
  ratios with d <= 2^30.

The digit kept is the index of x among the integers that floor(x n / d) maps to the
same value, ceil(d / n) or one fewer of them: about log2(1 / gamma) bits a number per
multiplication. The buffer is one 8-byte number per number; when one would overflow, the
low 32 bits of every number's buffer go onto a stack, 4 bytes a number. A value beyond the
range raises :class:`FixedPointRange` at the end of the pass (:meth:`FixedPoint.verify`).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Union

import torch
from torch import Tensor

_CHUNK = 2 ** 32  # what goes onto the stack when a buffer would overflow
_SMALLEST_RATIO = 2.0 ** -20  # a ratio's digit has at most 20 bits, so a buffer always fits 32 more

Number = Union[float, Tensor]


class FixedPointRange(ValueError):
    """A value too large (or not finite) for the fixed-point representation."""


class FixedPoint:
    """The fixed-point representation of one run of steps, and the stack of the bits its
    steps dropped (last in, first out). The engine sets :attr:`step` before each step (and
    each inverse step), so an inverse step takes back what its own forward step pushed.

    Nothing here reads a tensor's value on the host step by step (which would stop a GPU
    each time): the range of every value converted is gathered on the device and checked
    once, by :meth:`verify`, at the end of a pass, and a buffer's largest entry is read
    only when a bound kept on the host says it might soon overflow."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        if dtype == torch.float64:
            self.carrier, self.bits, self.limit, ratio_bits = torch.int64, 48, 2.0 ** 61, 30
        else:
            self.carrier, self.bits, self.limit, ratio_bits = torch.float64, 32, 2.0 ** 52, 26
        self.denominator = 2 ** ratio_bits  # the largest d of a ratio n / d
        # the float type a carrier is read in: wide enough for its integers (float16's 65504 is not)
        self._wide = torch.float64 if dtype == torch.float64 else torch.float32
        self.step = 0
        self.stack: list[tuple[int, Tensor]] = []
        self._ratios: dict[float, tuple[int, int]] = {}
        self.checking = True  # whether conversions gather their range for :meth:`verify`
        self.remembering = False  # whether :meth:`float` hands the same X its last result again
        self._last: Optional[tuple[Tensor, Tensor]] = None
        # the extremes of each value converted, by dtype (stacking mixed dtypes is several times slower)
        self._peaks: dict[torch.dtype, list[Tensor]] = {}
        self._bound: dict[int, float] = {}  # per buffer: an upper bound of its entries

    def zeros(self, shape: torch.Size, device: torch.device) -> Tensor:
        """A carrier tensor of zeros."""
        return torch.zeros(shape, dtype=self.carrier, device=device)

    def fixed(self, x: Tensor, scale: Number = 1.0) -> Tensor:
        """round(scale x 2^bits) on the carrier (computed in float64, deterministically)."""
        scale = scale.detach().double() if isinstance(scale, Tensor) else scale
        y = x.to(torch.float64, copy=True).mul_(scale * 2.0 ** self.bits).round_()
        self._check(y)
        return y if self.carrier == torch.float64 else y.long()

    def float(self, X: Tensor) -> Tensor:
        """X 2^-bits in the state's dtype. When :attr:`remembering`, a second call with the
        very tensor X of the last call returns the very same result (the backward pass
        decodes the state its inverse step evaluated f at; the engine then differentiates
        through that evaluation directly)."""
        if self._last is not None and self._last[0] is X:
            return self._last[1]
        y = X.to(self._wide)
        self._check(y)
        y = y.mul_(2.0 ** -self.bits)
        y = y if y.dtype == self.dtype else y.to(self.dtype)
        if self.remembering:
            self._last = (X, y)
        return y

    def _check(self, y: Tensor) -> None:
        """Gather y's range for :meth:`verify` (one pass, no read of the device); an empty
        tensor (a batch of none) has none."""
        if self.checking and y.numel():
            self._peaks.setdefault(y.dtype, []).extend(torch.aminmax(y))

    def add(self, X: Tensor, x: Tensor, scale: Number = 1.0, sign: int = 1) -> Tensor:
        """X + sign round(scale x 2^bits): a carrier moved by a float value, the step's
        exact addition (sign -1 undoes it, given the same x)."""
        s = scale * 2.0 ** self.bits
        power_of_two = isinstance(s, float) and math.frexp(s)[0] == 0.5
        if power_of_two and x.dtype != torch.float64 and self.carrier == torch.float64:
            # x s and its rounding are exact in float32, half the bytes of float64
            y = x.mul(s) if x.dtype == torch.float32 else x.float().mul_(s)
            self._check(y.round_())
        else:
            y = self.fixed(x, scale)
        return X + y if sign > 0 else X - y

    def times(self, X: Tensor, c: float) -> Tensor:
        """round(c X) for a float c (X itself for c = 1): an integer function of X."""
        if c == 1:
            return X
        y = (X.double() * c).round_()
        return y if self.carrier == torch.float64 else y.long()

    def verify(self) -> None:
        """Raise :class:`FixedPointRange` if a value converted since the last call was too
        large (or not finite): one read of the device, at the end of a pass. A value out of
        range makes the pass's integers meaningless, never an error on the way."""
        if not self._peaks:
            return
        m = float(torch.stack([torch.stack(p).abs().amax().double() for p in self._peaks.values()]).amax())
        self._peaks = {}
        if not m < self.limit:  # also catches nan
            raise FixedPointRange(
                f"a value of magnitude {m * 2.0 ** -self.bits:.3g} is beyond the fixed-point range of exact "
                f"reversal (|x| < 2^{round(torch.tensor(self.limit).log2().item()) - self.bits} for a {self.dtype} "
                "state)")

    def ratio(self, gamma: Number) -> tuple[int, int]:
        """gamma as n / d with d no larger than :attr:`denominator`: exactly for a float32
        gamma that is a multiple of 1 / denominator and for a ratio of small integers
        (0.9 = 9 / 10), else the nearest such fraction (within 1 / denominator of it, most
        often far closer). gamma must lie in [2^-20, 1)."""
        g = float(gamma) if not isinstance(gamma, Tensor) else float(gamma.detach())  # one number
        if g not in self._ratios:
            if not _SMALLEST_RATIO <= g < 1:
                raise FixedPointRange(f"exact reversal multiplies by a ratio in [2^-20, 1); got {g!r}")
            r = Fraction(g).limit_denominator(self.denominator)
            self._ratios[g] = r.numerator, r.denominator
        return self._ratios[g]

    def scale_down(self, V: Tensor, ratio: tuple[int, int], buffer: Tensor, slot: int = 0) -> tuple[Tensor, Tensor]:
        """(floor(V n / d), buffer with V's digit pushed): the exact multiplication by the
        ratio (n, d); :meth:`scale_up` undoes it. ``slot`` names the buffer when a step
        keeps more than one.

        With V = hi d + lo and lo n = q d + rem: W = hi n + q, and V's index among the
        integers W comes from is rem div n, out of count = c + (rem mod n < e) of them
        (d = c n + e; see :func:`_preimage`)."""
        n, d = ratio
        c, e = divmod(d, n)
        hi, lo = _divmod(V, d)
        q, rem = _divmod(lo.mul_(n), d, inplace=True)
        index, b = _divmod(rem, n, inplace=True)
        count = _below(b, e).add_(c)
        buffer = self._make_room(buffer, c + (e > 0), slot)
        return q.add_(hi, alpha=n), torch.addcmul(index, buffer, count)

    def _make_room(self, buffer: Tensor, most: int, slot: int) -> Tensor:
        """The buffer, its low 32 bits pushed onto the stack if multiplying it by up to
        ``most`` could overflow; the buffer's largest entry is read only when the bound
        kept since the last read allows an overflow."""
        bound = self._bound.get(slot, 0.0)
        if (bound + 1) * most >= self.limit:
            bound = float(buffer.amax()) if buffer.numel() else 0.0  # an empty batch never overflows
            if (bound + 1) * most >= self.limit:
                buffer, low = _divmod(buffer, _CHUNK)
                self.stack.append((self.step, (low - 2 ** 31).to(torch.int32)))
                bound = bound / _CHUNK
        self._bound[slot] = bound * most + most - 1
        return buffer

    def scale_up(self, W: Tensor, ratio: tuple[int, int], buffer: Tensor) -> tuple[Tensor, Tensor]:
        """The V and buffer that :meth:`scale_down` took to (W, buffer)."""
        start, count = _preimage(W, *ratio)
        buffer, index = _divmod(buffer, count)
        chunk = self._pop()
        if chunk is not None:
            buffer = buffer.mul_(_CHUNK).add_(chunk.to(buffer.dtype)).add_(2 ** 31)
        return start.add_(index), buffer

    def _pop(self) -> Optional[Tensor]:
        if self.stack and self.stack[-1][0] == self.step:
            return self.stack.pop()[1]
        return None


def _divmod(a: Tensor, d: Union[int, Tensor], inplace: bool = False) -> tuple[Tensor, Tensor]:
    """(floor(a / d), a mod d) for integers a and d > 0 (the remainder written into a
    when ``inplace``): on int64 by integer division; on float64 holding integers
    |a| < 2^53 as floor(fl(a / d)), which is exact: a / d falls at least 1 / d short of the
    next integer, more than the rounding of fl, |a / d| 2^-53, can make up; and a - q d is
    exact."""
    q = a.div(d, rounding_mode="floor") if a.dtype == torch.int64 else (a / d).floor_()
    if isinstance(d, Tensor):
        return q, torch.addcmul(a, q, d, value=-1, out=a if inplace else None)
    return q, a.sub_(q, alpha=d) if inplace else torch.sub(a, q, alpha=d)


def _below(b: Tensor, e: int) -> Tensor:
    """1 where the integer b < e, else 0, in b's dtype, written into b (an indicator in
    arithmetic: a comparison's boolean costs more than the clamp)."""
    return b.neg_().add_(e).clamp_(0, 1)


def _preimage(W: Tensor, n: int, d: int) -> tuple[Tensor, Tensor]:
    """The integers V with floor(V n / d) = W: ``count`` of them from start = s(W), where
    s(W) = ceil(W d / n) (the preimage is [s(W), s(W + 1))). With W = q n + r (0 <= r < n),
    s(W) = q d + s(r), so every product stays below n d."""
    q, r = _divmod(W, n)
    rd = r.mul_(d)
    s = _ceil_div(rd, n)
    count = _ceil_div(rd.add_(d), n).sub_(s)
    return q.mul_(d).add_(s), count


def _ceil_div(a: Tensor, n: int) -> Tensor:
    """ceil(a / n) for integers 0 <= a < 2^53 and n > 0; on float64 as ceil(fl(a / n)), exact
    as :func:`_divmod`'s floor is."""
    if a.dtype == torch.int64:
        return a.neg().div_(n, rounding_mode="floor").neg_()
    return (a / n).ceil_()
