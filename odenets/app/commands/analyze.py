"""``odenets analyze``: modified equations and learned k_n of trained LM networks,
stability regions, the eigenvalues of trained steps against them, and empirical orders
of convergence, as tables and PNG figures."""
from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from torch import nn

from odenets import solvers
from odenets.files import unwritable

from ..errors import StorageError, UsageError, why


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="numerical analysis: modified equations, stability, step spectra, "
                              "convergence",
                              description="Read networks as numerical schemes: the modified equation and learned "
                                          "k_n of LM networks, regions of absolute stability, the eigenvalues "
                                          "of trained steps against them, orders of convergence.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    m = actions.add_parser("modified", help="learned k_n and modified equation of LM checkpoints",
                           description="Print, for each step of each LM stage, k_n and the coefficients of the "
                                       "modified equation (1 + k_n) u' + (1 - k_n)(dt/2) u'' = f(u).")
    m.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="checkpoint.pt files written by `odenets train` (or their --out folders)")
    m.add_argument("--plot-k", metavar="OUT.png", help="draw k_n against depth, the checkpoints overlaid")
    m.add_argument("--plot-k-epochs", metavar="OUT.png", help="draw each step's k_n against the epoch, from the "
                   "runs' histories, one panel per checkpoint")
    m.add_argument("--json", action="store_true", help="print the rows as JSON")

    s = actions.add_parser("stability", help="regions of absolute stability in the z = dt*lambda plane",
                           description="Compute where each scheme is stable for u' = lambda u, print its "
                                       "interval on the negative real axis and draw the regions.")
    s.add_argument("--schemes", default="euler,heun,rk4,ab2,lm", help="comma-separated scheme names "
                   "(default: euler,heun,rk4,ab2,lm)")
    s.add_argument("--k", default="-0.5", help="the value of a trained coefficient named k (lm's), or several: "
                   "--k=-0.5,-0.9, one region each (default: -0.5); other trained coefficients are drawn at their "
                   "initial values")
    s.add_argument("--truncation", type=int, default=2, help="the option truncation of schemes built with one: "
                   "polynet's number of terms r (default: 2)")
    s.add_argument("--checkpoint", metavar="CKPT", help="also draw the LM regions of this checkpoint's learned k_n")
    s.add_argument("--out", metavar="OUT.png", help="write the figure here")
    s.add_argument("--panels", action="store_true", help="one panel per scheme instead of overlaid")
    s.add_argument("--re", type=float, nargs=2, default=(-4.0, 1.0), metavar=("LO", "HI"))
    s.add_argument("--im", type=float, nargs=2, default=(-3.0, 3.0), metavar=("LO", "HI"))
    s.add_argument("--resolution", type=int, default=401, help="grid points per axis (default: 401)")
    s.add_argument("--json", action="store_true", help="print the intervals as JSON")

    sp = actions.add_parser("spectra", help="eigenvalues of each trained step against its stability region",
                            description="For each step of each checkpoint, the eigenvalues z = dt*lambda of the "
                                        "Jacobian of f_n at the states the network visits on test images, their "
                                        "spectral radius and the fraction inside the scheme's region of absolute "
                                        "stability (LM: at the learned k_n).")
    sp.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                    help="checkpoint.pt files written by `odenets train` (or their --out folders); several are "
                         "overlaid in the figure")
    sp.add_argument("--images", type=int, default=32, help="N test images, evenly spaced through the test set, are "
                    "analysed (default: 32)")
    sp.add_argument("--top", default="8", help="eigenvalues kept per image, the largest in modulus, or 'all': every "
                    "one where the state is small enough to form the Jacobian (default: 8)")
    sp.add_argument("--krylov", type=int, help="Arnoldi iterations (jvps) per step where the Jacobian is "
                    "too large to form (default: 80)")
    sp.add_argument("--data-dir", metavar="DIR", help="where the data set lives (default: as in training)")
    sp.add_argument("--out", metavar="FIG.png", help="draw each stage's eigenvalues over its stability region and "
                    "the radius and inside-fraction against depth")
    sp.add_argument("--json", action="store_true", help="print the rows as JSON")

    c = actions.add_parser("convergence", help="error against dt and fitted orders on a test ODE",
                           description="Run each scheme through ODENet on the logistic equation u' = u(1 - u) "
                                       "and fit the order of its error at T = 1 against dt.")
    c.add_argument("--schemes", help="comma-separated scheme names (default: every deterministic one-function "
                   "scheme that declares its characteristic polynomial)")
    c.add_argument("--steps", default="8,16,32,64,128", help="comma-separated step counts (default: 8,16,32,64,128)")
    c.add_argument("--k", type=float, default=-0.5, help="the option k_init of schemes built with one: lm's "
                   "constant k (default: -0.5)")
    c.add_argument("--truncation", type=int, default=2, help="the option truncation of schemes built with one: "
                   "polynet's number of terms r (default: 2)")
    c.add_argument("--out", metavar="OUT.png", help="write the log-log figure here")
    c.add_argument("--json", action="store_true", help="print errors and slopes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"modified": _modified, "stability": _stability, "spectra": _spectra,
            "convergence": _convergence}[args.action](args)


