"""Discrete noise on the residual term of any scheme: the paper's reading of stochastic
depth and shake-shake as discretised SDEs.

In training mode the noise is drawn once per step and sample, so every stage of a
multi-stage scheme sees the same draw. In eval mode the step is the expectation of the
training step (exact for stochastic depth; for shake-shake the mean of the mixing
weight, which makes it the expectation whenever the branches are linear).
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
from torch import Tensor

from .scheme import Field, Record


def survival_probabilities(steps: int, survival: Union[float, Sequence[float]]) -> list[float]:
    """Stochastic depth's keep probability p_n of each of ``steps`` steps.

    A float is p_L, the last step's, with Huang et al.'s linear decay
    p_n = 1 - (n + 1) / L * (1 - p_L); a sequence gives every p_n. Each must lie in (0, 1]."""
    if isinstance(survival, (int, float)) and not isinstance(survival, bool):
        ps = [1 - (n + 1) / steps * (1 - survival) for n in range(steps)] if 0 < survival <= 1 else None
    else:
        ps = [float(p) for p in survival]
        ps = ps if len(ps) == steps and all(0 < p <= 1 for p in ps) else None
    if ps is None:
        raise ValueError(f"survival must be p_L in (0, 1] or {steps} probabilities in (0, 1], got {survival!r}")
    return ps


def _per_sample(u: Tensor) -> tuple[int, ...]:
    return (u.shape[0],) + (1,) * (u.dim() - 1)


def stochastic_depth(fields: Sequence[Field], p: float, u: Tensor) -> list[Field]:
    """Training-mode stochastic depth: the functions of step n scaled by one draw
    b ~ Bernoulli(p) per sample, so the step's whole residual term is kept with
    probability p. With b = 0 every stage of the step sees a zero field, so the step
    is S(0); with b = 1 it is S(f)."""
    if p >= 1:
        return list(fields)
    keep = torch.empty(_per_sample(u), dtype=u.dtype, device=u.device).bernoulli_(p)
    return [(lambda t, x, g=g: keep * g(t, x)) for g in fields]


def expected_step(advance: Callable[[Sequence[Field]], tuple[Tensor, Record]], fields: Sequence[Field],
                  p: float) -> tuple[Tensor, Record]:
    """Eval-mode stochastic depth: the expectation of the training step,
    E[S(b f)] = p S(f) + (1 - p) S(0), exact for every scheme (a multi-stage scheme is
    not linear in f, so scaling f by p would not be). ``advance`` takes the step with
    the given fields. The f-value a multistep scheme keeps is scaled to its mean p f."""
    if p >= 1:
        return advance(fields)
    outputs: dict[int, Tensor] = {}

    def recording(i: int, g: Field) -> Field:
        def call(t: float, x: Tensor) -> Tensor:
            outputs[i] = out = g(t, x)
            return out
        return call

    out, record = advance([recording(i, g) for i, g in enumerate(fields)])
    # the zero field has f's own output shape, which a shape-changing step's f does not share with its input
    zero, _ = advance([(lambda t, x, i=i: torch.zeros_like(outputs[i])) for i in range(len(fields))])
    f = None if record.f is None else p * record.f
    return torch.lerp(zero, out, p), record._replace(f=f)


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
