"""The per-epoch record of a run: a log line, and the history as JSON lines and CSV.

A row of an LM network also carries its learned k_n under ``k``: step name -> value, the
name ``<net>.<step>`` (``stages.1.2``), the value a number or, for per-channel k, a list;
the CSV has a column ``k[<net>.<step>]`` per step, holding the mean over the channels."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Sequence

from torch import nn

from odenets.files import atomic_write

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "train_seconds")
"""``seconds``: the whole epoch, test pass and checkpoint included; ``train_seconds``: its training steps."""


def line(row: dict, epochs: int) -> str:
    """``epoch 3/10  train loss 0.412 acc 87.3%  test loss 0.301 acc 91.1%  lr 0.05  2.1s``"""
    return (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%  "
            f"test loss {row['test_loss']:.4f} acc {100 * row['test_acc']:.2f}%  lr {row['lr']:.4g}  "
            f"{row['seconds']:.1f}s")


def write(out: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the whole history (so a resumed run's
    files hold each epoch once)."""
    atomic_write(out / "metrics.jsonl", lambda f: f.write("".join(json.dumps(r) + "\n" for r in history)), "w")
    rows = [{**r, **{f"k[{step}]": _mean(k) for step, k in r.get("k", {}).items()}} for r in history]
    steps = dict.fromkeys(key for r in rows for key in r if key.startswith("k["))
    write_csv(out / "metrics.csv", rows, COLUMNS + tuple(steps))


def learned_k(model: nn.Module) -> dict:
    """The learned k_n of every step with a trained coefficient k (LM's) of ``model``, by
    step name (empty for a model without them): what a history row records under ``k``."""
    from odenets.analysis import learned_nets, modified_equation

    if not learned_nets(model):
        return {}
    return {f"{r.net}.{r.step}": r.coefficients["k"].tolist() for r in modified_equation(model)
            if "k" in r.coefficients}


def _mean(k) -> float:
    return sum(k) / len(k) if isinstance(k, list) else k


def write_csv(path: Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header of ``columns``, atomically; other keys are left out."""
    text = io.StringIO()
    w = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue()), "w")


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), "w")
