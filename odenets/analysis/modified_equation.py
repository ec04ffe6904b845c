"""The modified equation of each step of a network whose scheme has trained coefficients
(LM-ResNet's k_n, or any scheme's that declares them), and the figure of those coefficients.

Each step's modified equation du u' + ddu u'' = f f(u) + df (d/dt) f(u) + O(dt^2) is read
from the characteristic polynomial its scheme declares at the step's coefficients
(:func:`odenets.analysis.modified_multistep`). An LM step
u_{n+1} = (1 - k) u_n + k u_{n-1} + dt f(u_n), with u_{n±1} = u(t_n ± dt) expanded by
Taylor about t_n, reads

    u_{n+1} - (1 - k) u_n - k u_{n-1}
        = dt (1 + k) u' + dt^2 (1 - k) / 2 u'' + dt^3 (1 + k) / 6 u''' + ...,

so dividing by dt the step solves, up to O(dt^2), the modified equation

    (1 + k) u' + (1 - k) (dt / 2) u'' = f(u).

k = 0 is forward Euler (ResNet), u' + (dt / 2) u'' = f(u). Lu, Zhong, Li & Dong (ICML 2018).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import EULER, RungeKutta, Scheme

from ..odenet import ODENet
from .figure import PathLike, new_figure, save_png
from .modified_multistep import SecondOrderEquation, modified_multistep
from .stability import stable

NEAR_EULER = 0.02
"""LM's |k| below this reads as forward Euler (the regimes are drawn where LM's k draws them)."""
NEAR_MINUS_ONE = 0.1
"""LM's |1 + k| below this reads as the second-order (inertial) regime."""

READINGS = {
    "euler": "forward Euler, the ResNet step, to O(dt^2): u' + (dt/2) u'' = f(u) (a step without trained "
             "coefficients: the first, which has no u_{n-1}, or a downsampling block; or LM's k ~ 0).",
    "momentum": "more inertia than ResNet: u'' weighs more than dt/2 against u' (LM: -1 < k < 0, where 1 + k < 1, "
                "so u' = f/(1 + k) advances dt/(1 + k) > dt per step, a larger effective step, and the u'' "
                "coefficient (1 - k) dt/2 exceeds ResNet's dt/2 against the damping 1 + k): a momentum "
                "(heavy-ball) like step.",
    "inertial": "the u' term nearly vanishes against the u'' one (LM: k near -1, where the u' coefficient 1 + k "
                "nearly vanishes and (1 - k)(dt/2) u'' ~ dt u'' = f(u) remains): second order in time, an "
                "inertial, lightly damped (wave-like) dynamics. At LM's k = -1 the double root zeta = 1 of rho "
                "makes the scheme weakly unstable.",
    "damped": "less inertia than ResNet: u'' weighs less than dt/2 against u' (LM: 0 < k <= 1, where 1 + k > 1, so "
              "the effective step dt/(1 + k) is smaller than dt and the u'' coefficient (1 - k) dt/2 smaller than "
              "ResNet's): a shorter, more damped step. LM's k = 1 leaves u_{n+1} = u_{n-1} + dt f(u_n), whose "
              "parasitic root -1 lies on the unit circle.",
    "unstable": "zero-unstable: rho(zeta) has a root outside the unit disc (or a multiple one on it), so a "
                "parasitic mode grows with depth (LM: rho = zeta^2 - (1 - k) zeta - k = (zeta - 1)(zeta + k), the "
                "root -k outside for |k| > 1; for k < -1 the u' coefficient 1 + k is also negative).",
}
"""Plain-language reading of each regime of a step's modified equation."""


def _lm_inertia(k: float) -> float:
    """eps / dt = ddu / (du dt) of LM's equation at k: (1 - k) / (2 (1 + k))."""
    return (1 - k) / (2 * (1 + k))


def regime(equation: SecondOrderEquation, dt: float) -> str:
    """The regime of a zero-stable step's modified equation (scalar coefficients), a key of
    :data:`READINGS`, by its inertia eps = ddu / du against ResNet's dt / 2."""
    du, ddu = float(equation.du), float(equation.ddu)
    inertia = ddu / (du * dt) if du > 0 else float("inf")
    if inertia > _lm_inertia(-1 + NEAR_MINUS_ONE):
        return "inertial"
    if _lm_inertia(NEAR_EULER) < inertia < _lm_inertia(-NEAR_EULER):
        return "euler"
    return "momentum" if inertia > 0.5 else "damped"


