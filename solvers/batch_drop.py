"""Stochastic depth as the LM-ResNet authors train it: one draw per step and mini-batch.

Huang et al.'s form in :mod:`solvers.noise` keeps each sample's residual term with
probability p_n and takes the expectation in eval mode. The authors' MResNetSD instead
draws once per block for the whole mini-batch, divides a kept residual by its keep
probability 1 - d_n in training, and uses the block as it is in eval mode; its death
rates grow linearly from 0 at the first block to 1 - p_L at the last.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .scheme import Field


def death_rates(steps: int, survival: Union[float, Sequence[float]]) -> list[float]:
    """The drop probability d_n of each of ``steps`` steps.

    A float is p_L, the last step's keep probability, with the authors' linear rule
    d_n = n / (L - 1) * (1 - p_L) (the first step is never dropped); a sequence gives every
    keep probability p_n = 1 - d_n. Each p_n must lie in (0, 1]."""
    if isinstance(survival, (int, float)) and not isinstance(survival, bool):
        rates = [n / max(steps - 1, 1) * (1 - survival) for n in range(steps)] if 0 < survival <= 1 else None
    else:
        keep = [float(p) for p in survival]
        rates = [1 - p for p in keep] if len(keep) == steps and all(0 < p <= 1 for p in keep) else None
    if rates is None:
        raise ValueError(f"survival must be p_L in (0, 1] or {steps} probabilities in (0, 1], got {survival!r}")
    return rates


def batch_drop(fields: Sequence[Field], death_rate: float, shape: Optional[torch.Size] = None) -> list[Field]:
    """Training-mode fields of one step under the authors' stochastic depth.

    One uniform draw for the whole mini-batch (from torch's global generator, so seeded
    runs repeat) drops the step with probability ``death_rate``: its functions then
    return zeros, of ``shape`` (a shape-changing step's output) or else of their input's
    shape, without being evaluated, so the step is the scheme with f = 0. A kept step's
    functions are divided by 1 - ``death_rate``. Eval mode uses the fields unchanged."""
    if not 0 <= death_rate < 1:
        raise ValueError(f"death_rate must lie in [0, 1), got {death_rate!r}")
    if float(torch.rand(())) < death_rate:
        return [(lambda t, x: x.new_zeros(x.shape if shape is None else shape)) for _ in fields]
    if death_rate == 0:
        return list(fields)
    keep = 1 - death_rate
    return [(lambda t, x, g=g: g(t, x) / keep) for g in fields]
