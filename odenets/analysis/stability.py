"""Linear stability: where in the complex plane z = dt * lambda a scheme keeps u' = lambda u bounded.

Applied to u' = lambda u, a fixed-step scheme that is one linear recurrence has solutions
that are combinations of zeta^n over the roots zeta of its characteristic polynomial
pi(zeta; z), which the scheme declares (:meth:`odenets.solvers.Scheme.characteristic`;
nothing here knows a scheme by name or class). The scheme is absolutely stable at z when
every root has |zeta| <= 1 and those on the unit circle are simple (the root condition).
The built-in schemes declare:

- explicit Runge–Kutta: pi = zeta - R(z), R(z) = 1 + z b^T (I - zA)^{-1} 1
  = 1 + sum_{m>=0} (b^T A^m 1) z^{m+1} (A nilpotent, so the sum is finite);
- linear multistep u_{n+1} = sum_j alpha_j u_{n-j} + dt sum_j beta_j f_{n-j}:
  pi = rho(zeta) - z sigma(zeta) = zeta^s - sum_j (alpha_j + z beta_j) zeta^{s-1-j};
  LM-ResNet at its trained k: pi = zeta^2 - (1 - k + z) zeta - k;
- PolyNet truncated after r terms: R(z) = 1 + z + ... + z^r.

Hairer & Wanner, *Solving ODEs II*, §IV.2 and §V.1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from odenets.solvers import ButcherTableau, MultistepCoefficients, Scheme

from .figure import PathLike, new_figure, save_png, series_style
from .schemes import analysable, resolve

if TYPE_CHECKING:
    from .modified_equation import ModifiedEquation

ROOT_TOL = 1e-9
"""Slack on |zeta| <= 1."""
SIMPLE_TOL = 1e-6
"""Roots on the unit circle closer than this count as one multiple root."""


@dataclass(frozen=True, eq=False)
class Characteristic:
    """pi(zeta; z) = sum_{i,j} coeffs[i, j] zeta^i z^j, the characteristic polynomial of a
    scheme applied to u' = lambda u with z = dt * lambda."""

    name: str
    coeffs: Tensor

    def __post_init__(self) -> None:
        c = self.coeffs
        if c.dim() != 2 or c.shape[0] < 2:
            raise ValueError(f"characteristic {self.name!r}: coeffs must be a matrix with at least two rows "
                             f"(powers of zeta), got shape {tuple(c.shape)}")
        if c[-1, 0] == 0 or c[-1, 1:].any():
            raise ValueError(f"characteristic {self.name!r}: the leading coefficient in zeta must be a nonzero "
                             "constant (an explicit scheme)")

    @property
    def degree(self) -> int:
        """The degree in zeta: the number of roots, one per state the recurrence carries."""
        return self.coeffs.shape[0] - 1

    def roots(self, z) -> Tensor:
        """The roots zeta at each z: shape z.shape + (degree,)."""
        return torch.from_numpy(self._roots(_complex(z)))

    def stable(self, z) -> Tensor:
        """Whether the root condition holds at each z (a bool tensor of z's shape)."""
        r = self._roots(_complex(z))
        mod = np.abs(r)
        ok = (mod <= 1 + ROOT_TOL).all(-1)
        for i in range(self.degree):  # a multiple root on the unit circle breaks the root condition
            for j in range(i):
                ok &= ~((np.abs(r[..., i] - r[..., j]) < SIMPLE_TOL) & (mod[..., i] > 1 - SIMPLE_TOL))
        return torch.from_numpy(np.asarray(ok))

    # numpy inside: its complex arithmetic is several times faster than torch's on CPU
    def _polynomial(self, z: np.ndarray) -> np.ndarray:
        coeffs = self.coeffs.numpy().T.astype(np.complex128)  # row j: the zeta-coefficients of z^j
        z = z[..., None]
        out = np.broadcast_to(coeffs[-1], z.shape[:-1] + coeffs.shape[1:])
        for row in coeffs[-2::-1]:  # Horner in z
            out = out * z + row
        return out

    def _roots(self, z: np.ndarray) -> np.ndarray:
        p = self._polynomial(z)
        p = p / p[..., -1:]
        if self.degree == 1:
            return -p[..., :1]
        if self.degree == 2:
            return _quadratic_roots(p[..., 1].copy(), p[..., 0].copy())
        companion = np.zeros(p.shape[:-1] + (self.degree, self.degree), dtype=p.dtype)
        companion[..., 1:, :-1] = np.eye(self.degree - 1)
        companion[..., :, -1] = -p[..., :-1]
        return np.linalg.eigvals(companion)


