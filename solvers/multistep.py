"""One stepper for every explicit linear multistep scheme: a scheme is its coefficients.

A k-step scheme with coefficients (alpha, beta) reads

    u_{n+1} = sum_{j=0}^{k-1} alpha_j u_{n-j} + dt * sum_{j=0}^{k-1} beta_j f_{n-j},

where f_{n-j} = f(t_{n-j}, u_{n-j}). Until enough past steps exist, a one-step
*starter* takes the step. Hairer, Nørsett & Wanner, *Solving ODEs I*, §III.1–2.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import isclose
from typing import Sequence

import torch
from torch import Tensor

from .characteristic import rho_sigma
from .scheme import Past, Record, Scheme, axpy


@dataclass(frozen=True)
class MultistepCoefficients:
    """Coefficients (alpha_j, beta_j), j = 0..k-1, of an explicit linear multistep scheme.

    On construction they are checked against the order conditions up to ``order``:
    the scheme is exact for u(t) = t^q, q = 0..order, i.e.
    sum_j alpha_j (-j)^q + q * sum_j beta_j (-j)^(q-1) = 1.
    """

    name: str
    order: int
    alpha: tuple[float, ...]
    beta: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.alpha or len(self.alpha) != len(self.beta):
            raise ValueError(f"multistep {self.name!r}: alpha and beta must have the same, non-zero length "
                             f"(got {len(self.alpha)} and {len(self.beta)})")
        if self.order < 1:
            raise ValueError(f"multistep {self.name!r}: order must be at least 1, got {self.order}")
        for q in range(self.order + 1):
            value = sum(a * (-j) ** q for j, a in enumerate(self.alpha))
            if q:
                value += q * sum(b * (-j) ** (q - 1) for j, b in enumerate(self.beta))
            if not isclose(value, 1.0, abs_tol=1e-12):
                raise ValueError(f"multistep {self.name!r} claims order {self.order} but is not exact "
                                 f"for u = t^{q} ({value} != 1)")

    @property
    def steps(self) -> int:
        """How many earlier states (and their f's) one step combines: the length of alpha."""
        return len(self.alpha)

    def characteristic(self) -> Tensor:
        """pi = rho(zeta) - z sigma(zeta) (:func:`odenets.solvers.characteristic.rho_sigma`)."""
        return rho_sigma(self.alpha, self.beta)


AB2 = MultistepCoefficients("ab2", 2, alpha=(1.0, 0.0), beta=(3 / 2, -1 / 2))
AB3 = MultistepCoefficients("ab3", 3, alpha=(1.0, 0.0, 0.0), beta=(23 / 12, -16 / 12, 5 / 12))
AB4 = MultistepCoefficients("ab4", 4, alpha=(1.0, 0.0, 0.0, 0.0), beta=(55 / 24, -59 / 24, 37 / 24, -9 / 24))


class LinearMultistep(Scheme):
    """Explicit linear multistep scheme:
    u_{n+1} = sum_j alpha_j u_{n-j} + dt * sum_j beta_j f_{n-j}.

    ``starter`` is the one-step scheme that takes the steps for which the history is
    too short; for the nominal order to hold it must have at least that order.
    Subclasses with learned coefficients override :meth:`weights`; the zero pattern of
    ``coefficients.beta`` still says which past f-values a step reads. One whose
    :meth:`combine` returns a new tensor that no autograd node keeps sets
    ``combine_is_new``, and the f terms are added into it in place.
    """

    combine_is_new: bool = False

    def __init__(self, coefficients: MultistepCoefficients, starter: Scheme):
        if starter.history:
            raise ValueError(f"the starter of {coefficients.name!r} must be a one-step scheme, got {starter!r}")
        self.coefficients = coefficients
        self.starter = starter
        self.name = coefficients.name
        self.order = coefficients.order
        self.history = coefficients.steps - 1

    def weights(self, **params: Tensor) -> tuple[Sequence, Sequence]:
        """(alpha, beta) for this step; floats, or tensors for learned coefficients."""
        return self.coefficients.alpha, self.coefficients.beta

    def characteristic(self, **params: Tensor) -> Tensor:
        """pi = rho(zeta) - z sigma(zeta) from this step's :meth:`weights`; learned
        coefficients per channel give one polynomial per channel."""
        return rho_sigma(*self.weights(**params))

    def with_history(self, records: int) -> Scheme:
        """The starter while fewer than ``history`` past records exist."""
        return self.starter if records < self.history else self

    def combine(self, states: Sequence[Tensor], alpha: Sequence) -> Tensor:
        """sum_j alpha_j u_{n-j}; a tensor alpha_j is per step or per channel (dim 1)."""
        out = None
        for a, x in zip(alpha, states):
            out = axpy(out, a, x)
        return out

    def _ready(self, past: Past) -> bool:
        """Whether the history holds every past state and f-value the step reads."""
        beta = self.coefficients.beta
        return len(past) >= self.history and all(past[j - 1].f is not None for j in range(1, len(beta)) if beta[j])

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        if not self._ready(past):
            return self.starter.step(f, t, dt, u, past)
        alpha, beta = self.weights(**params)
        fn = f(t, u)
        out = self.combine([u] + [r.u for r in past], alpha)
        # in place saves a pass in eager mode; under torch.compile it would stop the add
        # from fusing with the combine (LM with a shared f: 1.11x the compiled hand loop)
        inplace = self.combine_is_new and not torch.compiler.is_compiling()
        for b, fx in zip(beta, [fn] + [r.f for r in past]):
            out = axpy(out, dt * b, fx, inplace=inplace)
        return out, Record(u, fn if any(self.coefficients.beta[1:]) else None)