# -- checkpoints --------------------------------------------------------------------------------

def _load(path) -> tuple[nn.Module, str, list]:
    """A checkpoint's model (:func:`models.from_checkpoint`), its label 'model (solver)' and its history."""
    from ..run.models import from_checkpoint

    model, cfg, state = from_checkpoint(path)
    return model, f"{cfg.model} ({cfg.label})", state["history"]


def _lm_rows(model: nn.Module, label: str, path) -> list:
    """The modified equation of each step of the model's nets with trained coefficients."""
    from odenets.analysis import modified_equation

    try:
        return modified_equation(model)
    except ValueError as e:
        raise UsageError(f"{path}: {label} has no LM steps (nor another scheme's trained coefficients) to analyse "
                         f"({e}); train an lm_* model, or train with `odenets train --solver lm`") from None


def _print(results: dict, paths: list, as_json: bool, table) -> None:
    """Each checkpoint's rows (label -> rows, in the order of ``paths``) as JSON or as ``table(rows)``."""
    if as_json:
        print(json.dumps({key: [r.as_dict() for r in rows] for key, rows in results.items()}, indent=1))
        return
    for (key, rows), path in zip(results.items(), paths):
        print(f"== {path}: {key}")
        print(table(rows))
        print()


# -- actions ------------------------------------------------------------------------------------

def _modified(args: argparse.Namespace) -> int:
    from odenets.analysis import format_table, plot_k_history, plot_learned_k

    _check_png(args.plot_k, "--plot-k")
    _check_png(args.plot_k_epochs, "--plot-k-epochs")
    results, histories = {}, {}
    for path in args.checkpoints:
        model, label, history = _load(path)
        rows = _lm_rows(model, label, path)
        key = label if label not in results else f"{label} [{path}]"
        results[key], histories[key] = rows, history
    _print(results, args.checkpoints, args.json, format_table)
    if args.plot_k:
        with _writing(args.plot_k, "--plot-k"):
            plot_learned_k(results, args.plot_k)
    if args.plot_k_epochs:
        try:
            with _writing(args.plot_k_epochs, "--plot-k-epochs"):
                plot_k_history(histories, args.plot_k_epochs)
        except ValueError as e:
            raise UsageError(f"--plot-k-epochs: {e}") from None
    return 0


def _stability(args: argparse.Namespace) -> int:
    from odenets.analysis import (
        characteristic,
        learned_regions,
        plot_stability,
        real_interval,
        stability_region,
        zero_stable,
    )

    _check_png(args.out, "--out")
    names = _schemes(args.schemes)
    ks = _floats(args.k, "--k")
    grid = {"re": tuple(args.re), "im": tuple(args.im), "resolution": args.resolution}
    specs = []  # (scheme, keyword arguments: its options and trained coefficients)
    for name in names:
        options = _options(name, truncation=args.truncation)
        scheme = solvers.get(name, **options)
        start = {key: float(v.mean()) for key, v in scheme.init_params(1).items()}
        values = [{**start, "k": k} for k in ks] if "k" in scheme.trained else [start]
        specs += [(name, {**options, **coefficients}) for coefficients in values]
    try:
        for name, kw in specs:
            characteristic(name, **kw)
        regions = [stability_region(name, **kw, **grid) for name, kw in specs]
    except ValueError as e:
        raise UsageError(str(e)) from None
    table = [{"scheme": r.name, "real_interval": _interval(real_interval(name, **kw)),
              "zero_stable": zero_stable(name, **kw)} for r, (name, kw) in zip(regions, specs)]
    learned = None
    if args.checkpoint:
        model, label, _ = _load(args.checkpoint)
        rows = _lm_rows(model, label, args.checkpoint)
        learned = learned_regions(rows, **grid)
        table += [{"scheme": f"{label} depth {r.depth}", **{k: v.tolist() for k, v in r.coefficients.items()},
                   "real_interval": _interval(real_interval(r.scheme, **r.params)),
                   "zero_stable": zero_stable(r.scheme, **r.params)}
                  for r in rows if r.learned]
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        width = max(len(t["scheme"]) for t in table)
        print(f"{'scheme'.ljust(width)}  stable on the real axis  zero-stable")
        for t in table:
            lo = t["real_interval"]
            text = "nowhere left of 0" if lo is None else f"[{lo[0]:.4f}, 0]"
            print(f"{t['scheme'].ljust(width)}  {text.ljust(23)}  {'yes' if t['zero_stable'] else 'no'}")
    if args.out:
        with _writing(args.out, "--out"):
            plot_stability(regions, args.out, learned=learned, panels=args.panels)
    return 0


