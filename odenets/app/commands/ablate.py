"""``odenets ablate``: architectures under several solvers, a few seeds each, compared.

Every (model, solver, seed) run is an ordinary training run in
<out>/runs/<row>/seed<k>, where a row is named by its solver (``lm``), or with several
models by ``model/solver``; a finished run is reused and an interrupted one resumed,
so rerunning the command after an interruption loses nothing. Each row is compared
with a baseline row (:mod:`.statistics`: the difference of mean test accuracy with its
95% interval, a p-value and a verdict); the table is printed and written as CSV and
JSON, with figures of the differences, the learning curves and parameters against
test error.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Optional, Union

from odenets.hints import describe, fits
from odenets.solvers import SolverSpec

from ..data import datasets
from ..data.description import Description
from ..data.identity import identity, mismatch
from ..errors import CheckpointError, Interrupted, RunFailed, StorageError, UsageError, why
from ..run import checkpoint, jobs, lock, metrics
from ..run.job_progress import JobProgress
from ..settings import config, settings_file
from ..settings.config import Config
from . import ablate_figures
from .statistics import compare
from .train import Progress, command, fit

SOLVERS = ("euler", "lm", "midpoint", "rk4", "polynet", "revnet", "lm+sd")
SEEDS = 5
THREADS = 1
"""A study's CPU threads per run unless --threads says otherwise: one, so that its table
is the same on every machine (float sums split over other thread counts differ in the
last bits) and its small runs go side by side, one per core, instead of fighting for them."""
COLUMNS = ("name", "model", "solver", "parameters", "evaluations", "acc_mean", "acc_std", "err_mean", "err_std",
           "seeds", "baseline", "diff_mean", "ci_low", "ci_high", "p_value", "paired", "verdict", "detectable",
           "paper_error", "seconds")
FILES = ("ablation.csv", "ablation.json", "ablation.png", "ablation-params.png")
RESULT = {"config": dict, "test_acc": float, "test_loss": float, "seconds": float, "parameters": int,
          "evaluations": int, "history": list}
"""The fields of a run's result.json that the ablation reads, and their types."""
HISTORY = {"test_acc": float, "train_loss": float}
"""The fields of each epoch of a result's history that the figure reads."""


def register(subparsers) -> None:
    p = subparsers.add_parser("ablate", help="train architectures under several solvers and compare them",
                              description="Train one or more architectures under several solvers, a few seeds "
                                          "each; tabulate parameters, f-evaluations, test accuracy and error, time, "
                                          "and each row's difference from a baseline row with a 95% confidence "
                                          "interval, a p-value and a verdict. With no arguments: resnet20 on the "
                                          "digits, a few minutes on a 2-core CPU.")
    config.add_arguments(p, solver=False)
    settings_file.add_argument(p, alternatives=(("model", "models"),))
    p.add_argument("--models", metavar="A,B,...", help="comma-separated architectures: runs the grid models x "
                   "solvers x seeds, rows named model/solver (default: --model)")
    p.add_argument("--solvers",
                   help=f"comma-separated solvers; +sd adds stochastic depth (default: {','.join(SOLVERS)})")
    p.add_argument("--seeds", type=int, help=f"runs per row, with seeds --seed, --seed + 1, ... (default {SEEDS})")
    p.add_argument("--baseline", metavar="NAME", help="the row the others are compared with: a solver (with "
                   "several models, each model's row under it) or a row model/solver (default: the first solver)")
    p.add_argument("--label", metavar="TEXT", help="a line shown above the table and on the figures, e.g. what "
                   "the study stands in for")
    p.add_argument("--paper-error", action="append", metavar="NAME=ERROR", help="a published test error (%%) "
                   "to show beside row NAME (repeatable)")
    p.add_argument("--jobs", type=int, metavar="N", help="train N runs at once, each in its own process: on its "
                   "own GPU where there are several, else on its --threads (default 1) of the CPU (default: one "
                   "per GPU, else one per core)")
    p.add_argument("--shard", metavar="I/N", help="train only this command's share of the runs, I of N (run k of "
                   "the study goes to shard k %% N + 1), e.g. as task I of a cluster's array job; the same "
                   "command without --shard then trains what is missing and prints the table")
    p.set_defaults(func=run)


