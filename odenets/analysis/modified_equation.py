"""The modified equation of each step of an LM network, and the figure of its learned k_n.

An LM step u_{n+1} = (1 - k) u_n + k u_{n-1} + dt f(u_n), with u_{n±1} = u(t_n ± dt)
expanded by Taylor about t_n, reads

    u_{n+1} - (1 - k) u_n - k u_{n-1}
        = dt (1 + k) u' + dt^2 (1 - k) / 2 u'' + dt^3 (1 + k) / 6 u''' + ...,

so dividing by dt the step solves, up to O(dt^2), the modified equation

    (1 + k) u' + (1 - k) (dt / 2) u'' = f(u).

k = 0 is forward Euler (ResNet), u' + (dt / 2) u'' = f(u). Lu, Zhong, Li & Dong (ICML 2018).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import LM

from ..odenet import ODENet
from .figure import PathLike, new_figure, save_png

NEAR_EULER = 0.02
"""|k| below this reads as forward Euler."""
NEAR_MINUS_ONE = 0.1
"""|1 + k| below this reads as the second-order (inertial) regime."""

READINGS = {
    "euler": "k = 0 (a step without k: the first, which has no u_{n-1}, or a downsampling block; or k ~ 0): "
             "forward Euler, the ResNet step; "
             "u' + (dt/2) u'' = f(u).",
    "momentum": "-1 < k < 0: 1 + k < 1, so u' = f/(1 + k) advances dt/(1 + k) > dt per step (a larger "
                "effective step), and the u'' coefficient (1 - k) dt/2 exceeds ResNet's dt/2: more inertia "
                "against the damping 1 + k, a momentum (heavy-ball) like step.",
    "inertial": "k near -1: the u' coefficient 1 + k nearly vanishes and (1 - k)(dt/2) u'' ~ dt u'' = f(u) "
                "remains: second order in time, an inertial, lightly damped (wave-like) dynamics. At k = -1 "
                "the double root zeta = 1 of rho makes the scheme weakly unstable.",
    "damped": "0 < k <= 1: 1 + k > 1, so the effective step dt/(1 + k) is smaller than dt and the u'' "
              "coefficient (1 - k) dt/2 smaller than ResNet's: a shorter, more damped step. k = 1 leaves "
              "u_{n+1} = u_{n-1} + dt f(u_n), whose parasitic root -1 lies on the unit circle.",
    "unstable": "|k| > 1: rho(zeta) = zeta^2 - (1 - k) zeta - k = (zeta - 1)(zeta + k) has the root -k outside "
                "the unit disc, so the step is zero-unstable: a parasitic mode grows like |k|^n with depth "
                "(for k < -1 the u' coefficient 1 + k is also negative).",
}
"""Plain-language reading of each regime of k."""


def regime(k: float) -> str:
    """The regime of a scalar k, a key of :data:`READINGS`."""
    if abs(k) > 1:
        return "unstable"
    if abs(1 + k) < NEAR_MINUS_ONE:
        return "inertial"
    if abs(k) < NEAR_EULER:
        return "euler"
    return "momentum" if k < 0 else "damped"


@dataclass(frozen=True, eq=False)
class ModifiedEquation:
    """One step of an LM ODENet and its modified equation
    ``u1 * u' + u2 * u'' = f(u)`` with ``u1 = 1 + k`` and ``u2 = (1 - k) dt / 2``.

    ``depth`` counts the steps of every LM ODENet of the model, in module order; ``net``
    is the ODENet's name in the model, ``stage`` its index among them and ``step`` the
    step inside it. ``k`` has shape () or (channels,); a step without a learned k
    (``learned`` False: the network's first step or a downsampling block's, forward
    Euler) has k = 0.
    """

    depth: int
    net: str
    stage: int
    step: int
    dt: float
    k: Tensor
    learned: bool

    @property
    def u1(self) -> Tensor:
        """Coefficient of u': 1 + k."""
        return 1 + self.k

    @property
    def u2(self) -> Tensor:
        """Coefficient of u'': (1 - k) dt / 2."""
        return (1 - self.k) * self.dt / 2

    @property
    def per_channel(self) -> bool:
        """Whether k is a vector, one coefficient per channel, rather than one number."""
        return self.k.dim() > 0

    @property
    def regime(self) -> str:
        """Regime of the mean k (``'unstable'`` if any channel has |k| > 1); see :data:`READINGS`."""
        if not self.learned:
            return "euler"
        if bool((self.k.abs() > 1).any()):
            return "unstable"
        return regime(float(self.k.mean()))

    @property
    def reading(self) -> str:
        """The regime in words (:data:`READINGS`), counting the unstable channels of a per-channel k."""
        text = READINGS[self.regime]
        if self.per_channel and self.regime == "unstable":
            bad = int((self.k.abs() > 1).sum())
            text += f" ({bad} of {self.k.numel()} channels have |k| > 1.)"
        return text

    def as_dict(self) -> dict:
        """Plain numbers (lists for per-channel k), e.g. for JSON."""
        def num(x: Tensor):
            return x.tolist()
        return {"depth": self.depth, "net": self.net, "stage": self.stage, "step": self.step, "dt": self.dt,
                "learned": self.learned, "k": num(self.k), "u1": num(self.u1), "u2": num(self.u2),
                "regime": self.regime}


