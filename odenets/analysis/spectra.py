"""Where a trained network's steps sit: the eigenvalues of dt * J_n against the scheme's
region of absolute stability.

A step u_{n+1} = S(u_n) of a scheme applied to f_n is linearly stable at the state u_n the
network visits when every eigenvalue lambda of J_n = df_n/du (u_n) gives a z = dt lambda
inside the scheme's region of absolute stability (:mod:`.stability`; for LM the region at
that step's learned k_n). The eigenvalues come from Jacobian-vector products
(``torch.func.jvp``): all of them from J formed column by column when the state is small,
else the Ritz values of an Arnoldi iteration, which approximate the eigenvalues of largest
modulus and of largest real part (the outermost ones) first.

The Jacobian is that of one image's map (per-sample), in eval mode: batch norm uses its
running statistics, so f_n acts on each image of a batch separately and one batched jvp
gives every image's J v at once. Every image of ``x`` is analysed; the record keeps each
image's eigenvalues and the mean over the images of each figure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import Scheme

from ..odenet import ODENet
from .figure import PathLike, new_figure, save_png
from .stability import StabilityRegion, characteristic, stability_region, stable

EXACT_LIMIT = 512
"""States of at most this many numbers (per image) get J formed and every eigenvalue."""
TOP = 8
"""Eigenvalues kept per image when J is too large to form and ``top`` is None."""
KRYLOV = 80
"""Dimension of the Krylov space the Arnoldi iteration builds (its jvps per step). On
trained digits networks 80 gave the 8 largest moduli within 1e-3 of the exact ones, 40
only within 4% (benchmarks/bench_spectra.py)."""
_JVP_NUMBERS = 1 << 22
"""About how many numbers one batched jvp of the exact Jacobian handles at a time."""


@dataclass(frozen=True, eq=False)
class StepView:
    """One step of a model as the spectra need it: ``f(u)`` evaluates the step's function
    (eval mode, the step's time) at a batch of states; ``u`` is the batch of states u_n
    the step was given; ``scheme`` (the one that takes the step in eval mode) and
    ``coefficients`` (its learned values, e.g. ``{'k': k_n}``) determine the stability
    region of the step."""

    stage: str
    step: int
    f: Callable[[Tensor], Tensor]
    u: Tensor
    dt: float
    scheme: Scheme
    coefficients: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StepSpectrum:
    """The eigenvalues z = dt * lambda of one step's Jacobian and where they lie.

    ``eigenvalues`` has shape (images, count): every eigenvalue of each image's J
    (``method`` 'exact') or the ``top`` of largest modulus ('arnoldi', or 'exact' with
    ``top`` given). ``radius`` is the largest |z|, ``max_real`` the largest Re z (over
    every computed value: all eigenvalues, or all Ritz values), ``inside_fraction`` the
    fraction of ``eigenvalues`` inside the step's stability region; each is the mean over
    the images. ``depth`` counts the analysed steps in the order they run."""

    depth: int
    stage: str
    step: int
    dt: float
    scheme: Scheme
    coefficients: dict
    eigenvalues: Tensor
    method: str
    radius: float
    max_real: float
    inside_fraction: float

    @property
    def region_name(self) -> str:
        """The stability region's name, e.g. 'euler' or 'lm(k=-0.3)' ('lm(per channel)' for
        coefficients per channel, whose region is where every channel's is stable)."""
        if any(c.dim() > 0 for c in self.coefficients.values()):
            return f"{self.scheme.name}(per channel)"
        return characteristic(self.scheme, **self.coefficients).name

    def region(self, **grid) -> StabilityRegion:
        """The step's region of absolute stability on a grid (``re``, ``im``, ``resolution``)."""
        return stability_region(self.scheme, **self.coefficients, name=self.region_name, **grid)

    def as_dict(self) -> dict:
        """Plain numbers, e.g. for JSON (eigenvalues left out)."""
        return {"depth": self.depth, "stage": self.stage, "step": self.step, "dt": self.dt,
                "region": self.region_name, "method": self.method, "count": self.eigenvalues.shape[1],
                "radius": self.radius, "max_real": self.max_real, "inside_fraction": self.inside_fraction}


def step_spectra(model: nn.Module, x: Tensor, top: Optional[int] = None, *, krylov: int = KRYLOV,
                 exact_limit: int = EXACT_LIMIT, seed: int = 0) -> list[StepSpectrum]:
    """The eigenvalues of dt * J_n for each step of every ODENet in ``model`` at the states
    it visits on the inputs ``x`` (a batch: every image is analysed), one record per step
    in the order the steps run.

    J is formed when a state holds at most ``exact_limit`` numbers per image: every
    eigenvalue when ``top`` is None, else the ``top`` largest in modulus. Larger states
    get ``krylov`` Arnoldi iterations (started from a vector drawn with ``seed``) and keep
    the ``top`` (default :data:`TOP`) largest Ritz values. Steps that change the state's
    shape (downsampling blocks, the ResNet transition P(u) + dt f(u)) are skipped: f_n
    maps one space into another and has no eigenvalues. An activation applied after the
    step (post-activation ResNets' ReLU) is not part of f_n. The model is run in eval
    mode; each of its modules is left in the mode it was in.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (a batch of inputs), got {type(x).__name__}")
    if x.dim() < 1 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch, got shape {tuple(x.shape)}")
    counts = {"krylov": (krylov, 1), "exact_limit": (exact_limit, 0)}
    if top is not None:
        counts["top"] = (top, 1)
    for name, (value, low) in counts.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if top is not None and krylov < top:
        raise ValueError(f"krylov={krylov} Arnoldi iterations cannot give top={top} eigenvalues; "
                         "give krylov >= top")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        steps = _visited_steps(model, x)
        if not steps:
            raise ValueError(f"{type(model).__name__} takes no step that keeps the state's shape: nothing to analyse")
        for view in steps:  # a scheme without a stability region fails here, before any eigenvalue is computed
            stable(view.scheme, 0.0, **view.coefficients)
        generator = torch.Generator().manual_seed(seed)
        return [_spectrum(depth, view, top, krylov, exact_limit, generator) for depth, view in enumerate(steps)]
    finally:
        for m, training in modes.items():
            m.training = training


def _spectrum(depth: int, view: StepView, top: Optional[int], krylov: int, exact_limit: int,
              generator: torch.Generator) -> StepSpectrum:
    u = view.u.detach()
    size = u[0].numel()
    if size <= exact_limit:
        values, method = _exact(view.f, u), "exact"
    else:
        values, method = _arnoldi(view.f, u, min(krylov, size), generator), "arnoldi"
        top = TOP if top is None else top
    z = values.cpu() * view.dt
    kept = z if top is None else z.gather(1, z.abs().argsort(1, descending=True)[:, :top])
    inside = stable(view.scheme, kept, **view.coefficients).to(torch.float64)
    return StepSpectrum(depth, view.stage, view.step, view.dt, view.scheme, view.coefficients, kept, method,
                        radius=float(z.abs().amax(1).mean()), max_real=float(z.real.amax(1).mean()),
                        inside_fraction=float(inside.mean()))


# -- eigenvalues of per-image Jacobians -----------------------------------------------------------

def _jvp(f: Callable[[Tensor], Tensor], u: Tensor, v: Tensor) -> Tensor:
    """J(u) v for each image of the batch, as float64 rows (images, numbers)."""
    with torch.no_grad():
        _, out = torch.func.jvp(f, (u,), (v.to(u.device, u.dtype).view(u.shape),))
    return out.reshape(len(u), -1).to(torch.float64)


def _exact(f: Callable[[Tensor], Tensor], u: Tensor) -> Tensor:
    """Every eigenvalue of each image's J, (images, numbers): J is formed a block of
    columns at a time by one jvp on copies of the batch, one basis tangent per copy."""
    images, size = len(u), u[0].numel()
    jac = torch.empty(images, size, size, dtype=torch.float64, device=u.device)
    chunk = max(1, _JVP_NUMBERS // (images * size))
    for start in range(0, size, chunk):
        cols = min(chunk, size - start)
        basis = torch.zeros(cols, size, dtype=u.dtype, device=u.device)
        basis[:, start:start + cols] = torch.eye(cols, dtype=u.dtype, device=u.device)
        tangent = basis.repeat_interleave(images, 0)
        states = u.repeat(cols, *[1] * (u.dim() - 1))
        out = _jvp(f, states, tangent).view(cols, images, size)
        jac[:, :, start:start + cols] = out.permute(1, 2, 0)
    return torch.linalg.eigvals(jac)


def _arnoldi(f: Callable[[Tensor], Tensor], u: Tensor, m: int, generator: torch.Generator) -> Tensor:
    """Ritz values of ``m`` Arnoldi iterations on each image's J, (images, m), all images at
    once: A V_m = V_m H_m + h v_{m+1} e_m^T, the eigenvalues of H_m approximating the
    outermost eigenvalues of J. Gram–Schmidt is applied twice for orthogonality; on a
    breakdown (an invariant subspace found) the iteration goes on from a fresh random
    vector with a zero subdiagonal entry, so H_m stays exact for what it has found."""
    images, size = len(u), u[0].numel()
    basis = torch.zeros(images, m + 1, size, dtype=torch.float64, device=u.device)
    hess = torch.zeros(images, m + 1, m, dtype=torch.float64, device=u.device)

    def random() -> Tensor:  # drawn on the CPU, so a seed gives the same start on every device
        return torch.randn(images, size, generator=generator, dtype=torch.float64).to(u.device)

    def orthogonalise(w: Tensor, j: int) -> tuple[Tensor, Tensor]:
        coefs = torch.zeros(images, j + 1, dtype=torch.float64, device=u.device)
        for _ in range(2):
            h = torch.einsum("bkd,bd->bk", basis[:, :j + 1], w)
            w = w - torch.einsum("bkd,bk->bd", basis[:, :j + 1], h)
            coefs += h
        return w, coefs

    start = random()
    basis[:, 0] = start / start.norm(dim=1, keepdim=True)
    for j in range(m):
        w = _jvp(f, u, basis[:, j])
        scale = w.norm(dim=1)
        w, hess[:, :j + 1, j] = orthogonalise(w, j)
        if j == m - 1:
            break
        norm = w.norm(dim=1)
        broke = norm <= 1e-10 * scale.clamp_min(1e-300)
        if broke.any():
            fresh, _ = orthogonalise(random(), j)
            w = torch.where(broke[:, None], fresh, w)
            norm = torch.where(broke, w.norm(dim=1), norm)
        hess[:, j + 1, j] = torch.where(broke, torch.zeros_like(norm), norm)
        basis[:, j + 1] = w / norm[:, None]
    return torch.linalg.eigvals(hess[:, :m])


# -- the one place that knows ODENet's internals ------------------------------------------------

def _visited_steps(model: nn.Module, x: Tensor) -> list[StepView]:
    """Every shape-keeping step of every ODENet in ``model`` (in eval mode, where the
    returned functions must be called too), in the order the steps run, with the states
    it was given when ``model(x)`` ran.

    The states are collected by running the model once with each ODENet's ``integrate``
    shadowed by one that asks for the trajectory. Each step gets the region of the scheme
    that takes it (:meth:`Scheme.with_history`: a multistep net's first step is its
    starter's) in eval mode (stochastic depth: the expectation p S(f) + (1 - p) S(0))."""
    nets = [(name, m) for name, m in model.named_modules() if isinstance(m, ODENet)]
    if not nets:
        raise ValueError(f"{type(model).__name__} contains no ODENet: there are no steps to analyse")
    for name, net in nets:
        where = f"the ODENet {name or '<model>'}"
        if not net.layers:
            raise ValueError(f"{where} uses the adaptive solver {net.solver!r}, whose steps are chosen by its error "
                             "control; step spectra need a fixed-step solver")
        if net.spec.functions != 1:
            raise ValueError(f"{where} uses {net.spec.label!r}, which takes {net.spec.functions} functions per step: "
                             "no single f_n whose Jacobian to compare with a stability region")

    runs: list[tuple[str, ODENet, list[Tensor]]] = []

    def spy(name: str, net: ODENet):
        integrate = net.integrate

        def recording(carry, trajectory=None, context=None):
            if context:
                raise ValueError(f"step spectra take each step's Jacobian in u alone; the ODENet {name or '<model>'} "
                                 "was handed a context (its steps' functions take more than the state)")
            states = [carry.u]
            runs.append((name, net, states))
            out = integrate(carry, trajectory=states)
            if trajectory is not None:
                trajectory.extend(states[1:])
            return out
        return recording

    try:
        for name, net in nets:
            net.integrate = spy(name, net)
        with torch.no_grad():
            model(x)
    finally:
        for _, net in nets:
            if "integrate" in vars(net):
                del net.integrate

    views = []
    for name, net, states in runs:
        for n, step in enumerate(net.layers):
            if step.transition:
                continue
            # eval mode's step (stochastic depth's expectation declares its own polynomial), and
            # the starter where the step has too short a history (a multistep net's first)
            scheme = step.scheme.deterministic.with_history(math.inf if net.carry_in else n)
            coefs = {k: v.detach().to("cpu", torch.float64) for k, v in step.coefs.items()}
            views.append(StepView(name or "<model>", n, lambda v, f=step.field, t=step.t: f(t, v),
                                  states[n], step.dt, scheme, coefs))
    return views


# -- table and figure ---------------------------------------------------------------------------

def format_spectra(records: Sequence[StepSpectrum]) -> str:
    """The records as a text table, one row per step."""
    head = ("depth", "stage", "step", "region", "method", "count", "radius", "max Re", "inside")
    body = [(str(r.depth), r.stage, str(r.step), r.region_name, r.method, str(r.eigenvalues.shape[1]),
             f"{r.radius:.4f}", f"{r.max_real:+.4f}", f"{100 * r.inside_fraction:.1f}%") for r in records]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    images = records[0].eigenvalues.shape[0] if records else 0
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body] +
                     ["", f"z = dt * lambda of J_n = df_n/du; radius, max Re and inside: means over {images} image(s)"])