@dataclass
class Study:
    """What ``odenets ablate`` was asked for, checked: the rows, each a list of runs
    (one Config per seed), with their baselines and published errors."""
    given: Config
    models: list[str]
    specs: list[str]
    out: Path
    plan: dict[str, list[Config]]
    baselines: dict[str, str]
    paper: dict[str, float]
    seeds: int
    jobs: int
    shard: Optional[tuple[int, int]] = None

    @property
    def runs(self) -> list[Config]:
        """Every run of the study, row by row."""
        return [cfg for cfgs in self.plan.values() for cfg in cfgs]

    @property
    def todo(self) -> list[Config]:
        """The runs this command trains: its shard's, or all."""
        return jobs.share(self.runs, self.shard) if self.shard else self.runs

    @cached_property
    def rows(self) -> dict[str, str]:
        """Run folder -> the name of its row."""
        return {cfg.out: name for name, cfgs in self.plan.items() for cfg in cfgs}


def run(args: argparse.Namespace) -> int:
    study = plan(args)
    if args.label and not study.given.quiet:
        print(args.label, flush=True)
    done = train(study, study.jobs, getattr(args, "argv", None))
    if study.shard:
        todo, (i, n) = study.todo, study.shard
        runs = ", ".join(f"{study.rows[cfg.out]} seed {cfg.seed}" for cfg in todo) or "none (more shards than runs)"
        print(f"shard {i}/{n} trained {len(todo)} of the study's {len(study.runs)} runs: {runs}\n"
              f"once every shard is done, the same command without --shard collects the table (and trains "
              f"any run still missing)")
        return 0
    report(study, done, args)
    return 0


def plan(args: argparse.Namespace) -> Study:
    """The study the flags ask for, every setting checked before anything is trained."""
    specs = _names(",".join(SOLVERS) if args.solvers is None else args.solvers, "--solvers")
    given, _ = config.from_args(args, solver=specs[0])  # --noise, --survival and --opt apply to each row's solver
    if args.models and args.model:
        raise UsageError("give --model or --models, not both")
    seeds = SEEDS if args.seeds is None else args.seeds
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (runs trained at once), got {args.jobs}")
    if given.seed + seeds - 1 >= 2**64:
        raise UsageError(f"--seed {given.seed} with --seeds {seeds} reaches seed {given.seed + seeds - 1}; the "
                         f"seeds must be below 2**64 (64-bit seeds): give --seed at most {2**64 - seeds}")
    shard = jobs.parse_shard(args.shard) if args.shard is not None else None
    found = datasets.find(given.check().data, given.data_dir, given.test_split, given.on_bad_image).description
    models = _names(args.models, "--models") if args.models else [given.resolved(found).model]
    out = Path(args.out or f"runs/ablate-{given.data}-{'-'.join(models)}")
    rows = {}
    for name, (model, spec) in _rows(models, specs).items():
        row, _ = config.from_args(args, model=model, solver=spec)  # the row's solver, parsed once for its runs
        rows[name] = [_config(row, model, row.solver, given.seed + i, out / "runs" / name, found)
                     for i in range(seeds)]
    for cfgs in rows.values():
        cfgs[0].check()
    return Study(given, models, specs, out, rows, _baselines(args.baseline or specs[0], models, specs),
                 _paper_errors(args.paper_error or [], rows), seeds, args.jobs or jobs.default_jobs(given.device),
                 shard)


