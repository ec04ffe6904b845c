"""Models by name, in the manner of timm: ``create('lm_resnet56')``, ``list_models('*resnet*')``."""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import re
import typing
from typing import Any, Callable, Optional, Union

from torch import nn

from odenets.hints import describe, fits
from odenets.solvers import SolverSpec

from .resnet import MODEL_OPTIONS, build

SCHEME_KEYWORDS = ("noise", "survival")
"""What :func:`create` takes for the solver's :class:`solvers.SolverSpec` besides the scheme's options."""

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_CIFAR_WEIGHT_DECAY: dict[str, float] = {}


def register_model(fn: Optional[Callable[..., nn.Module]] = None, *, name: Optional[str] = None,
                   cifar_weight_decay: Optional[float] = None):
    """Register a builder ``fn(num_classes=..., in_chans=..., solver=..., **options)`` under
    ``name`` (default: the function's name); ``solver`` comes as a :class:`solvers.SolverSpec`,
    its default is the model's own, and ``options`` are the model's. Use as ``@register_model`` or
    ``register_model(builder, name='resnet20')``. ``cifar_weight_decay``: the weight decay
    the architecture's authors trained it with on CIFAR, where it is not He et al.'s 1e-4
    (:func:`cifar_weight_decay`)."""
    if cifar_weight_decay is not None:
        if isinstance(cifar_weight_decay, bool) or not isinstance(cifar_weight_decay, (int, float)):
            raise TypeError(f"cifar_weight_decay takes a number, got {cifar_weight_decay!r}")
        if not 0 <= cifar_weight_decay < float("inf"):
            raise ValueError(f"cifar_weight_decay must be finite and >= 0, got {cifar_weight_decay!r}")

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"a model named {key!r} is already registered")
        _MODELS[key] = builder
        if cifar_weight_decay is not None:
            _CIFAR_WEIGHT_DECAY[key] = float(cifar_weight_decay)
        return builder

    return add if fn is None else add(fn)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: Optional[str] = None) -> list[str]:
    """Registered names, filtered by a shell-style ``pattern`` ('lm_*'), in natural order."""
    names = fnmatch.filter(_MODELS, pattern) if pattern else list(_MODELS)
    return sorted(names, key=_natural)


def cifar_weight_decay(name: str) -> Optional[float]:
    """The weight decay model ``name``'s architecture was published with on CIFAR, where it
    differs from He et al.'s 1e-4 (5e-4 for ResNeXt, Xie et al. 2017, under any solver);
    None otherwise. The CIFAR recipe of ``odenets train`` takes it as its default."""
    return _CIFAR_WEIGHT_DECAY.get(name)


def create(name: str, num_classes: Optional[int] = None, in_chans: int = 3,
           solver: Union[str, SolverSpec, None] = None, **options) -> nn.Module:
    """Build the model ``name``.

    ``num_classes`` defaults to the model's own (10 for CIFAR models, 1000 for ImageNet
    ones); ``solver`` (a :class:`solvers.SolverSpec`, or its text) to the model's own
    scheme ('euler' for resnet*, 'lm' for lm_*), and any scheme of :mod:`odenets.solvers`
    may be given. ``options`` are the model's (``preact``, ``dt``, ``checkpoint``,
    ``memory_efficient``, ``channels=True`` and a builder's own); as a shorthand they may
    also hold the scheme's (``noise``, ``survival`` and its options), read into the
    solver's spec here, once (:func:`solver_spec`):
    ``create('resnet56', solver='lm', noise='stochastic_depth', survival=0.5, k_init=0.0)``
    is ``create('resnet56', solver=SolverSpec.parse('lm+sd', survival=0.5, k_init=0.0))``.
    """
    check_options(name, **options)
    mine, scheme = split_options(name, options)
    try:
        spec = solver_spec(name, solver, **scheme)
        given = {k: v for k, v in (("num_classes", num_classes), ("solver", spec)) if v is not None}
        return _MODELS[name](in_chans=in_chans, **given, **mine)
    except ValueError as err:
        raise ValueError(f"model {name!r}: {err}") from None


