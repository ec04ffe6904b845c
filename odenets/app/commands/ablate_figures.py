"""The figures of ``odenets ablate``: differences from the baseline with their
intervals, learning curves, and parameters against test error."""
from __future__ import annotations

import statistics
from pathlib import Path

from odenets.analysis.figure import new_figure, save_png


def comparison(path: Path, rows: list[dict], results: dict[str, list[dict]], title: str = "") -> None:
    """Left: each row's difference in final test accuracy from its baseline, the mean
    with its 95% interval (bar) and each seed's paired difference (dots); middle and
    right: test accuracy and training loss per epoch, mean over seeds."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(15, 1.5 + 0.35 * max(len(rows), 8))
    diff, accuracy, loss = fig.subplots(1, 3)
    diff.axvline(0, color="0.6", lw=1)
    for i, row in enumerate(rows):
        runs, color, y = results[row["name"]], f"C{i % 10}", len(rows) - 1 - i
        if row["verdict"] != "baseline":
            base = {r["config"]["seed"]: r["test_acc"] for r in results[row["baseline"]]}
            mine = {r["config"]["seed"]: r["test_acc"] for r in runs}
            if row["paired"]:
                diff.scatter([100 * (mine[s] - base[s]) for s in mine], [y] * len(mine), s=14, alpha=0.5,
                             color=color)
            low = row["ci_low"] if row["ci_low"] is not None else row["diff_mean"]
            high = row["ci_high"] if row["ci_high"] is not None else row["diff_mean"]
            diff.errorbar(row["diff_mean"], y, xerr=[[row["diff_mean"] - low], [high - row["diff_mean"]]], fmt="o",
                          color=color, capsize=4)
        else:
            diff.scatter([0], [y], marker="D", color=color)
        epochs = min(len(r["history"]) for r in runs)
        x = range(1, epochs + 1)
        mean = lambda key, scale=1.0: [scale * statistics.fmean(r["history"][e][key] for r in runs)  # noqa: E731
                                       for e in range(epochs)]
        accuracy.plot(x, mean("test_acc", 100), label=row["name"], color=color)
        loss.plot(x, mean("train_loss"), label=row["name"], color=color)
    diff.set_yticks(range(len(rows)), [f"{r['name']}{' (baseline)' if r['verdict'] == 'baseline' else ''}"
                                       for r in reversed(rows)])
    diff.set_ylim(-0.5, len(rows) - 0.5)
    for ax in (accuracy, loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    diff.set(xlabel="test accuracy minus the baseline's (points)", title="difference, 95% CI; dots: seeds")
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="learning curves")
    loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    accuracy.legend(fontsize="small")
    fig.suptitle(title)
    save_png(fig, path, dpi=110)


def parameters(path: Path, rows: list[dict], title: str = "") -> None:
    """Test error (mean +- standard deviation over seeds) against the number of
    parameters, one point per row, the rows of a solver joined by a line; a published
    error (``paper_error``) as an open marker beside its row."""
    fig = new_figure(7.5, 5)
    ax = fig.subplots()
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    for i, solver in enumerate(solvers):
        mine = sorted((r for r in rows if r["solver"] == solver), key=lambda r: r["parameters"])
        color = f"C{i % 10}"
        ax.errorbar([r["parameters"] for r in mine], [r["err_mean"] for r in mine], yerr=[r["err_std"] for r in mine],
                    fmt="o-", color=color, capsize=4, label=solver)
        for r in mine:
            ax.annotate(r["model"], (r["parameters"], r["err_mean"]), textcoords="offset points", xytext=(5, 5),
                        fontsize="x-small")
        published = [r for r in mine if r.get("paper_error") is not None]
        if published:
            ax.plot([r["parameters"] for r in published], [r["paper_error"] for r in published], "o--",
                    mfc="none", color=color, alpha=0.7, label=f"{solver}: published")
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="test error (%)", title="error bars: standard deviation over seeds")
    ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    save_png(fig, path, dpi=110)
