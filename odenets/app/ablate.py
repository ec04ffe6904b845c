"""``odenets ablate``: one architecture under several solvers, a few seeds each.

Every (solver, seed) run is an ordinary training run in <out>/runs/<solver>/seed<k>;
a finished one is reused and an interrupted one resumed, so rerunning the command
after an interruption loses nothing. The table (solver, parameters, f-evaluations per
forward pass, test accuracy mean +- std over seeds, training time) is printed and
written as CSV and JSON, with a figure of the accuracies and learning curves.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from odenets.analysis.figure import new_figure, save_png
from odenets.hints import describe, fits

from . import checkpoint, config, lock, metrics
from .config import Config
from .errors import CheckpointError, Interrupted, UsageError
from .train import command, fit

SOLVERS = ("euler", "lm", "midpoint", "rk4", "polynet", "revnet", "lm+sd")
COLUMNS = ("solver", "parameters", "evaluations", "acc_mean", "acc_std", "seeds", "seconds")
RESULT = {"config": dict, "test_acc": float, "test_loss": float, "seconds": float, "parameters": int,
          "evaluations": int, "history": list}
"""The fields of a run's result.json that the ablation reads, and their types."""
HISTORY = {"test_acc": float, "train_loss": float}
"""The fields of each epoch of a result's history that the figure reads."""


def register(subparsers) -> None:
    p = subparsers.add_parser("ablate", help="train one architecture under several solvers and compare them",
                              description="Train one architecture under several solvers, a few seeds each, and "
                                          "tabulate parameters, f-evaluations, test accuracy and time. With no "
                                          "arguments: resnet20 on the digits, a few minutes on a 2-core CPU.")
    config.add_arguments(p, solver=False)
    p.add_argument("--solvers", default=",".join(SOLVERS),
                   help=f"comma-separated solvers; +sd adds stochastic depth (default: {','.join(SOLVERS)})")
    p.add_argument("--seeds", type=int, default=5, help="runs per solver, with seeds --seed, --seed + 1, ... "
                   "(default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    base, _ = config.from_args(args)
    base = base.resolved()
    specs = [s.strip() for s in args.solvers.split(",") if s.strip()]
    if not specs:
        raise UsageError("--solvers is empty; give e.g. euler,lm,rk4")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    out = Path(args.out or f"runs/ablate-{base.data}-{base.model}")
    runs = {spec: [_config(base, spec, base.seed + i, out) for i in range(args.seeds)] for spec in specs}
    for cfgs in runs.values():  # every name checked before anything is trained
        cfgs[0].check()
    results: dict[str, list[dict]] = {}
    try:
        for spec, cfgs in runs.items():
            for cfg in cfgs:
                result, reused = _train(cfg)
                results.setdefault(spec, []).append(result)
                if not base.quiet:
                    print(f"{spec:>10} seed {cfg.seed}: test accuracy {100 * result['test_acc']:.2f}%, "
                          f"{result['seconds']:.1f}s{' (reused)' if reused else ''}", flush=True)
    except Interrupted as e:
        raise Interrupted(f"{e}\nrerun the same command to go on (finished runs are reused):\n  "
                          f"{command(getattr(args, 'argv', None))}", e.exit_code - 128) from None
    rows = table(results)
    title = f"{base.model} on {base.data}, {base.epochs} epochs, {args.seeds} seed(s) each"
    print(format_table(rows, title))
    write(out, rows, results, title)
    print(f"results in {out}: ablation.csv, ablation.json, ablation.png")
    return 0


def _config(base: Config, spec: str, seed: int, out: Path) -> Config:
    solver, options = config.split_solver(spec)
    return replace(base, solver=solver, options={**base.options, **options}, seed=seed,
                   out=str(out / "runs" / spec / f"seed{seed}"))


def _train(cfg: Config) -> tuple[dict, bool]:
    """The run's result: the recorded one if it finished before, else trained (on from
    its checkpoint if it was interrupted); all while holding the run's folder."""
    folder = Path(cfg.out)
    with lock.hold(folder):
        done = folder / "result.json"
        if done.exists():
            result = read_result(done)
            _same(cfg, result["config"], done)
            return result, True
        state = None
        if (folder / "checkpoint.pt").exists():
            state = checkpoint.load(folder / "checkpoint.pt")
            _same(cfg, state["config"], folder / "checkpoint.pt")
        return fit(cfg, state, lines=False), False


def read_result(path: Path) -> dict:
    """A finished run's result.json, checked field by field (a CheckpointError names
    the first that is missing or of the wrong type)."""
    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is damaged: {what}. Delete it and rerun: the run's checkpoint is reused if "
                               "it is whole, else the run is trained again")

    def check(record, fields: dict, where: str) -> None:
        if not isinstance(record, dict):
            raise damaged(f"{where}is not a dict")
        for key, kind in fields.items():
            if not fits(record.get(key), kind):
                raise damaged(f"{where}field {key!r} is missing or not {describe(kind)}")

    try:
        result = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise damaged(f"it is not JSON ({e})") from None
    if not isinstance(result, dict):
        raise damaged(f"it holds a {type(result).__name__}, not a dict")
    check(result, RESULT, "")
    for i, row in enumerate(result["history"]):
        check(row, HISTORY, f"history[{i}] ")
    config.validate(result["config"], f"{path} is damaged: its config")
    return result