def train(study: Study, parallel: int, argv: Optional[list[str]]) -> dict[str, dict]:
    """Train (or reuse, or resume) the study's runs, ``parallel`` at a time, printing a
    line as each starts (when several run at once) and ends, and with several at once
    their progress (:class:`JobProgress`); return run folder -> result."""
    todo, quiet, width = study.todo, study.given.quiet, max(len(name) for name in study.plan)
    shown = JobProgress() if parallel > 1 and not quiet else None
    done: dict[str, dict] = {}

    def label(cfg: Config) -> str:
        return f"{study.rows[cfg.out]:>{width}} seed {cfg.seed}"

    def started(cfg: Config) -> None:
        if shown:
            where = cfg.device or "cpu"
            if cfg.threads is not None:
                where += f", {cfg.threads} thread(s)"
            shown.start(cfg.out, label(cfg))
            shown.write(f"{label(cfg)}: started ({where})")

    def progress(cfg: Config, steps: int, total: int) -> None:
        shown.update(cfg.out, steps, total, cfg.epochs)

    def finished(cfg: Config, outcome: tuple[dict, bool]) -> None:
        result, reused = outcome
        done[cfg.out] = result
        if shown:
            shown.end(cfg.out)
        if not quiet:
            line = (f"{label(cfg)}: test accuracy {100 * result['test_acc']:.2f}%, {result['seconds']:.1f}s"
                    f"{' (reused)' if reused else ''}")
            if shown:
                shown.write(line)
            else:
                print(line, flush=True)

    finished_before = [cfg for cfg in todo if (Path(cfg.out) / "result.json").exists()]
    try:
        jobs.run(run_one, finished_before, 1, None, finished)  # read here: no process to start for them
        jobs.run(run_one, [cfg for cfg in todo if cfg not in finished_before], parallel, started, finished,
                 progress if shown else None)
    except Interrupted as e:
        raise Interrupted(f"{e}\nrerun the same command to go on (finished runs are reused):\n  "
                          f"{command(argv)}", e.exit_code - 128) from None
    except RunFailed as e:
        raise RunFailed(f"{e}\nrerun the same command to go on (finished runs are reused, stopped ones resume from "
                        f"their checkpoints, the failed one from its last):\n  {command(argv)}") from None
    finally:
        if shown:
            shown.close()
    return done


def report(study: Study, done: dict[str, dict], args: argparse.Namespace) -> None:
    """Print the table and write it, the settings, every run and the figures under the study's folder."""
    results = {name: [done[cfg.out] for cfg in cfgs] for name, cfgs in study.plan.items()}
    rows = table(results, study.baselines, study.paper)
    first = study.runs[0]
    title = f"{', '.join(study.models)} on {first.data}, {first.epochs} epochs, {study.seeds} seed(s) each"
    if first.train_subset:
        title += f", {first.train_subset:,} training images"
    title = "\n".join(filter(None, [args.label, title]))
    shared = {k: v for k, v in first.record().items() if k not in ("model", "solver", "seed", "out")}
    settings = {"models": study.models, "solvers": study.specs, "seeds": study.seeds,
                "baseline": args.baseline or study.specs[0], "label": args.label, "paper_error": study.paper,
                "config": args.config, "run": shared}  # resolved, as row 1 ran
    print(format_table(rows, title))
    try:
        write(study.out, rows, results, title, settings)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise StorageError(f"cannot write the study's results in {study.out}{where}: {why(e)}. Every run is saved "
                           "in its folder: make room and rerun the same command to collect them (finished runs are "
                           "reused)") from None
    print(f"results in {study.out}: {', '.join(FILES)}")