def solver_spec(name: str, solver: Union[str, SolverSpec, None] = None, **scheme_options) -> Optional[SolverSpec]:
    """The spec model ``name`` is built with: ``solver`` (a spec, or its text, parsed here)
    with ``scheme_options`` (``noise``, ``survival``, the scheme's own), else the model's
    own scheme (its builder's ``solver`` default) with those changed; None for a model
    with no solver of its own, given none. Raises ValueError for what the scheme refuses."""
    own = _own_solver(name) if solver is None else solver
    try:
        if own is None:
            if scheme_options:
                raise ValueError(f"model {name!r} has no solver of its own for options "
                                 f"{', '.join(scheme_options)}: give a solver")
            return None
        if not isinstance(own, SolverSpec) or solver is not None or not scheme_options:
            return SolverSpec.parse(own, **scheme_options)
        noise = scheme_options.pop("noise", own.noise)  # the model's own noise, survival and options, changed
        survival = scheme_options.pop("survival", own.survival if noise is not None else None)
        return own.replace(noise=noise, survival=survival, options={**own.options, **scheme_options})
    except ValueError as err:
        raise ValueError(f"{err}; model options: {', '.join(model_options(name))}") from None


def model_options(name: str) -> list[str]:
    """The options model ``name`` takes (``preact``, ``dt``, ... and its builder's own);
    any other option of :func:`create` is its scheme's."""
    named, forwards = _parameters(_MODELS[name])
    own = [p for p in named if p not in ("num_classes", "in_chans", "solver")]
    return own + [o for o in MODEL_OPTIONS if forwards and o not in own]


def split_options(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (the model's, the scheme's): one ``--opt`` list, or :func:`create`'s
    keywords, told apart by the model's signature."""
    mine = set(model_options(name))
    return ({k: v for k, v in options.items() if k in mine}, {k: v for k, v in options.items() if k not in mine})


def _own_solver(name: str) -> Union[str, SolverSpec, None]:
    """The ``solver`` model ``name``'s builder defaults to (a partial's keyword included)."""
    param = inspect.signature(_MODELS[name]).parameters.get("solver")
    return None if param is None or param.default is param.empty else param.default


def check_options(name: str, **options) -> None:
    """Check, before building anything, that model ``name`` exists (else ValueError) and
    takes each option by its builder's signature: an option it does not take, or one
    its architecture fixes, is a ValueError; a value of the wrong type (``preact='no'``)
    a TypeError naming the option, the value and what it accepts. A builder that takes
    ``**options`` is taken to pass them on to :func:`zoo.build`, whose signature (and
    the scheme's own options) then decide."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    builder = _MODELS[name]
    named, forwards = _parameters(builder)
    bound = _parameters(_unwrapped(builder))[0]  # with those a partial fixes
    fixed = {p for p in _parameters(build)[0] if p not in MODEL_OPTIONS}
    scheme = {k: v for k, v in _hints(SolverSpec.parse).items() if k in SCHEME_KEYWORDS}
    hints = {**scheme, **_hints(build), **_hints(_unwrapped(builder))}
    for key, value in options.items():
        if key not in named and (not forwards or key in bound or key in fixed):
            raise ValueError(f"model {name!r} does not take option {key!r}; it takes: {', '.join(_options(builder))}")
        hint = hints.get(key, Any) if key in named or key in MODEL_OPTIONS or key in SCHEME_KEYWORDS else Any
        if not fits(value, hint):
            raise TypeError(f"model {name!r}: option {key} takes {describe(hint)}, got {value!r}")


def _parameters(fn: Callable) -> tuple[list[str], bool]:
    """The names ``fn`` takes by keyword, and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    return ([p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)],
            any(p.kind == p.VAR_KEYWORD for p in params))


def _unwrapped(fn: Callable) -> Callable:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _hints(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # a user's builder whose annotations do not resolve: nothing to check against
        return {}


def _options(builder: Callable[..., nn.Module]) -> list[str]:
    """The keywords a builder takes: its named parameters, and for one that passes the
    rest on to :func:`zoo.build`, the model options and the solver's."""
    named, forwards = _parameters(builder)
    if forwards:
        named += [o for o in MODEL_OPTIONS + SCHEME_KEYWORDS if o not in named] + ["the solver's options"]
    return named