def _complex(z) -> np.ndarray:
    if isinstance(z, Tensor):
        z = z.detach().cpu().numpy()
    return np.asarray(z, dtype=np.complex128)


def _quadratic_roots(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Roots of zeta^2 + b zeta + c, without cancellation: q = -(b + s sqrt(b^2 - 4c)) / 2
    with the sign s that adds magnitudes, roots q and c / q."""
    d = np.sqrt(b * b - 4 * c)
    d = np.where((b.conj() * d).real >= 0, d, -d)
    q = -(b + d) / 2
    safe = q != 0
    other = np.divide(c, q, out=np.zeros_like(q), where=safe)
    return np.stack((q, other), -1)


# -- characteristic polynomials of the schemes ----------------------------------------------------

SchemeLike = Union[str, Scheme, ButcherTableau, MultistepCoefficients, Characteristic]


def characteristic(scheme: SchemeLike, **keywords) -> Characteristic:
    """The characteristic polynomial of ``scheme``, as it declares it
    (:meth:`odenets.solvers.Scheme.characteristic`): a name from :func:`solvers.available`,
    a Scheme, or a ButcherTableau / MultistepCoefficients. ``keywords`` are the step's
    trained coefficients (``k=-0.5`` for lm) and, for a name, the options that build it
    (``truncation=3`` for polynet)."""
    chars = _characteristics(scheme, keywords)
    if len(chars) != 1:
        raise ValueError(f"coefficients with {len(chars)} values (per channel) give one polynomial each; "
                         "stability_region, stable and real_interval take them all")
    return chars[0]


def _characteristics(scheme: SchemeLike, keywords: dict) -> list[Characteristic]:
    """One characteristic per value of the trained coefficients (per channel: one each)."""
    if isinstance(scheme, Characteristic):
        if keywords:
            raise ValueError(f"a Characteristic takes no coefficients, got {', '.join(keywords)}")
        return [scheme]
    scheme, shown, params = resolve(scheme, keywords, "stability")
    coeffs = scheme.characteristic(**params)
    if coeffs is None:
        raise ValueError(f"no linear stability analysis for scheme {scheme.name!r} ({type(scheme).__name__}): it "
                         f"does not reduce to one recurrence for u' = lambda u; analysable: {', '.join(analysable())} "
                         "or a ButcherTableau / MultistepCoefficients")
    batch = coeffs.shape[:-2]
    shown_coefficients = scheme.coefficient_values(**params) if params else {}  # lm reports k for its k_raw
    values = {key: torch.as_tensor(v, dtype=torch.float64).expand(batch).flatten()
              for key, v in shown_coefficients.items()}
    name, chars = getattr(scheme, "name", type(scheme).__name__), []
    for i, c in enumerate(coeffs.reshape((-1,) + coeffs.shape[-2:])):
        label = {**shown, **{key: float(v[i]) for key, v in values.items()}}
        text = ", ".join(f"{key}={v:g}" if isinstance(v, (int, float)) else f"{key}={v!r}" for key, v in label.items())
        chars.append(Characteristic(f"{name}({text})" if text else name, c))
    return chars


# -- regions --------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class StabilityRegion:
    """The stable set on a grid: ``stable[i, j]`` at z = re[j] + i im[i]."""

    name: str
    re: Tensor
    im: Tensor
    stable: Tensor

    @property
    def z(self) -> Tensor:
        """The grid's complex points, shaped as ``stable``: ``z[i, j] = re[j] + i im[i]``."""
        return torch.complex(self.re.unsqueeze(0).expand(len(self.im), -1),
                             self.im.unsqueeze(1).expand(-1, len(self.re)))

    @property
    def area(self) -> float:
        """Area of the stable set inside the grid (cell count times cell area)."""
        cell = (self.re[1] - self.re[0]) * (self.im[1] - self.im[0])
        return float(self.stable.sum() * cell)


def stability_region(scheme: SchemeLike, *, re: tuple[float, float] = (-4.0, 1.0),
                     im: tuple[float, float] = (-3.0, 3.0), resolution: int = 401,
                     name: Optional[str] = None, **keywords) -> StabilityRegion:
    """The region of absolute stability of ``scheme`` on a ``resolution`` x ``resolution``
    grid over ``re`` x ``im``; ``keywords`` as for :func:`characteristic`. A trained
    coefficient may hold one value per channel (lm's k): the region is then where the
    step is stable for every channel."""
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    for label, (lo, hi) in (("re", re), ("im", im)):
        if not lo < hi:
            raise ValueError(f"{label} must be a range (low, high) with low < high, got {(lo, hi)}")
    chars = _characteristics(scheme, keywords)
    x = torch.linspace(re[0], re[1], resolution, dtype=torch.float64)
    y = torch.linspace(im[0], im[1], resolution, dtype=torch.float64)
    z = torch.complex(x.unsqueeze(0).expand(resolution, -1), y.unsqueeze(1).expand(-1, resolution))
    stable = torch.ones_like(z.real, dtype=torch.bool)
    for c in chars:
        stable &= c.stable(z)
    if name is None:
        name = chars[0].name if len(chars) == 1 else f"{chars[0].name.split('(')[0]}({len(chars)} channels)"
    return StabilityRegion(name, x, y, stable)


def stable(scheme: SchemeLike, z, **keywords) -> Tensor:
    """Whether ``scheme`` is absolutely stable at each point z (complex scalar or tensor)."""
    z = torch.as_tensor(z).to(torch.complex128)
    out = torch.ones_like(z.real, dtype=torch.bool)
    for c in _characteristics(scheme, keywords):
        out &= c.stable(z)
    return out


def zero_stable(scheme: SchemeLike, **keywords) -> bool:
    """The root condition at z = 0 (a convergent scheme must satisfy it)."""
    return bool(stable(scheme, 0.0, **keywords))


def real_interval(scheme: SchemeLike, *, limit: float = 50.0, tol: float = 1e-10,
                  **keywords) -> Optional[tuple[float, float]]:
    """The interval [x, 0] of the negative real axis on which ``scheme`` is stable, as
    (x, 0.0): stability is scanned leftward from 0 (geometrically from -1e-6 to -1e-2,
    then every 1e-2) and the first change is bisected to ``tol``. None when the scheme
    is unstable just left of 0; x = -inf when it is stable all the way to -``limit``.
    z = 0 itself is judged by :func:`zero_stable` (lm at k = -1 is stable on (-4, 0) but
    not at 0)."""
    chars = _characteristics(scheme, keywords)

    def ok(x: Tensor) -> Tensor:
        out = torch.ones_like(x, dtype=torch.bool)
        for c in chars:
            out &= c.stable(x.to(torch.complex128))
        return out

    h = 1e-2
    xs = -torch.cat((torch.logspace(-6, -2, 41, dtype=torch.float64)[:-1],  # fine near 0: short intervals
                     torch.arange(1, int(limit / h) + 1, dtype=torch.float64) * h))
    good = ok(xs)
    if not bool(good[0]):
        return None
    bad = (~good).nonzero()
    if len(bad) == 0:
        return (-math.inf, 0.0)
    i = int(bad[0])
    inside, outside = float(xs[i - 1]), float(xs[i])
    while inside - outside > tol:
        mid = (inside + outside) / 2
        if bool(ok(torch.tensor([mid], dtype=torch.float64))):
            inside = mid
        else:
            outside = mid
    return (inside, 0.0)


def learned_regions(rows: Sequence[ModifiedEquation], **grid) -> dict[int, StabilityRegion]:
    """depth -> the stability region of each learned step of :func:`modified_equation`'s
    rows, at its trained coefficients (per channel: where every channel is stable).
    ``grid`` takes re, im, resolution."""
    return {r.depth: stability_region(r.scheme, **r.params, name=f"depth {r.depth}", **grid)
            for r in rows if r.learned}


# -- figure ---------------------------------------------------------------------------------------

def plot_stability(regions: Sequence[StabilityRegion], path: Optional[PathLike] = None, *,
                   learned: Optional[Mapping[int, StabilityRegion]] = None, panels: bool = False):
    """Draw stability regions as filled contours: overlaid on one axes, or one panel each
    with ``panels``. ``learned`` (depth -> region, from :func:`learned_regions`) adds a panel
    with each learned step's region boundary coloured by depth, over forward Euler's disc (k = 0).
    Returns the Figure, saved as PNG when ``path`` is given."""
    if not regions and not learned:
        raise ValueError("nothing to draw: give at least one region")
    from matplotlib.patches import Patch

    n_panels = (len(regions) if panels else int(bool(regions))) + int(bool(learned))
    cols = min(n_panels, 3)
    rows_ = math.ceil(n_panels / cols)
    beside = 1.0 if regions and not panels else 0.0  # room for the legend right of the overlaid regions
    fig = new_figure(4.2 * cols + 0.6 + beside, 3.8 * rows_)
    axes = [fig.add_subplot(rows_, cols, i + 1) for i in range(n_panels)]

    def frame(ax, title: str) -> None:
        ax.axhline(0, color="0.4", lw=0.6)
        ax.axvline(0, color="0.4", lw=0.6)
        ax.set_aspect("equal")
        ax.set_xlabel("Re $z$,  $z = \\Delta t\\,\\lambda$")
        ax.set_ylabel("Im $z$")
        ax.set_title(title, fontsize=10)

    def fill(ax, region: StabilityRegion, i: int) -> None:
        data = region.stable.to(torch.float64).numpy()
        if data.any():
            x, y = region.re.numpy(), region.im.numpy()
            style = series_style(i)
            ax.contourf(x, y, data, levels=[0.5, 1.5], colors=[style["color"]], alpha=0.25)
            if not data.all():
                ax.contour(x, y, data, levels=[0.5], colors=[style["color"]], linestyles=[style["linestyle"]],
                           linewidths=1.2)

    if regions:
        indexed = list(enumerate(regions))
        groups = [[item] for item in indexed] if panels else [indexed]
        for ax, group in zip(axes, groups):
            for i, r in group:
                fill(ax, r, i)
            frame(ax, group[0][1].name if panels else "regions of absolute stability")
            if not panels:
                styles = [series_style(i) for i in range(len(regions))]
                ax.legend(handles=[Patch(facecolor=st["color"], alpha=0.4, edgecolor=st["color"],
                                         linestyle=st["linestyle"], label=r.name) for st, r in zip(styles, regions)],
                          fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the regions
    if learned:
        import matplotlib
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.ticker import MaxNLocator

        ax = axes[-1]
        ref = next(iter(learned.values()))
        euler = stability_region("euler", re=(float(ref.re[0]), float(ref.re[-1])),
                                 im=(float(ref.im[0]), float(ref.im[-1])), resolution=len(ref.re))
        ax.contour(euler.re.numpy(), euler.im.numpy(), euler.stable.to(torch.float64).numpy(), levels=[0.5],
                   colors=["k"], linestyles="--", linewidths=1.0)
        cmap = matplotlib.colormaps["viridis"]
        depths = sorted(learned)
        norm = Normalize(depths[0], max(depths[-1], depths[0] + 1))
        empty = 0
        for depth in depths:
            r = learned[depth]
            data = r.stable.to(torch.float64).numpy()
            empty += not data.any()
            if data.any() and not data.all():
                ax.contour(r.re.numpy(), r.im.numpy(), data, levels=[0.5], colors=[cmap(norm(depth))],
                           linewidths=0.8)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="depth n")
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if empty:
            ax.text(0.02, 0.02, f"{empty} step(s) with no stable area in view", transform=ax.transAxes, fontsize=8)
        frame(ax, "learned $k_n$: LM regions (dashed: $k=0$, ResNet)")
    if path is not None:
        save_png(fig, path)
    return fig