def plot_spectra(models: Union[Sequence[StepSpectrum], Mapping[str, Sequence[StepSpectrum]]],
                 path: Optional[PathLike] = None, *, resolution: int = 241):
    """One panel per stage and model with its z = dt * lambda (coloured by step) over the
    steps' stability regions (filled when the stage shares one region, else each step's
    boundary in its colour), then the radius and the inside-fraction against depth, the
    models overlaid. Returns the Figure, saved as PNG when ``path`` is given."""
    if not isinstance(models, Mapping):
        models = {"": models}
    if not models or any(len(records) == 0 for records in models.values()):
        raise ValueError("plot_spectra needs at least one model with at least one step")
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    stages = {label: list(dict.fromkeys(r.stage for r in records)) for label, records in models.items()}
    cols = max(max(len(s) for s in stages.values()), 2)
    rows = len(models) + 1
    fig = new_figure(3.6 * cols + 0.8, 3.4 * rows)
    grid = fig.add_gridspec(rows, cols)
    cmap = matplotlib.colormaps["viridis"]
    for row, (label, records) in enumerate(models.items()):
        norm = Normalize(records[0].depth, max(records[-1].depth, records[0].depth + 1))
        axes = []
        for col, stage in enumerate(stages[label]):
            axes.append(fig.add_subplot(grid[row, col]))
            _stage_panel(axes[-1], [r for r in records if r.stage == stage], cmap, norm, resolution)
            axes[-1].set_title(f"{label}: {stage}" if label else stage, fontsize=9)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="depth", shrink=0.8)
    radius, inside = fig.add_subplot(grid[-1, : cols // 2]), fig.add_subplot(grid[-1, cols // 2:])
    for i, (label, records) in enumerate(models.items()):
        depth = [r.depth for r in records]
        radius.plot(depth, [r.radius for r in records], "o-", ms=3, color=f"C{i % 10}", label=label or None)
        radius.plot(depth, [r.max_real for r in records], "s--", ms=3, color=f"C{i % 10}", alpha=0.6)
        inside.plot(depth, [100 * r.inside_fraction for r in records], "o-", ms=3, color=f"C{i % 10}",
                    label=label or None)
    radius.axhline(0.0, color="0.5", lw=0.8)
    radius.set_xlabel("depth (analysed step)")
    radius.set_ylabel("$\\max|z|$ (solid), $\\max \\mathrm{Re}\\, z$ (dashed)")
    radius.set_title("spectral radius of $\\Delta t\\, J_n$", fontsize=10)
    inside.set_xlabel("depth (analysed step)")
    inside.set_ylabel("eigenvalues inside the region (%)")
    inside.set_ylim(-3, 103)
    inside.set_title("inside the stability region", fontsize=10)
    if any(models):
        radius.legend(fontsize=8)
        inside.legend(fontsize=8)
    if path is not None:
        save_png(fig, path)
    return fig


def _stage_panel(ax, records: Sequence[StepSpectrum], cmap, norm, resolution: int) -> None:
    z = torch.cat([r.eigenvalues.flatten() for r in records])
    lo_re, hi_re = min(float(z.real.min()), -2.2), max(float(z.real.max()), 0.5)
    reach = max(float(z.imag.abs().max()), 1.2)
    pad = 0.08 * max(hi_re - lo_re, 2 * reach)
    grid = {"re": (lo_re - pad, hi_re + pad), "im": (-reach - pad, reach + pad), "resolution": resolution}
    regions = [r.region(**grid) for r in records]
    shared = all(torch.equal(g.stable, regions[0].stable) for g in regions)
    for region, record in zip(regions[:1] if shared else regions, records):
        data = region.stable.to(torch.float64).numpy()
        color = "0.5" if shared else cmap(norm(record.depth))
        if shared and data.any():
            ax.contourf(region.re.numpy(), region.im.numpy(), data, levels=[0.5, 1.5], colors=["0.5"], alpha=0.25)
        if data.any() and not data.all():
            ax.contour(region.re.numpy(), region.im.numpy(), data, levels=[0.5], colors=[color], linewidths=0.9)
    for r in records:
        e = r.eigenvalues.flatten()
        ax.scatter(e.real.numpy(), e.imag.numpy(), s=3, color=cmap(norm(r.depth)), alpha=0.5, lw=0, rasterized=True)
    ax.axhline(0, color="0.4", lw=0.5)
    ax.axvline(0, color="0.4", lw=0.5)
    ax.set_xlim(*grid["re"])
    ax.set_ylim(*grid["im"])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("Re $z$,  $z = \\Delta t\\,\\lambda$", fontsize=8)
    ax.set_ylabel("Im $z$", fontsize=8)
    ax.text(0.02, 0.02, "region: " + (regions[0].name if shared else "per step (boundaries)"),
            transform=ax.transAxes, fontsize=7)
