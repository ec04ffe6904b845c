"""What unrolls a network, parsed once: a scheme by name with its options, and noise on
its residual term. The command line, a run's settings, the zoo and ODENet all carry
this one object."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Optional, Sequence, Union

from .noise import NOISES, SURVIVAL, WRAPPERS, ShakeShake, StochasticDepth, survival_probabilities
from .registry import ADAPTIVE, available, get
from .scheme import Scheme

VARIANTS = {"sd": "stochastic_depth", "bd": "batch_drop", "ss": "shake_shake"}
"""Suffixes of a solver's name: ``lm+sd`` is lm with stochastic depth."""

_SD = ("stochastic_depth", "batch_drop")


def label(name: str, noise: Optional[str]) -> str:
    """A solver's name with its noise as a variant: ``label('lm', 'stochastic_depth') == 'lm+sd'``."""
    return name + "".join(f"+{k}" for k, v in VARIANTS.items() if v == noise)


@dataclass(frozen=True, eq=True)
class SolverSpec:
    """A scheme ``name`` built with ``options``, with ``noise`` (one of
    :data:`solvers.noise.NOISES`, or None) and stochastic depth's ``survival`` (p_L, or
    one keep probability per step). Build it with :meth:`parse`, which checks everything."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    noise: Optional[str] = None
    survival: Union[None, float, tuple[float, ...]] = None

    @classmethod
    def parse(cls, solver: Union[str, "SolverSpec"], *, noise: Optional[str] = None,
              survival: Optional[Union[float, Sequence[float]]] = None, **options) -> "SolverSpec":
        """``parse('lm+sd', survival=0.8, k_init=0.0)``; a SolverSpec given with nothing
        else is returned as it is, with more it is the base the rest adds to.

        Raises TypeError for a solver that is neither a name nor a SolverSpec, ValueError
        for an unknown name or variant, a noise the name's variant contradicts, a survival
        without stochastic depth, or options the scheme does not take."""
        if isinstance(solver, SolverSpec):
            if noise is None and survival is None and not options:
                return solver
            base = solver
            solver = base.label
            survival = base.survival if survival is None else survival
            options = {**base.options, **options}
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a name (str) or a SolverSpec, got {type(solver).__name__}; "
                            f"names: {', '.join(available())}")
        name, *variants = solver.split("+")
        for v in variants:
            if v not in VARIANTS:
                raise ValueError(f"unknown solver variant +{v} in {solver!r}; known: "
                                 + ", ".join(f"+{k} ({n})" for k, n in VARIANTS.items()))
            if noise is not None and noise != VARIANTS[v]:
                raise ValueError(f"solver {solver!r} asks for noise {VARIANTS[v]!r} and noise={noise!r} for "
                                 "another: give one")
            noise = VARIANTS[v]
        return cls._checked(name, options, noise, survival)

    @classmethod
    def _checked(cls, name: str, options: Mapping[str, Any], noise: Optional[str],
                 survival: Union[None, float, Sequence[float]]) -> "SolverSpec":
        """The spec of these fields, each checked: what :meth:`parse` makes of its text, and
        :meth:`replace` of a copy, without reading text again."""
        if name not in available():
            raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(available())}")
        if noise is not None and noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; choose one of: {', '.join(NOISES)} (or None)")
        if noise not in _SD and survival is not None:
            raise ValueError(f"survival={survival!r} is the keep probability of stochastic depth; this solver has "
                             f"noise={noise!r}")
        if noise in _SD:
            survival = _survival(SURVIVAL if survival is None else survival)
        if name in ADAPTIVE and (noise or options):
            raise ValueError(f"adaptive solver {name!r} is deterministic and takes no scheme options "
                             "(its rtol, atol and adjoint are ODENet's)")
        spec = cls(name, dict(options), noise, survival)
        scheme = spec.scheme  # building it checks its options, once
        if noise == "shake_shake" and scheme.functions != 1:
            raise ValueError(f"noise='shake_shake' mixes two branches into a one-function scheme; {name!r} already "
                             f"takes {scheme.functions} functions per step")
        return spec

    @property
    def label(self) -> str:
        """How tables, folders and logs name it: ``lm``, ``lm+sd``."""
        return label(self.name, self.noise)

    @property
    def adaptive(self) -> bool:
        """An adaptive-step method, integrated by torchdiffeq."""
        return self.name in ADAPTIVE

    @cached_property
    def scheme(self) -> Optional[Scheme]:
        """The scheme without noise (None for an adaptive method)."""
        return None if self.adaptive else get(self.name, **self.options)

    @property
    def functions(self) -> int:
        """Functions per step, noise included (shake-shake mixes two branches into each)."""
        if self.adaptive:
            return 1
        return self.scheme.functions * (WRAPPERS[self.noise].branches if self.noise else 1)

    def replace(self, **changes) -> "SolverSpec":
        """A copy with some fields changed, checked again."""
        new = dataclasses.replace(self, **changes)
        return SolverSpec._checked(new.name, new.options, new.noise, new.survival)

    def survival_probabilities(self, steps: int) -> list[float]:
        """Keep probability p_n of each of ``steps`` steps (:func:`solvers.noise.survival_probabilities`:
        Huang et al.'s decay from p_L for ``stochastic_depth``, the LM-ResNet authors' for
        ``batch_drop``)."""
        if self.noise not in _SD:
            raise ValueError(f"survival probabilities belong to stochastic depth; this solver has noise={self.noise!r}")
        return survival_probabilities(steps, self.survival, authors=self.noise == "batch_drop")

    def schemes(self, steps: int) -> list[Scheme]:
        """The scheme of each of ``steps`` steps, noise included."""
        if self.noise in _SD:
            return [StochasticDepth(self.scheme, p, per_sample=self.noise == "stochastic_depth")
                    for p in self.survival_probabilities(steps)]
        one = ShakeShake(self.scheme) if self.noise == "shake_shake" else self.scheme
        return [one] * steps


def _survival(survival) -> Union[float, tuple[float, ...]]:
    """p_L, or one keep probability per step, each in (0, 1]."""
    number = isinstance(survival, (int, float)) and not isinstance(survival, bool)
    if not number and (isinstance(survival, (str, bytes)) or not isinstance(survival, Sequence)):
        raise TypeError(f"survival must be p_L (a number) or a sequence of keep probabilities, "
                        f"got {type(survival).__name__}")
    values = [survival] if number else list(survival)
    if not values or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1 for p in values):
        raise ValueError(f"survival must be p_L in (0, 1] or keep probabilities in (0, 1], got {survival!r}")
    return float(survival) if number else tuple(float(p) for p in values)
