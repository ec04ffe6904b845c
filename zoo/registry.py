"""Models by name, in the manner of timm: ``create('lm_resnet56')``, ``list_models('*resnet*')``."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from typing import Callable, Optional

from torch import nn

from .resnet import MODEL_OPTIONS

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_BAD_KEYWORD = re.compile(r"(?:unexpected keyword argument|multiple values for (?:keyword )?argument) '(\w+)'")
"""Python's TypeError for a keyword that a call cannot bind."""


def register_model(fn: Optional[Callable[..., nn.Module]] = None, *, name: Optional[str] = None):
    """Register a builder ``fn(num_classes=..., in_chans=..., solver=..., **options)`` under
    ``name`` (default: the function's name). Use as ``@register_model`` or
    ``register_model(builder, name='resnet20')``."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"a model named {key!r} is already registered")
        _MODELS[key] = builder
        return builder

    return add if fn is None else add(fn)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: Optional[str] = None) -> list[str]:
    """Registered names, filtered by a shell-style ``pattern`` ('lm_*'), in natural order."""
    names = fnmatch.filter(_MODELS, pattern) if pattern else list(_MODELS)
    return sorted(names, key=_natural)


def create(name: str, num_classes: Optional[int] = None, in_chans: int = 3, solver: Optional[str] = None,
           **options) -> nn.Module:
    """Build the model ``name``.

    ``num_classes`` defaults to the model's own (10 for CIFAR models, 1000 for ImageNet
    ones); ``solver`` to the name's scheme ('euler' for resnet*, 'lm' for lm_*), and any
    scheme of :mod:`solvers` may be given with its options, e.g.
    ``create('resnet56', solver='lm', noise='stochastic_depth', survival=0.5, k_init=0.0)``.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    given = {k: v for k, v in (("num_classes", num_classes), ("solver", solver)) if v is not None}
    try:
        return _MODELS[name](in_chans=in_chans, **given, **options)
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from None
    except TypeError as err:  # a keyword the builder does not take, or one that its architecture fixes
        bad = _BAD_KEYWORD.search(str(err))
        if bad is None or bad[1] not in options:  # not the caller's keyword: a fault inside the builder
            raise
        raise ValueError(f"model {name!r} does not take option {bad[1]!r}; it takes: "
                         f"{', '.join(_options(_MODELS[name]))}") from None


def _options(builder: Callable[..., nn.Module]) -> list[str]:
    """The keywords a builder takes: its named parameters, and for one that passes the
    rest on to :func:`zoo.build`, the model options and the solver's."""
    params = inspect.signature(builder).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        named += [o for o in MODEL_OPTIONS if o not in named] + ["the solver's options"]
    return named
