"""Discrete noise on the residual term of any scheme: the paper's reading of stochastic
depth and shake-shake as discretised SDEs.

Noise wraps a scheme: the wrapper declares what the scheme declares, takes the noisy
step in training mode and, as :attr:`Scheme.deterministic`, the step used in eval mode.
The noise is drawn once per step (per sample, or once per mini-batch), so every stage
of a multi-stage scheme sees the same draw.
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from .scheme import Field, Past, Record, Scheme

NOISES = ("stochastic_depth", "batch_drop", "shake_shake")
"""``stochastic_depth``: Huang et al.'s, one draw per sample, eval mode the exact expectation;
``batch_drop``: LM-ResNet's authors', one draw per mini-batch, the kept
residual divided by its keep probability in training, eval mode the plain step;
``shake_shake``: Gastaldi's two-branch mixing."""

SURVIVAL = 0.5
"""Stochastic depth's default keep probability p_L of the last step."""


def survival_probabilities(steps: int, survival: Union[float, Sequence[float]], authors: bool = False) -> list[float]:
    """Stochastic depth's keep probability p_n of each of ``steps`` steps.

    A float is p_L, the last step's, with Huang et al.'s linear decay
    p_n = 1 - (n + 1) / L * (1 - p_L), or with ``authors`` LM-ResNet's authors'
    p_n = 1 - n / (L - 1) * (1 - p_L) (the first step always kept); a sequence gives every
    p_n. Each must lie in (0, 1]."""
    if isinstance(survival, (int, float)) and not isinstance(survival, bool):
        if authors:
            ps = [1 - n / max(steps - 1, 1) * (1 - survival) for n in range(steps)]
        else:
            ps = [1 - (n + 1) / steps * (1 - survival) for n in range(steps)]
        ps = ps if 0 < survival <= 1 else None
    else:
        ps = [float(p) for p in survival]
        ps = ps if len(ps) == steps and all(0 < p <= 1 for p in ps) else None
    if ps is None:
        raise ValueError(f"survival must be p_L in (0, 1] or {steps} probabilities in (0, 1], got {survival!r}")
    return ps


def _each(f, wrap: Callable[[Field], Field]):
    """``wrap`` applied to a field, or to each field of a pair."""
    return tuple(wrap(g) for g in f) if isinstance(f, tuple) else wrap(f)


class Noisy(Scheme):
    """A scheme with noise on its residual term. It declares what the wrapped scheme
    declares, except invertibility: a noisy step cannot be run backwards; and its own
    ``branches``, the functions the noise mixes into each function of the scheme (so a
    step takes ``branches`` times as many)."""

    branches: int = 1

    def __init__(self, scheme: Scheme):
        if not isinstance(scheme, Scheme):
            raise TypeError(f"noise wraps a Scheme, got {type(scheme).__name__}")
        self.inner = scheme
        for attr in ("name", "order", "evals", "history", "functions", "splits_state", "trained"):
            setattr(self, attr, getattr(scheme, attr))

    def init_params(self, n: int) -> dict[str, Tensor]:
        return self.inner.init_params(n)

    def coefficient_values(self, **params: Tensor) -> dict[str, Tensor]:
        return self.inner.coefficient_values(**params)

    def _noisy(self, f, u: Tensor, shape: Optional[torch.Size] = None):
        """The step's function(s) with this step's draw of the noise; ``shape`` is what a
        shape-changing step's f returns."""
        raise NotImplementedError

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        return self.inner.step(self._noisy(f, u), t, dt, u, past, **params)

    def transition(self, f, t: float, dt: float, u: Tensor, pu: Tensor) -> tuple[Tensor, Record]:
        return self.inner.transition(self._noisy(f, u, pu.shape), t, dt, u, pu)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class StochasticDepth(Noisy):
    """Step n's whole residual term kept with probability ``p``: the step S(b f) with
    b ~ Bernoulli(p), so a dropped step is S(0) (for LM the combination of u_n and
    u_{n-1} alone).

    ``per_sample`` (Huang et al. 2016) draws b per sample, and eval mode takes the exact
    expectation E[S(b f)] = p S(f) + (1 - p) S(0), for every scheme (a multi-stage scheme is
    not linear in f, so scaling f by p would not be). Otherwise (LM-ResNet's authors'
    MResNetSD) one b is drawn per mini-batch (a Python-side draw from torch's global
    generator, so seeded runs repeat), a dropped step's function is not evaluated
    (``skips_functions``: its parameters get no gradient), a kept residual is divided by p
    in training, and eval mode takes the plain step S(f)."""

    def __init__(self, scheme: Scheme, p: float, per_sample: bool = True):
        super().__init__(scheme)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"a keep probability lies in (0, 1], got {p!r}")
        self.p, self.per_sample = float(p), per_sample
        self.skips_functions = not per_sample

    def _noisy(self, f, u: Tensor, shape: Optional[torch.Size] = None):
        if not self.per_sample:
            if float(torch.rand(())) < 1 - self.p:  # dropped (the death rate 1 - p): the step with f = 0
                if isinstance(f, tuple):  # a pair's outputs differ in shape: evaluated, then zeroed
                    return tuple((lambda t, x, g=g: 0 * g(t, x)) for g in f)
                return lambda t, x: x.new_zeros(x.shape if shape is None else shape)  # f not evaluated
            return f if self.p >= 1 else _each(f, lambda g: (lambda t, x: g(t, x) / self.p))
        if self.p >= 1:
            return f
        keep = torch.empty((u.shape[0],) + (1,) * (u.dim() - 1), dtype=u.dtype, device=u.device).bernoulli_(self.p)
        return _each(f, lambda g: (lambda t, x: keep * g(t, x)))

    @cached_property
    def deterministic(self) -> Scheme:
        inner = self.inner.deterministic
        return Expectation(inner, self.p) if self.per_sample and self.p < 1 else inner