def _names(text: str, flag: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError(f"{flag} is empty; give a comma-separated list")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{flag} lists {', '.join(twice)} more than once")
    return names


def _rows(models: list[str], specs: list[str]) -> dict[str, tuple[str, str]]:
    """Row name -> (model, solver spec): the solver alone for one model, else model/solver."""
    return {(spec if len(models) == 1 else f"{model}/{spec}"): (model, spec) for model in models for spec in specs}


def _baselines(name: str, models: list[str], specs: list[str]) -> dict[str, str]:
    """Row name -> the name of the row it is compared with. ``name`` is a solver (each
    model's row under that solver) or a row's full name."""
    rows = _rows(models, specs)
    if name in specs:
        own = {model: row for row, (model, spec) in rows.items() if spec == name}
        return {row: own[model] for row, (model, _) in rows.items()}
    if name in rows:
        return {row: name for row in rows}
    raise UsageError(f"--baseline {name!r} is neither a solver of --solvers ({', '.join(specs)}) nor a row "
                     f"({', '.join(rows)})")


def _paper_errors(pairs: list[str], plan: dict) -> dict[str, float]:
    """Row name -> published test error (%), from NAME=ERROR pairs; names of no row are left out with a note."""
    errors = {}
    for pair in pairs:
        name, sep, value = pair.rpartition("=")
        try:
            errors[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"--paper-error takes NAME=ERROR with ERROR a test error in %, got {pair!r}")
    unknown = sorted(set(errors) - set(plan))
    if unknown:  # e.g. an experiment file's numbers for models the command line replaced
        print(f"odenets ablate: --paper-error for {', '.join(unknown)} left out: not rows of this study "
              f"({', '.join(plan)})", file=sys.stderr)
    return {name: error for name, error in errors.items() if name in plan}


def _config(given: Config, model: str, spec: Union[str, SolverSpec], seed: int, folder: Path,
            found: Optional[Description] = None) -> Config:
    threads = THREADS if given.threads is None else given.threads
    return replace(given, model=model, solver=spec, seed=seed, threads=threads,
                   out=str(folder / f"seed{seed}")).resolved(found)


def run_one(cfg: Config, progress: Optional[Progress] = None) -> tuple[dict, bool]:
    """One run of the study, into its own folder ``cfg.out``: the recorded result if it
    finished before, else trained (on from its checkpoint if it was interrupted, telling
    ``progress`` its steps); all while holding the run's folder. Returns the result and
    whether it was reused."""
    folder = Path(cfg.out)
    with lock.hold(folder):
        done = folder / "result.json"
        if done.exists():
            result = read_result(done)
            _same(cfg, result["config"], done)
            other = mismatch(result.get("data_identity"), identity(cfg.data, cfg.data_dir))
            if other:
                raise UsageError(f"{done} belongs to a run on other data: {other}. Use another --out for a study "
                                 "of this data")
            return result, True
        state = None
        if (folder / "checkpoint.pt").exists():
            state = checkpoint.load(folder / "checkpoint.pt")
            _same(cfg, state["config"], folder / "checkpoint.pt")
        return fit(cfg, state, lines=False, progress=progress), False


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
    for where, acc in [("test_acc", result["test_acc"])] + [(f"history[{i}] test_acc", row["test_acc"])
                                                           for i, row in enumerate(result["history"])]:
        if not 0 <= acc <= 1:  # NaN too
            raise damaged(f"{where} is {acc!r}, not an accuracy between 0 and 1")
    for key in ("test_loss", "seconds"):
        if not 0 <= result[key] < math.inf:
            raise damaged(f"{key} is {result[key]!r}, not a finite number >= 0")
    epochs, history = result["config"]["epochs"], result["history"]
    if len(history) != epochs or result["test_acc"] != history[-1]["test_acc"]:
        raise damaged(f"its history does not end in its result: {len(history)} epoch(s) of the run's {epochs}, "
                      f"the last with test_acc {history[-1]['test_acc'] if history else None!r}, the result's "
                      f"{result['test_acc']!r}")
    last = _last_metrics(path.parent / "metrics.jsonl")
    if last is not None and (last.get("epoch"), last.get("test_acc")) != (epochs, result["test_acc"]):
        raise damaged(f"the run's last line of metrics.jsonl (epoch {last.get('epoch')!r}, test_acc "
                      f"{last.get('test_acc')!r}) disagrees with its test_acc {result['test_acc']!r} after epoch "
                      f"{epochs}")
    return result


def _last_metrics(path: Path) -> Optional[dict]:
    """The last line of a run's metrics.jsonl as a dict, or None where the file is gone or unreadable."""
    try:
        last = json.loads(path.read_text().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return last if isinstance(last, dict) else None


def _same(cfg: Config, saved: dict, path: Path) -> None:
    mine = json.loads(json.dumps(cfg.run_settings()))
    theirs = json.loads(json.dumps(Config(**config.known(saved)).run_settings()))
    differ = [f"{k}: {theirs.get(k)!r} there, {v!r} now" for k, v in mine.items() if theirs.get(k) != v]
    if differ:
        raise UsageError(f"{path} belongs to a run with other settings ({'; '.join(differ)}); use another --out")


def accuracies(runs: list[dict]) -> dict[int, float]:
    """Seed -> final test accuracy in %, of one row's runs."""
    return {r["config"]["seed"]: 100 * r["test_acc"] for r in runs}


def table(results: dict[str, list[dict]], baselines: Optional[dict[str, str]] = None,
          paper: Optional[dict[str, float]] = None) -> list[dict]:
    """One row per name: mean and sample standard deviation over seeds of the final test
    accuracy and error (%), and the comparison with its baseline row (default: the
    first), in accuracy points (:func:`statistics.compare`)."""
    first = next(iter(results))
    rows = []
    for name, runs in results.items():
        accs = accuracies(runs)
        mean, std = statistics.fmean(accs.values()), statistics.stdev(accs.values()) if len(accs) > 1 else 0.0
        cfg = runs[0]["config"]
        base = (baselines or {}).get(name, first)
        row = {"name": name, "model": cfg["model"], "solver": name.rpartition("/")[2],
               "parameters": runs[0]["parameters"], "evaluations": runs[0]["evaluations"],
               "acc_mean": mean, "acc_std": std, "err_mean": 100 - mean, "err_std": std, "seeds": len(runs),
               "baseline": base, "paper_error": (paper or {}).get(name),
               "seconds": statistics.fmean(r["seconds"] for r in runs)}
        if name == base:
            row.update(diff_mean=0.0, ci_low=None, ci_high=None, p_value=None, paired=None, verdict="baseline",
                       detectable=None)
        else:
            row.update(compare(accs, accuracies(results[base])).as_dict())
        rows.append(row)
    return rows


def format_table(rows: list[dict], title: str = "") -> str:
    """The table as text, with a legend that says how to read the comparison."""
    paper = any(r.get("paper_error") is not None for r in rows)
    head = ("solver" if all(r["name"] == r["solver"] for r in rows) else "model/solver", "params", "f-evals", "test acc (%)", "test err (%)", *(("paper err (%)",) if paper else ()),
            "diff (points) [95% CI]", "p", "verdict", "time (s)")
    body = []
    for r in rows:
        if r["verdict"] == "baseline":
            diff, p = "(baseline)", ""
        elif r["ci_low"] is None:
            diff, p = f"{r['diff_mean']:+.2f}", "-"
        else:
            diff, p = f"{r['diff_mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", _p(r["p_value"])
        verdict = r["verdict"]
        if r["detectable"] is not None:
            verdict = f"none detected (could see {r['detectable']:.2f})"
        paper_cell = (f"{r['paper_error']:.2f}" if r.get("paper_error") is not None else "",) if paper else ()
        body.append((r["name"], f"{r['parameters']:,}", str(r["evaluations"]),
                     f"{r['acc_mean']:.2f} ± {r['acc_std']:.2f}", f"{r['err_mean']:.2f} ± {r['err_std']:.2f}",
                     *paper_cell, diff, p, verdict, f"{r['seconds']:.1f}"))
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    left = {0, len(head) - 2}
    lines = ["  ".join(x.ljust(w) if i in left else x.rjust(w) for i, (x, w) in enumerate(zip(line, widths))).rstrip()
             for line in (head, *body)]
    bases = sorted({r["baseline"] for r in rows})
    legend = (f"diff: mean test accuracy minus the baseline's ({', '.join(bases)}), in points, with its 95% "
              "confidence interval;\np: two-sided, from a t-test paired by seed (Welch's when the seeds differ); "
              "better/worse: p < 0.05;\ncould see: the smallest difference these seeds detect with 80% power. "
              "Error is 100 - accuracy.")
    return "\n".join(([title] if title else []) + [lines[0], "-" * len(lines[0])] + lines[1:] + [legend])


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def write(out: Path, rows: list[dict], results: dict[str, list[dict]], title: str = "",
          settings: Optional[dict] = None) -> None:
    """ablation.csv (the table), ablation.json (the settings, the table and every run)
    and the figures ablation.png and ablation-params.png."""
    metrics.write_csv(out / "ablation.csv", rows, COLUMNS)
    runs = {name: [{k: r[k] for k in ("config", "test_acc", "test_loss", "seconds", "history")} for r in rs]
            for name, rs in results.items()}
    metrics.write_json(out / "ablation.json", {"settings": settings or {}, "table": rows, "runs": runs})
    ablate_figures.comparison(out / "ablation.png", rows, results, title)
    ablate_figures.parameters(out / "ablation-params.png", rows, title)
