"""The application layer: data sets, the training recipe and loop, checkpoints, the
solver ablation and the ``odenets`` command line. Imports everything below it; nothing
below imports it.

Its public API, importable from here: :class:`Config` (a run's settings) and :func:`fit`
(train one run, what ``odenets train`` calls), the data sets' :func:`recipe`, the
ablation's statistics (:func:`compare`, :class:`Comparison`, :func:`detectable`) and the
errors a run reports (:class:`AppError`, :class:`UsageError`). Each is imported on first
use, so that ``import odenets.app`` loads none of the commands, the data path or the zoo.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Config": "odenets.app.settings.config",
    "Recipe": "odenets.app.settings.recipe",
    "recipe": "odenets.app.settings.recipe",
    "fit": "odenets.app.commands.train",
    "Comparison": "odenets.app.commands.statistics",
    "compare": "odenets.app.commands.statistics",
    "detectable": "odenets.app.commands.statistics",
    "AppError": "odenets.app.errors",
    "UsageError": "odenets.app.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'odenets.app' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
