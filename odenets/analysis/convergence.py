"""Empirical order of convergence: the error at time T against dt, for schemes run through ODENet.

A scheme of order p has global error C dt^p, a line of slope p on a log-log plot; the
slope is fitted by least squares over the finest step sizes whose error is above the
round-off floor. The test problem must have f(0) = 0 for PolyNet, which then is first
order. An ``lm`` network with constant k solves (1 + k) u' = f(u) to first order (its
modified equation), so its error is measured against u(t / (1 + k)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from odenets import solvers

from ..odenet import ODENet
from .figure import PathLike, new_figure, save_png
from .schemes import SCHEMES, fixed_step

STEPS = (8, 16, 32, 64, 128)
"""Default numbers of steps over [0, T]."""
FLOOR = 1e-12
"""Errors below this (relative to the solution's size) are round-off, left out of the fit."""


class Logistic(nn.Module):
    """f(u) = u (1 - u), elementwise; f(0) = 0."""

    def forward(self, u: Tensor) -> Tensor:
        return u * (1 - u)


@dataclass(frozen=True, eq=False)
class ODEProblem:
    """u' = f(u), u(0) = u0 on [0, T], with its exact solution ``exact(t)``."""

    name: str
    f: nn.Module
    u0: Tensor
    T: float
    exact: Callable[[float], Tensor]


def logistic(u0: Sequence[float] = (0.1, 0.5, 0.8), T: float = 1.0) -> ODEProblem:
    """The logistic equation u' = u (1 - u), u(t) = u0 e^t / (1 - u0 + u0 e^t), in float64."""
    x0 = torch.tensor([list(u0)], dtype=torch.float64)

    def exact(t: float) -> Tensor:
        e = math.exp(t)
        return x0 * e / (1 - x0 + x0 * e)

    return ODEProblem("logistic u' = u(1 - u)", Logistic(), x0, float(T), exact)


@dataclass(frozen=True, eq=False)
class ConvergenceResult:
    """Errors max |u_N - u(T)| per scheme at each dt, the fitted slopes and the nominal orders."""

    problem: str
    dts: Tensor
    errors: dict[str, Tensor]
    slopes: dict[str, float]
    orders: dict[str, int]
    options: dict[str, dict] = field(default_factory=dict)


def fit_order(dts: Tensor, errors: Tensor, points: int = 3, floor: float = FLOOR) -> float:
    """Least-squares slope of log(error) against log(dt) over the ``points`` smallest dt
    whose error is above ``floor``: the empirical order."""
    dts = torch.as_tensor(dts, dtype=torch.float64)
    errors = torch.as_tensor(errors, dtype=torch.float64)
    if dts.shape != errors.shape or dts.dim() != 1:
        raise ValueError(f"dts and errors must be 1-d and of the same length, got {tuple(dts.shape)} "
                         f"and {tuple(errors.shape)}")
    keep = (errors > floor) & torch.isfinite(errors)
    order = torch.argsort(dts[keep])[:points]
    x, y = dts[keep][order].log(), errors[keep][order].log()
    if len(x) < 2:
        raise ValueError(f"need at least two errors above the floor {floor:g} to fit a slope; got {len(x)} "
                         "(use larger steps)")
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def convergence(schemes: Sequence[str] = SCHEMES, problem: Optional[ODEProblem] = None,
                steps: Sequence[int] = STEPS, options: Optional[Mapping[str, dict]] = None,
                points: int = 3) -> ConvergenceResult:
    """Run each scheme through ``ODENet(problem.f, solver, steps=N, dt=T/N)`` (a shared
    module) for each N in ``steps`` and measure the error at T.

    ``options`` gives a scheme's options, e.g. ``{'lm': {'k_init': -0.5}, 'polynet':
    {'truncation': 3}}``; lm defaults to k = -0.5 and is measured against the solution of
    its modified equation (1 + k) u' = f(u), u(t / (1 + k)).
    """
    problem = problem or logistic()
    options = {name: dict(o) for name, o in (options or {}).items()}
    options.setdefault("lm", {"k_init": -0.5})
    steps = sorted({int(n) for n in steps})
    if len(steps) < 2 or steps[0] < 1:
        raise ValueError(f"steps must hold at least two positive step counts, got {steps}")
    fixed = fixed_step()
    for name in schemes:
        if name not in fixed:
            raise ValueError(f"unknown or adaptive scheme {name!r}; fixed-step schemes: {', '.join(fixed)}")
    dts = torch.tensor([problem.T / n for n in steps], dtype=torch.float64)
    errors, slopes, orders = {}, {}, {}
    for name in schemes:
        opts = options.get(name, {})
        target = problem.exact(problem.T / _time_scale(name, opts))
        errs = []
        for n in steps:
            net = ODENet(problem.f, name, steps=n, dt=problem.T / n, **opts).to(torch.float64).eval()
            with torch.no_grad():
                errs.append(float((net(problem.u0) - target).abs().max()))
        errors[name] = torch.tensor(errs, dtype=torch.float64)
        scale = max(1.0, float(target.abs().max()))
        slopes[name] = fit_order(dts, errors[name], points=points, floor=FLOOR * scale)
        orders[name] = solvers.get(name, **opts).order
    return ConvergenceResult(problem.name, dts, errors, slopes, orders, options)


def _time_scale(name: str, opts: dict) -> float:
    """1 + k for lm at a constant k (its modified equation), else 1."""
    if name != "lm":
        return 1.0
    k = opts.get("k_init", (-0.1, 0.0))
    if not isinstance(k, (int, float)):
        raise ValueError(f"the convergence of lm needs a constant k: options {{'lm': {{'k_init': float}}}}, "
                         f"got k_init={k!r}")
    if not -1 < k <= 1:
        raise ValueError(f"lm with k = {k} does not converge (zero-unstable or u' coefficient 1 + k <= 0); "
                         "use -1 < k <= 1")
    return 1.0 + k


def plot_convergence(result: ConvergenceResult, path: Optional[PathLike] = None):
    """Error against dt on log-log axes, one line per scheme, fitted slopes in the legend.
    Returns the Figure, saved as PNG when ``path`` is given."""
    fig = new_figure(6.4, 4.8)
    ax = fig.add_subplot()
    dts = result.dts.numpy()
    for i, (name, errs) in enumerate(result.errors.items()):
        opts = result.options.get(name, {})
        shown = f"({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else ""
        against = ", vs (1+k)u' = f" if name == "lm" else ""
        label = f"{name}{shown}: slope {result.slopes[name]:.2f} (order {result.orders[name]}{against})"
        ax.loglog(dts, errs.numpy(), "o-", ms=4, color=f"C{i % 10}", label=label)
    ax.set_xlabel("$\\Delta t$")
    ax.set_ylabel("max error at $T$")
    ax.set_title(f"convergence on {result.problem}", fontsize=10)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7)
    if path is not None:
        save_png(fig, path)
    return fig
