"""What a step does to Dahlquist's test equation u' = lambda u, as a scheme declares it.

Applied to u' = lambda u with z = dt * lambda, a step that is one linear recurrence has
solutions zeta^n for the roots zeta of its characteristic polynomial

    pi(zeta; z) = sum_{i,j} c[i, j] zeta^i z^j,

held as the matrix c (float64, rows: powers of zeta, columns: powers of z; leading
dimensions, if any, are a batch, e.g. one per channel of a learned coefficient). The
analysis (stability regions, spectra verdicts, modified equations, the ODE a scheme
converges to) reads a scheme through :meth:`Scheme.characteristic` alone.
Hairer & Wanner, *Solving ODEs II*, §IV.2 and §V.1.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

Coefficient = Union[float, Tensor]


def one_step(r: Sequence[Coefficient]) -> Tensor:
    """pi = zeta - R(z) for a one-step scheme u_{n+1} = R(z) u_n with stability
    function R(z) = sum_m r[m] z^m."""
    r = _stack(r)
    c = torch.zeros(r.shape[:-1] + (2, r.shape[-1]), dtype=torch.float64)
    c[..., 0, :] = -r
    c[..., 1, 0] = 1.0
    return c


def rho_sigma(alpha: Sequence[Coefficient], beta: Sequence[Coefficient]) -> Tensor:
    """pi = rho(zeta) - z sigma(zeta) of the k-step scheme
    u_{n+1} = sum_j alpha_j u_{n-j} + dt sum_j beta_j f_{n-j}: rho(zeta) =
    zeta^k - sum_j alpha_j zeta^{k-1-j}, sigma(zeta) = sum_j beta_j zeta^{k-1-j}.
    Coefficients may be tensors (per channel): the result is then a batch."""
    if len(alpha) != len(beta):
        raise ValueError(f"alpha and beta must have the same length, got {len(alpha)} and {len(beta)}")
    a, b = _stack(alpha), _stack(beta)
    a, b = torch.broadcast_tensors(a, b)
    k = a.shape[-1]
    c = torch.zeros(a.shape[:-1] + (k + 1, 2), dtype=torch.float64)
    c[..., k, 0] = 1.0
    c[..., :k, 0] = -a.flip(-1)
    c[..., :k, 1] = -b.flip(-1)
    return c


def _stack(values: Sequence[Coefficient]) -> Tensor:
    """The values as the last dimension of one float64 tensor (tensors broadcast)."""
    ts = [v.detach().to("cpu", torch.float64) if isinstance(v, Tensor) else torch.tensor(float(v), dtype=torch.float64)
          for v in values]
    return torch.stack(torch.broadcast_tensors(*ts), -1)