class Expectation(Noisy):
    """Eval-mode stochastic depth: E[S(b f)] = p S(f) + (1 - p) S(0), b ~ Bernoulli(p).
    What a step keeps for the next (a multistep scheme's f-value, momentum's velocity) is
    the mean of the two, as the state is."""

    def __init__(self, scheme: Scheme, p: float):
        super().__init__(scheme)
        self.p = p

    @property
    def deterministic(self) -> Scheme:
        return self

    def characteristic(self, **params: Tensor) -> Optional[Tensor]:
        """p S(f) + (1 - p) S(0) on u' = lambda u: every z term of the wrapped step's
        polynomial times p (its f-values this step's and, kept scaled to p f, earlier
        steps'): zeta - (1 - p) - p R(z) for a one-step scheme, rho - p z sigma for a
        multistep one."""
        c = self.inner.characteristic(**params)
        if c is None:
            return None
        c = c.clone()
        c[..., 1:] *= self.p
        return c

    def with_history(self, records: int) -> Scheme:
        inner = self.inner.with_history(records)
        return self if inner is self.inner else Expectation(inner, self.p)

    def _expected(self, advance: Callable, f) -> tuple[Tensor, Record]:
        outputs: dict[int, Tensor] = {}
        fields = list(f) if isinstance(f, tuple) else [f]

        def recording(i: int, g: Field) -> Field:
            def call(t: float, x: Tensor) -> Tensor:
                outputs[i] = out = g(t, x)
                return out
            return call

        def pack(gs: list):
            return tuple(gs) if isinstance(f, tuple) else gs[0]

        out, record = advance(pack([recording(i, g) for i, g in enumerate(fields)]))
        # the zero field has f's own output shape, which a shape-changing step's f does not share with its input
        zero, kept = advance(pack([(lambda t, x, i=i: torch.zeros_like(outputs[i])) for i in range(len(fields))]))
        f = None if record.f is None else torch.lerp(kept.f, record.f, self.p)  # p f, or momentum's mean velocity
        return torch.lerp(zero, out, self.p), record._replace(f=f)

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        return self._expected(lambda g: self.inner.step(g, t, dt, u, past, **params), f)

    def transition(self, f, t: float, dt: float, u: Tensor, pu: Tensor) -> tuple[Tensor, Record]:
        return self._expected(lambda g: self.inner.transition(g, t, dt, u, pu), f)


class ShakeShake(Noisy):
    """Two branches per step mixed as eta f_a + (1 - eta) f_b, eta ~ U(0, 1) per sample in
    training with an independent draw for the gradient (Gastaldi 2017); eval mode takes
    the mean 0.5 (f_a + f_b), the expectation whenever the branches are linear."""

    branches = 2

    def __init__(self, scheme: Scheme):
        if scheme.functions != 1:
            raise ValueError(f"shake-shake mixes two branches into the one function of a step; {scheme.name!r} "
                             f"already takes {scheme.functions} functions per step")
        super().__init__(scheme)
        self.functions = self.branches

    def _noisy(self, f, u: Tensor, shape: Optional[torch.Size] = None):
        fa, fb = f
        shape = (u.shape[0],) + (1,) * (u.dim() - 1)
        eta = torch.rand(shape, dtype=u.dtype, device=u.device)
        grad_eta = torch.rand(shape, dtype=u.dtype, device=u.device)

        def mixed(t: float, x: Tensor) -> Tensor:
            a, b = fa(t, x), fb(t, x)
            backward = grad_eta * a + (1 - grad_eta) * b
            return backward + ((eta - grad_eta) * (a - b)).detach()

        return mixed

    @cached_property
    def deterministic(self) -> Scheme:
        return _Mean(self.inner.deterministic)


class _Mean(ShakeShake):
    """Shake-shake in eval mode: the mean of the two branches."""

    def _noisy(self, f, u: Tensor, shape: Optional[torch.Size] = None):
        fa, fb = f
        return lambda t, x: 0.5 * (fa(t, x) + fb(t, x))

    @property
    def deterministic(self) -> Scheme:
        return self


WRAPPERS: dict[str, type[Noisy]] = {"stochastic_depth": StochasticDepth, "batch_drop": StochasticDepth,
                                    "shake_shake": ShakeShake}
"""The wrapper of each of :data:`NOISES`, whose declarations (``branches``) say what the noise needs."""