def lm_nets(module: nn.Module) -> list[tuple[str, ODENet]]:
    """(name, net) for every ODENet whose scheme is LM's in ``module`` (itself included), in module order."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
    return [(name, m) for name, m in module.named_modules() if isinstance(m, ODENet) and isinstance(m.scheme, LM)]


def modified_equation(module: nn.Module) -> list[ModifiedEquation]:
    """The modified equation of every step of every LM ODENet in ``module``, in depth order.

    Raises ValueError when the module holds no ODENet with solver 'lm'.
    """
    nets = lm_nets(module)
    if not nets:
        found = sorted({m.solver for m in module.modules() if isinstance(m, ODENet)})
        has = f"its ODENets use solver(s) {', '.join(found)}" if found else "it contains no ODENet"
        raise ValueError(f"{type(module).__name__} has no ODENet with solver 'lm' ({has}); the modified "
                         "equation (1 + k) u' + (1 - k)(dt/2) u'' = f(u) is that of LM networks")
    rows, depth = [], 0
    for stage, (name, net) in enumerate(nets):
        for n in range(net.steps):
            coefs = dict(net.layers[n].coefs)
            learned = bool(coefs)
            k = (net.scheme.k(**coefs).detach().to("cpu", torch.float64).clone() if learned
                 else torch.zeros((), dtype=torch.float64))
            rows.append(ModifiedEquation(depth, name, stage, n, net.dt, k, learned))
            depth += 1
    return rows


def _k_text(row: ModifiedEquation, x: Tensor) -> str:
    if not row.per_channel:
        return f"{float(x):+.4f}"
    return f"{float(x.mean()):+.4f} [{float(x.min()):+.3f}, {float(x.max()):+.3f}]"


def format_table(rows: Sequence[ModifiedEquation]) -> str:
    """The rows as a text table (per-channel values: mean [min, max]), then the reading of each regime met."""
    head = ("depth", "net", "step", "dt", "k", "1+k (u')", "(1-k)dt/2 (u'')", "regime")
    body = [(str(r.depth), r.net or "<model>", str(r.step), f"{r.dt:g}",
             _k_text(r, r.k) + ("" if r.learned else " (none)"), _k_text(r, r.u1), _k_text(r, r.u2), r.regime)
            for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    out.append("")
    out.append("modified equation of each step: (1 + k) u' + (1 - k)(dt/2) u'' = f(u) + O(dt^2)")
    for key in dict.fromkeys(r.regime for r in rows):
        out.append(f"  {key}: {READINGS[key]}")
    return "\n".join(out)


def plot_learned_k(models: Union[Sequence[ModifiedEquation], Mapping[str, Sequence[ModifiedEquation]]],
                   path: Optional[PathLike] = None):
    """k_n against depth, one line per model (a mapping label -> rows overlays several);
    per-channel k is drawn as its mean with a min-max band; steps without a learned k
    (forward Euler) as open markers at 0. Returns the Figure, saved as PNG when ``path`` is given."""
    if not isinstance(models, Mapping):
        models = {"": models}
    if not models or any(len(rows) == 0 for rows in models.values()):
        raise ValueError("plot_learned_k needs at least one model with at least one LM step")
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    for i, (label, rows) in enumerate(models.items()):
        color = f"C{i % 10}"
        learned = [r for r in rows if r.learned]
        depth = [r.depth for r in learned]
        mean = [float(r.k.mean()) for r in learned]
        ax.plot(depth, mean, "o-", ms=3, color=color, label=label or None)
        if any(r.per_channel for r in learned):
            lo = [float(r.k.min()) for r in learned]
            hi = [float(r.k.max()) for r in learned]
            ax.fill_between(depth, lo, hi, color=color, alpha=0.2, lw=0)
        euler = [r.depth for r in rows if not r.learned]
        if euler:
            ax.plot(euler, [0.0] * len(euler), "o", mfc="none", color=color)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.axhline(-1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("depth n (step, over all LM stages)")
    ax.set_ylabel("learned $k_n$")
    ax.set_title("LM-architecture: $u_{n+1} = (1-k_n)u_n + k_n u_{n-1} + \\Delta t\\, f_n(u_n)$", fontsize=10)
    if any(models):
        ax.legend()
    if path is not None:
        save_png(fig, path)
    return fig