def _same(cfg: Config, saved: dict, path: Path) -> None:
    mine = json.loads(json.dumps(cfg.run_settings()))
    theirs = json.loads(json.dumps({k: v for k, v in saved.items() if k in mine}))
    differ = [f"{k}: {theirs.get(k)!r} there, {v!r} now" for k, v in mine.items() if theirs.get(k) != v]
    if differ:
        raise UsageError(f"{path} belongs to a run with other settings ({'; '.join(differ)}); use another --out")


def table(results: dict[str, list[dict]]) -> list[dict]:
    """One row per solver: mean and sample standard deviation of the final test accuracy."""
    rows = []
    for spec, runs in results.items():
        accs = [100 * r["test_acc"] for r in runs]
        rows.append({"solver": spec, "parameters": runs[0]["parameters"], "evaluations": runs[0]["evaluations"],
                     "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "seeds": len(runs), "seconds": statistics.fmean(r["seconds"] for r in runs)})
    return rows


def format_table(rows: list[dict], title: str = "") -> str:
    head = ("solver", "params", "f-evals", "test acc (%)", "time (s)")
    body = [(r["solver"], f"{r['parameters']:,}", str(r["evaluations"]),
             f"{r['acc_mean']:.2f} ± {r['acc_std']:.2f}", f"{r['seconds']:.1f}") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in (head, *body)]
    return "\n".join(([title] if title else []) + [lines[0], "-" * len(lines[0])] + lines[1:])


def write(out: Path, rows: list[dict], results: dict[str, list[dict]], title: str = "") -> None:
    """ablation.csv (the table), ablation.json (the table and every run) and ablation.png."""
    metrics.write_csv(out / "ablation.csv", rows, COLUMNS)
    runs = {spec: [{k: r[k] for k in ("config", "test_acc", "test_loss", "seconds", "history")} for r in rs]
            for spec, rs in results.items()}
    metrics.write_json(out / "ablation.json", {"table": rows, "runs": runs})
    figure(out / "ablation.png", rows, results, title)


def figure(path: Path, rows: list[dict], results: dict[str, list[dict]], title: str = "") -> None:
    """Left: each solver's final test accuracy per seed (dots) and mean +- std (bar);
    middle and right: test accuracy and training loss per epoch, mean over seeds."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(15, 4.5)
    spread, accuracy, loss = fig.subplots(1, 3)
    for i, row in enumerate(rows):
        runs = results[row["solver"]]
        color = f"C{i % 10}"
        spread.scatter([i] * len(runs), [100 * r["test_acc"] for r in runs], s=16, alpha=0.6, color=color)
        spread.errorbar(i, row["acc_mean"], yerr=row["acc_std"], fmt="_", color=color, capsize=6, markersize=18)
        epochs = min(len(r["history"]) for r in runs)
        x = range(1, epochs + 1)
        mean = lambda key, scale=1.0: [scale * statistics.fmean(r["history"][e][key] for r in runs)  # noqa: E731
                                       for e in range(epochs)]
        accuracy.plot(x, mean("test_acc", 100), label=row["solver"], color=color)
        loss.plot(x, mean("train_loss"), label=row["solver"], color=color)
    spread.set_xticks(range(len(rows)), [r["solver"] for r in rows], rotation=30)
    spread.set_xlim(-0.5, len(rows) - 0.5)
    for ax in (accuracy, loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    spread.set(ylabel="final test accuracy (%)", title="accuracy over seeds")
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="learning curves")
    loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    accuracy.legend(fontsize="small")
    fig.suptitle(title)
    save_png(fig, path, dpi=110)