_EULER = RungeKutta(EULER)  # the step without coefficients: a starter's or a downsampling block's


@dataclass(frozen=True, eq=False)
class ModifiedEquation:
    """One step of an ODENet whose scheme has trained coefficients, and its modified
    equation :attr:`equation`, du u' + ddu u'' = f f(u) + df (d/dt) f(u) + O(dt^2).

    ``depth`` counts the steps of every such ODENet of the model, in module order; ``net``
    is the ODENet's name in the model, ``stage`` its index among them and ``step`` the
    step inside it. ``scheme`` is the scheme that takes the step and ``params`` its trained
    coefficients (each of shape () or (channels,)); a step without them (``learned``
    False: the network's first step, which its starter takes, or a downsampling block's)
    is forward Euler.
    """

    depth: int
    net: str
    stage: int
    step: int
    dt: float
    scheme: Scheme
    params: dict
    learned: bool

    @property
    def coefficients(self) -> dict[str, Tensor]:
        """The step's coefficients as its scheme reports them (LM: ``{'k': k_n}``)."""
        return self.scheme.coefficient_values(**self.params) if self.params else {}

    @cached_property
    def equation(self) -> SecondOrderEquation:
        """The modified equation at the step's coefficients (float64 tensors, per channel
        where the coefficients are)."""
        eq = modified_multistep(self.scheme, self.dt, **self.params)
        return SecondOrderEquation(*(torch.as_tensor(v, dtype=torch.float64) for v in (eq.du, eq.ddu, eq.f, eq.df)))

    @property
    def channels(self) -> int:
        """Values per coefficient: 1, or the channels of per-channel coefficients."""
        return max([v.numel() for v in self.params.values()], default=1)

    @property
    def per_channel(self) -> bool:
        """Whether the coefficients are vectors, one per channel, rather than numbers."""
        return any(v.dim() > 0 for v in self.params.values())

    @cached_property
    def unstable_channels(self) -> int:
        """How many channels make the step zero-unstable (its root condition at z = 0)."""
        if not self.learned:
            return 0
        return sum(not bool(stable(self.scheme, 0.0, **{k: v.reshape(-1)[i] if v.dim() else v
                                                        for k, v in self.params.items()}))
                   for i in range(self.channels))

    @property
    def regime(self) -> str:
        """Regime of the equation at the channels' mean coefficients (``'unstable'`` if any
        channel is zero-unstable); see :data:`READINGS`."""
        if not self.learned:
            return "euler"
        if self.unstable_channels:
            return "unstable"
        mean = {k: float(v.mean()) for k, v in self.params.items()}
        return regime(modified_multistep(self.scheme, self.dt, **mean), self.dt)

    @property
    def reading(self) -> str:
        """The regime in words (:data:`READINGS`), counting the unstable channels of a per-channel k."""
        text = READINGS[self.regime]
        if self.per_channel and self.regime == "unstable":
            text += f" ({self.unstable_channels} of {self.channels} channels are zero-unstable.)"
        return text

    def as_dict(self) -> dict:
        """Plain numbers (lists for per-channel coefficients), e.g. for JSON."""
        eq = self.equation
        return {"depth": self.depth, "net": self.net, "stage": self.stage, "step": self.step, "dt": self.dt,
                "learned": self.learned, "coefficients": {k: v.tolist() for k, v in self.coefficients.items()},
                "du": eq.du.tolist(), "ddu": eq.ddu.tolist(), "f": eq.f.tolist(), "df": eq.df.tolist(),
                "regime": self.regime}


