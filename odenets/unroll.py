"""From what a user gives ODENet (``f``, ``steps``, shortcuts, a solver) to the list of
steps: the one place where a network's steps are built."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from odenets.solvers import SolverSpec

from .step import Step

FunctionsLike = Union[nn.Module, Sequence, Callable[[int], nn.Module]]
ShortcutsLike = Union[None, Sequence[Optional[nn.Module]], Mapping[int, nn.Module]]


def number(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a float: any real number (Python, numpy, a 0-dim tensor), finite, and
    positive where asked. TypeError for another type, ValueError for another value."""
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return value


def functions(f: FunctionsLike, steps: Optional[int], arity: int, solver: str) -> tuple[list[nn.Module], bool, int]:
    """``f`` as (modules, shared, steps): one module for a shared f, else one per step;
    each an nn.ModuleList of ``arity`` modules where a step takes a pair."""
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)):
        raise TypeError(f"steps must be an integer, got {type(steps).__name__}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    what = "a module" if arity == 1 else f"a group of {arity} modules (e.g. (F, G))"

    def is_group(x) -> bool:
        return isinstance(x, (tuple, list, nn.ModuleList)) and len(x) == arity and all(
            isinstance(m, nn.Module) for m in x)

    def one(x, where: str) -> nn.Module:
        if arity == 1:
            if not isinstance(x, nn.Module):
                raise TypeError(f"{where} must be an nn.Module, got {type(x).__name__}")
            return x
        if not is_group(x):
            raise ValueError(f"solver {solver!r} takes {what} per step; {where} is {type(x).__name__}")
        return nn.ModuleList(x)

    if (isinstance(f, nn.Module) and not isinstance(f, nn.ModuleList)) or (arity > 1 and is_group(f)):
        if steps is None:
            raise ValueError("a single shared f needs steps=n (how many times to apply it)")
        return [one(f, "f")], True, steps
    if isinstance(f, (list, tuple, nn.ModuleList)):
        fs = list(f)
        if not fs:
            raise ValueError("f is an empty sequence; give one module per step")
        if steps is not None and steps != len(fs):
            raise ValueError(f"steps={steps} but f holds {len(fs)} per-step modules; they must agree "
                             "(or leave steps out)")
        return [one(x, f"f[{i}]") for i, x in enumerate(fs)], False, len(fs)
    if callable(f):
        if steps is None:
            raise ValueError("a factory f(i) -> nn.Module needs steps=n")
        return [one(f(i), f"f({i})") for i in range(steps)], False, steps
    raise TypeError(f"f must be an nn.Module, a sequence of modules or a factory i -> nn.Module; got {type(f).__name__}")


def shortcut_list(shortcuts: ShortcutsLike, steps: int, shared: bool) -> list[Optional[nn.Module]]:
    """One shortcut (None or a module) per step, from a sequence or a mapping {n: P}."""
    if shortcuts is None:
        return [None] * steps
    if shared:
        raise ValueError("shortcuts change the state's shape at given steps; a shared f keeps it at every step "
                         "(give one module per step)")
    if isinstance(shortcuts, Mapping):
        bad = [n for n in shortcuts if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < steps]
        if bad:
            raise ValueError(f"shortcuts maps step indices in 0..{steps - 1} to modules; got key(s) {bad}")
        shortcuts = [shortcuts.get(n) for n in range(steps)]
    elif isinstance(shortcuts, (list, tuple, nn.ModuleList)):
        if len(shortcuts) != steps:
            raise ValueError(f"shortcuts holds {len(shortcuts)} entries for {steps} steps; give one per step "
                             "(None where the shape stays) or a mapping {step: module}")
        shortcuts = list(shortcuts)
    else:
        raise TypeError(f"shortcuts must be a sequence (one per step) or a mapping {{step: module}}, "
                        f"got {type(shortcuts).__name__}")
    for n, p in enumerate(shortcuts):
        if p is not None and not isinstance(p, nn.Module):
            raise TypeError(f"the shortcut of step {n} must be an nn.Module or None, got {type(p).__name__}")
    return shortcuts


def activation_list(activation: Optional[nn.Module], steps: int) -> list[Optional[nn.Module]]:
    """The module each step's result goes through: one for all, or an ``nn.ModuleList``
    of one per step."""
    if not isinstance(activation, nn.ModuleList):
        return [activation] * steps
    if len(activation) != steps:
        raise ValueError(f"activation holds {len(activation)} modules for {steps} steps; give one per step (or one "
                         "module for every step)")
    return list(activation)


def make_steps(spec: SolverSpec, fns: Sequence[nn.Module], shared: bool, steps: int, dt: float, t0: float,
               shortcuts: Sequence[Optional[nn.Module]], activation: Optional[nn.Module], checkpoint: bool,
               carry_in: bool) -> list[Step]:
    """Step n: its scheme (noise included), function(s), shortcut, time t0 + n dt, and
    trained coefficients, which a transition never has and which the first steps of a
    net without ``carry_in`` do not get when their history is too short to use them.

    The coefficients are drawn from a fork of the global random stream, which is left as
    it was: a network's other weights do not depend on its scheme (a seed gives an
    LM-ResNet the weights of its ResNet twin)."""
    if any(p is not None for p in shortcuts) and not spec.scheme.can_change_shape:
        raise ValueError(f"solver {spec.name!r} takes {spec.scheme.functions} functions per step and has no "
                         "shape-changing step: shortcuts need a one-function scheme or one with a transition "
                         "('revnet')")
    schemes = spec.schemes(steps)
    activations = activation_list(activation, steps)
    out = []
    with torch.random.fork_rng(devices=[]):
        for n in range(steps):
            scheme, p = schemes[n], shortcuts[n]
            fn = fns[0 if shared else n]
            coefs = scheme.init_params(n) if p is None and (carry_in or n >= scheme.history) else {}
            out.append(Step(scheme, list(fn) if isinstance(fn, nn.ModuleList) else [fn], n, t0 + n * dt, dt,
                            shortcut=p, coefs=coefs, activation=activations[n], checkpoint=checkpoint))
    return out
