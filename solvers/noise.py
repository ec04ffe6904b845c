"""Discrete noise on the residual term of any scheme: the paper's reading of stochastic
depth and shake-shake as discretised SDEs.

Each function wraps step n's vector field for one step. In training mode it draws the
noise once per step and sample, so every stage of a multi-stage scheme sees the same
draw; in eval mode it returns the expectation of the training-mode field, which makes
the eval output the mean of the training output whenever the field is linear.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .scheme import Field


def survival_probabilities(steps: int, last: float) -> list[float]:
    """Huang et al.'s linear decay: p_n = 1 - (n + 1) / L * (1 - p_L), so the last of the
    L steps survives with probability ``last`` (p_L)."""
    if not 0 < last <= 1:
        raise ValueError(f"survival probability p_L must lie in (0, 1], got {last}")
    return [1 - (n + 1) / steps * (1 - last) for n in range(steps)]


def _per_sample(u: Tensor) -> tuple[int, ...]:
    return (u.shape[0],) + (1,) * (u.dim() - 1)


def stochastic_depth(f: Field, p: float, u: Tensor, training: bool) -> Field:
    """f scaled by b ~ Bernoulli(p) per sample in training (the residual term of the step
    is kept with probability p), by p in eval mode."""
    if p >= 1:
        return f
    if not training:
        return lambda t, x: p * f(t, x)
    keep = torch.empty(_per_sample(u), dtype=u.dtype, device=u.device).bernoulli_(p)
    return lambda t, x: keep * f(t, x)


def shake_shake(branches: Sequence[Field], u: Tensor, training: bool) -> Field:
    """Two branches mixed as eta f_a + (1 - eta) f_b with eta ~ U(0, 1) per sample in
    training, and an independent draw for the gradient (Gastaldi's shake-shake); the
    mean 0.5 (f_a + f_b) in eval mode."""
    fa, fb = branches
    if not training:
        return lambda t, x: 0.5 * (fa(t, x) + fb(t, x))
    shape = _per_sample(u)
    eta = torch.rand(shape, dtype=u.dtype, device=u.device)
    grad_eta = torch.rand(shape, dtype=u.dtype, device=u.device)

    def mixed(t: float, x: Tensor) -> Tensor:
        a, b = fa(t, x), fb(t, x)
        backward = grad_eta * a + (1 - grad_eta) * b
        return backward + ((eta - grad_eta) * (a - b)).detach()

    return mixed