def learned_nets(module: nn.Module) -> list[tuple[str, ODENet]]:
    """(name, net) for every ODENet in ``module`` (itself included), in module order, whose
    scheme has trained coefficients and declares its characteristic polynomial (LM's,
    momentum's with ``train_gamma``, a registered scheme's that declares them)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, ODENet) and m.layers and _declares(m.scheme.deterministic)]


def _declares(scheme: Scheme) -> bool:
    """Whether ``scheme`` has trained coefficients and a characteristic polynomial at them."""
    return bool(scheme.trained) and scheme.characteristic(**scheme.init_params(0)) is not None


def modified_equation(module: nn.Module) -> list[ModifiedEquation]:
    """The modified equation of every step of every ODENet in ``module`` whose scheme has
    trained coefficients (:func:`learned_nets`), in depth order.

    Raises ValueError when the module holds no such ODENet.
    """
    nets = learned_nets(module)
    if not nets:
        found = sorted({m.solver for m in module.modules() if isinstance(m, ODENet)})
        has = f"its ODENets use solver(s) {', '.join(found)}" if found else "it contains no ODENet"
        raise ValueError(f"{type(module).__name__} has no ODENet with solver 'lm' or another scheme with trained "
                         f"coefficients ({has}); the modified equation (1 + k) u' + (1 - k)(dt/2) u'' = f(u) is that "
                         "of LM networks")
    rows, depth = [], 0
    for stage, (name, net) in enumerate(nets):
        for n, step in enumerate(net.layers):
            params = {k: v.detach().to("cpu", torch.float64).clone() for k, v in step.coefs.items()}
            scheme = net.scheme.deterministic if params else _EULER
            rows.append(ModifiedEquation(depth, name, stage, n, net.dt, scheme, params, bool(params)))
            depth += 1
    return rows


def _text(x: Tensor) -> str:
    if x.dim() == 0:
        return f"{float(x):+.4f}"
    return f"{float(x.mean()):+.4f} [{float(x.min()):+.3f}, {float(x.max()):+.3f}]"


def format_table(rows: Sequence[ModifiedEquation]) -> str:
    """The rows as a text table (per-channel values: mean [min, max]), then the reading of each regime met."""
    head = ("depth", "net", "step", "dt", "coefficients", "du (u')", "ddu (u'')", "f (f(u))", "df (d/dt f)", "regime")
    body = [(str(r.depth), r.net or "<model>", str(r.step), f"{r.dt:g}",
             ", ".join(f"{k}={_text(v)}" for k, v in r.coefficients.items()) or "(none)",
             *(_text(x) for x in (r.equation.du, r.equation.ddu, r.equation.f, r.equation.df)), r.regime)
            for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    out.append("")
    out.append("modified equation of each step: du u' + ddu u'' = f f(u) + df (d/dt) f(u) + O(dt^2) "
               "(LM: (1 + k) u' + (1 - k)(dt/2) u'' = f(u))")
    for key in dict.fromkeys(r.regime for r in rows):
        out.append(f"  {key}: {READINGS[key]}")
    return "\n".join(out)


def plot_learned_k(models: Union[Sequence[ModifiedEquation], Mapping[str, Sequence[ModifiedEquation]]],
                   path: Optional[PathLike] = None):
    """Each trained coefficient (LM's k_n) against depth, one line per model and
    coefficient (a mapping label -> rows overlays several models); per-channel values are
    drawn as their mean with a min-max band; steps without coefficients (forward Euler)
    as open markers at 0. Returns the Figure, saved as PNG when ``path`` is given."""
    if not isinstance(models, Mapping):
        models = {"": models}
    if not models or any(len(rows) == 0 for rows in models.values()):
        raise ValueError("plot_learned_k needs at least one model with at least one step with trained coefficients")
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    line = 0
    for label, rows in models.items():
        learned = [r for r in rows if r.learned]
        names = list(dict.fromkeys(k for r in learned for k in r.coefficients))
        for name in names:
            color = f"C{line % 10}"
            line += 1
            depth = [r.depth for r in learned if name in r.coefficients]
            values = [r.coefficients[name] for r in learned if name in r.coefficients]
            shown = f"{label}: {name}" if len(names) > 1 else label
            ax.plot(depth, [float(v.mean()) for v in values], "o-", ms=3, color=color, label=shown or None)
            if any(v.dim() > 0 for v in values):
                ax.fill_between(depth, [float(v.min()) for v in values], [float(v.max()) for v in values],
                                color=color, alpha=0.2, lw=0)
        euler = [r.depth for r in rows if not r.learned]
        if euler:
            ax.plot(euler, [0.0] * len(euler), "o", mfc="none", color=f"C{max(line - 1, 0) % 10}")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.axhline(-1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("depth n (step, over all stages with trained coefficients)")
    ax.set_ylabel("learned coefficients ($k_n$)")
    ax.set_title("trained coefficients per step (LM: $u_{n+1} = (1-k_n)u_n + k_n u_{n-1} + \\Delta t\\, f_n(u_n)$)",
                 fontsize=10)
    if any(models):
        ax.legend()
    if path is not None:
        save_png(fig, path)
    return fig
