"""Empirical order of convergence: the error at time T against dt, for schemes run through ODENet.

A scheme of order p has global error C dt^p, a line of slope p on a log-log plot; the
slope is fitted by least squares over the finest step sizes whose error is above the
round-off floor. The test problem must have f(0) = 0 for PolyNet, which then is first
order. A scheme whose trained coefficients are constant converges to the solution of
(rho'(1) / sigma(1)) u' = f(u), read from the characteristic polynomial it declares (the
leading terms of its modified equation): an ``lm`` network with constant k solves
(1 + k) u' = f(u), so its error is measured against u(t / (1 + k)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..odenet import ODENet
from .figure import PathLike, new_figure, save_png, series_style
from .modified_multistep import modified_multistep
from .schemes import analysable, fixed_step
from .stability import zero_stable

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
    """Errors max |u_N - u(s T)| per scheme at each dt, the fitted slopes, the nominal
    orders, and the time scale s of each scheme (u(s t) solves the ODE it converges to:
    1 for a consistent scheme, 1 / (1 + k) for lm at a constant k)."""

    problem: str
    dts: Tensor
    errors: dict[str, Tensor]
    slopes: dict[str, float]
    orders: dict[str, int]
    options: dict[str, dict] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)


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


def convergence(schemes: Optional[Sequence[str]] = None, problem: Optional[ODEProblem] = None,
                steps: Sequence[int] = STEPS, options: Optional[Mapping[str, dict]] = None,
                points: int = 3) -> ConvergenceResult:
    """Run each scheme (default: every one :func:`~odenets.analysis.schemes.analysable`)
    through ``ODENet(problem.f, solver, steps=N, dt=T/N)`` (a shared module) for each N in
    ``steps`` and measure the error at T.

    ``options`` gives a scheme's options, e.g. ``{'lm': {'k_init': -0.5}, 'polynet':
    {'truncation': 3}}``. Trained coefficients must start equal at every step (lm's
    default k_init is a random range: give it a number); the error is measured against
    the solution of the ODE the scheme then converges to (:class:`ConvergenceResult`'s
    ``scales``).
    """
    problem = problem or logistic()
    options = {name: dict(o) for name, o in (options or {}).items()}
    schemes = analysable() if schemes is None else list(schemes)
    steps = sorted({int(n) for n in steps})
    if len(steps) < 2 or steps[0] < 1:
        raise ValueError(f"steps must hold at least two positive step counts, got {steps}")
    fixed = fixed_step()
    for name in schemes:
        if name not in fixed:
            raise ValueError(f"unknown or adaptive scheme {name!r}; fixed-step schemes: {', '.join(fixed)}")
    dts = torch.tensor([problem.T / n for n in steps], dtype=torch.float64)
    errors, slopes, orders, scales = {}, {}, {}, {}
    for name in schemes:
        opts = options.get(name, {})
        nets = [ODENet(problem.f, name, steps=n, dt=problem.T / n, **opts).to(torch.float64).eval() for n in steps]
        scales[name] = _time_scale(name, nets[-1])
        target = problem.exact(problem.T * scales[name])
        errs = []
        for net in nets:
            with torch.no_grad():
                errs.append(float((net(problem.u0) - target).abs().max()))
        errors[name] = torch.tensor(errs, dtype=torch.float64)
        size = max(1.0, float(target.abs().max()))
        slopes[name] = fit_order(dts, errors[name], points=points, floor=FLOOR * size)
        orders[name] = nets[-1].scheme.order
    return ConvergenceResult(problem.name, dts, errors, slopes, orders, options, scales)


def _time_scale(name: str, net: ODENet) -> float:
    """s = sigma(1) / rho'(1), so that u(s t) solves the ODE (rho'(1) / sigma(1)) u' = f(u)
    the net's scheme converges to at its trained coefficients (1 for a consistent scheme
    or one that declares no characteristic polynomial)."""
    scheme = net.scheme
    learned = [dict(step.coefs) for step in net.layers if step.coefs]
    params = learned[0] if learned else {}
    if any(set(c) != set(params) or not all(torch.equal(c[k], params[k]) for k in c) for c in learned):
        raise ValueError(f"the convergence of {name!r} needs a constant {', '.join(scheme.trained)}, the same at every "
                         "step: give options that start every step at one value (e.g. lm's k_init=-0.5)")
    params = {k: v.detach() for k, v in params.items()}
    if scheme.characteristic(**params) is None:
        return 1.0
    if not zero_stable(scheme, **params):
        shown = ", ".join(f"{k}={float(v):g}" for k, v in scheme.coefficient_values(**params).items())
        raise ValueError(f"{name!r}{f' at {shown}' if shown else ''} does not converge: it is zero-unstable (a root of "
                         "rho(zeta) outside the unit disc, or a multiple one on it)")
    eq = modified_multistep(scheme, **params)
    scale = float(eq.f) / float(eq.du)
    if not scale > 0:
        raise ValueError(f"{name!r} does not converge to a forward-in-time ODE: its modified equation "
                         f"{float(eq.du):g} u' = {float(eq.f):g} f(u) + O(dt) reverses time")
    return scale


def plot_convergence(result: ConvergenceResult, path: Optional[PathLike] = None):
    """Error against dt on log-log axes, one line per scheme, fitted slopes in the legend.
    Returns the Figure, saved as PNG when ``path`` is given."""
    fig = new_figure(9.0, 4.8)
    ax = fig.add_subplot()
    dts = result.dts.numpy()
    for i, (name, errs) in enumerate(result.errors.items()):
        opts = result.options.get(name, {})
        shown = f"({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else ""
        scale = result.scales.get(name, 1.0)
        against = f", vs u({scale:.4g} t)" if abs(scale - 1) > 1e-9 else ""
        label = f"{name}{shown}: slope {result.slopes[name]:.2f} (order {result.orders[name]}{against})"
        ax.loglog(dts, errs.numpy(), ms=4, label=label, **series_style(i))
    ax.set_xlabel("$\\Delta t$")
    ax.set_ylabel("max error at $T$")
    ax.set_title(f"convergence on {result.problem}", fontsize=10)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, not over them
    if path is not None:
        save_png(fig, path)
    return fig
