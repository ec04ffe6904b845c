"""Figures without pyplot: matplotlib is imported only when a figure is drawn, and PNGs
are written atomically (a temporary file, then a rename), so a crash never leaves half an image."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ..files import atomic_write

PathLike = Union[str, os.PathLike]


def new_figure(width: float = 6.4, height: float = 4.8):
    """A matplotlib Figure drawn by the Agg renderer. No pyplot, so no global state and
    no change to the backend of a notebook the caller may be in."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def series_style(i: int) -> dict:
    """Color, marker and line style of the i-th of many lines: the ten default colors, then
    the same ten with another marker and dashes (eleven schemes, say, no two alike)."""
    return {"color": f"C{i % 10}", "marker": "osD^"[i // 10 % 4], "linestyle": ("-", "--", "-.", ":")[i // 10 % 4]}


def save_png(fig, path: PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically; parent folders are created."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; give a path ending in .png, got {str(path)!r}")
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