def _spectra(args: argparse.Namespace) -> int:
    from odenets.analysis import format_spectra, plot_spectra, step_spectra

    from ..run.models import from_checkpoint

    _check_png(args.out, "--out")
    if args.images < 1:
        raise UsageError(f"--images must be at least 1, got {args.images}")
    top = None if args.top == "all" else _count(args.top, "--top")
    results = {}
    for path in args.checkpoints:
        model, cfg, state = from_checkpoint(path)
        label = f"{cfg.model} ({cfg.label})"
        x = _test_images(cfg, state, args.images, args.data_dir or cfg.data_dir)
        try:
            records = step_spectra(model, x, top=top, **({} if args.krylov is None else {"krylov": args.krylov}))
        except ValueError as e:
            raise UsageError(f"{path}: {e}") from None
        results[label if label not in results else f"{label} [{path}]"] = records
    _print(results, args.checkpoints, args.json, format_spectra)
    if args.out:
        with _writing(args.out, "--out"):
            plot_spectra(results, args.out)
    return 0


def _test_images(cfg, state: dict, count: int, data_dir: str):
    """``count`` images evenly spaced through the checkpoint's test set (so every class
    of a set sorted by class), as one batch."""
    import torch

    from ..data import datasets as data
    from ..run import models

    ds = data.load(cfg.data, data_dir, on_bad_image=cfg.on_bad_image, image_size=cfg.image_size,
                   test_split=cfg.test_split)
    models.check_test_set(state, ds, cfg.data, data_dir)
    count = min(count, len(ds.test))
    return torch.stack([ds.test[i * len(ds.test) // count][0] for i in range(count)])


def _convergence(args: argparse.Namespace) -> int:
    from odenets.analysis import convergence, plot_convergence
    from odenets.analysis.schemes import analysable

    _check_png(args.out, "--out")
    names = _schemes(args.schemes) if args.schemes else analysable()
    steps = [int(x) for x in _floats(args.steps, "--steps")]
    options = {n: _options(n, k_init=args.k, truncation=args.truncation) for n in names}
    try:
        result = convergence(names, steps=steps, options=options)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({"problem": result.problem, "dts": result.dts.tolist(),
                          "errors": {n: e.tolist() for n, e in result.errors.items()},
                          "slopes": result.slopes, "orders": result.orders}, indent=1))
    else:
        print(f"error at T against dt on {result.problem}; slope fitted over the finest steps")
        print(f"{'scheme':10}  order  slope  error at dt={float(result.dts.min()):.4g}")
        for n in result.errors:
            print(f"{n:10}  {result.orders[n]:5d}  {result.slopes[n]:5.2f}  {float(result.errors[n][-1]):.3e}")
    if args.out:
        with _writing(args.out, "--out"):
            plot_convergence(result, args.out)
    return 0


# -- parsing helpers ----------------------------------------------------------------------------

def _schemes(text: str) -> list[str]:
    """The names of --schemes, each one the analyses can take by name."""
    from odenets.analysis.schemes import analysable

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--schemes needs at least one scheme name")
    known = analysable()
    other = [n for n in names if n not in known]
    if other:
        raise UsageError(f"cannot analyse scheme(s) {', '.join(other)}; the schemes analysed by name are: "
                         f"{', '.join(known)}")
    return names


def _options(name: str, **flags) -> dict:
    """The options among ``flags`` (--k, --truncation) that scheme ``name`` is built with."""
    return {option: value for option, value in flags.items() if solvers.takes(name, option)}


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{flag} takes comma-separated finite numbers, got {text!r}")
    return values


def _count(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag} takes a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise UsageError(f"{flag} must be at least 1 (or 'all'), got {value}")
    return value


def _check_png(path, flag: str) -> None:
    """Refuse a figure's path that is not a .png or cannot be written, before the work."""
    if path is None:
        return
    if Path(path).suffix.lower() != ".png":
        raise UsageError(f"{flag} writes a PNG figure: give a path ending in .png, got {path!r}")
    reason = unwritable(path)
    if reason:
        raise StorageError(f"{flag} {path}: cannot write there: {reason}")


@contextmanager
def _writing(path, flag: str) -> Iterator[None]:
    """A figure's failed write (a disk that filled during the work) as a StorageError naming it."""
    try:
        yield
    except OSError as e:
        raise StorageError(f"{flag} {path}: cannot write there: {why(e)}") from None
    print(f"wrote {path}", file=sys.stderr)


def _interval(interval):
    return None if interval is None else [interval[0], interval[1]]
