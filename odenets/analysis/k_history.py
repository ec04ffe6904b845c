"""Learned k_n through training: each LM step's k against the epoch, from a run's history.

The paper shows only the k_n a network ends with; the history rows that ``odenets train``
writes (``metrics.jsonl``, and the checkpoint's ``history``) carry every epoch's k_n
under ``k`` (step name -> value, a list for per-channel k, drawn as its mean)."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .figure import PathLike, new_figure, save_png


def k_by_step(history: Sequence[Mapping]) -> tuple[list[int], dict[str, list[float]]]:
    """The epochs that record k_n, and each step's k (its mean over channels) at those epochs."""
    rows = [r for r in history if r.get("k")]
    steps: dict[str, list[float]] = {name: [] for r in rows for name in r["k"]}
    for r in rows:
        for name in steps:
            k = r["k"].get(name, float("nan"))
            steps[name].append(sum(k) / len(k) if isinstance(k, list) else float(k))
    return [int(r["epoch"]) for r in rows], steps


def plot_k_history(histories: Mapping[str, Sequence[Mapping]], path: Optional[PathLike] = None):
    """k_n against the epoch, one line per step coloured by depth, one panel per run
    (``histories`` maps a label to its history rows). Returns the Figure, saved as PNG
    when ``path`` is given. Raises ValueError when a run's history records no k_n."""
    data = {label: k_by_step(rows) for label, rows in histories.items()}
    empty = [label for label, (epochs, _) in data.items() if not epochs]
    if not data or empty:
        raise ValueError(f"no k_n in the history of {', '.join(map(repr, empty)) or 'any run'}: the history of an "
                         "LM network trained by this version of odenets records them")
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(4.5 * len(data), 4.0)
    axes = fig.subplots(1, len(data), squeeze=False, sharey=True)[0]
    for ax, (label, (epochs, steps)) in zip(axes, data.items()):
        colors = [f"C{i % 10}" for i in range(len(steps))] if len(steps) <= 10 else None
        for i, (name, ks) in enumerate(steps.items()):
            color = colors[i] if colors else _viridis(i / max(len(steps) - 1, 1))
            ax.plot(epochs, ks, "o-", ms=2.5, lw=1.2, color=color, label=name if colors else None)
        ax.axhline(0.0, color="0.5", lw=0.8)
        if max(abs(k) for ks in steps.values() for k in ks) > 0.5:  # near where |k| < 1, zero stability, ends
            for bound in (-1.0, 1.0):
                ax.axhline(bound, color="0.5", lw=0.8, ls=":")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("learned $k_n$")
        ax.set_title(label, fontsize=9)
        if colors:
            ax.legend(fontsize=7, title="step (net.step)", title_fontsize=7)
        else:
            ax.text(0.02, 0.02, f"{len(steps)} steps, shallow (dark) to deep (light)", fontsize=7,
                    transform=ax.transAxes)
    if path is not None:
        save_png(fig, path)
    return fig


def _viridis(x: float):
    from matplotlib import colormaps

    return colormaps["viridis"](x)
