"""One step of an ODENet as a module: u_{n+1} from u_n by a scheme applied to the step's
function(s) at its time t_n."""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from odenets.solvers import Past, Record, Scheme, takes_time


Context = Mapping[str, Any]
"""Keyword arguments handed to every evaluation of every step's function (an attention
mask, a conditioning vector): ``net(u, **context)``."""

Around = Callable[[Callable[[Tensor], Tensor], Tensor], Tensor]
"""What stands around an evaluation of a field: ``around(call, x)``, ``call`` evaluating it."""

Hook = Callable[[int, Callable[[Tensor], Tensor], Tensor], Tensor]
"""What stands around every evaluation of a step's functions: ``hook(i, call, x)`` for function i."""


def keywords(module: nn.Module, timed: bool) -> Optional[frozenset[str]]:
    """The keyword arguments ``module`` takes besides the time and the state (None: any,
    its forward has ``**kwargs``)."""
    try:
        params = list(inspect.signature(getattr(module, "forward", module)).parameters.values())
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return frozenset(p.name for p in named[2 if timed else 1:])


class Field:
    """A residual function f_n as a scheme calls it, f(t, x), with its output checked:
    a tensor of the state's shape (or, :meth:`check`, of a given one) whose dtype does
    not widen the state's. :meth:`bind` gives the same function with keyword arguments
    (the net's context) added to every call."""

    def __init__(self, module: nn.Module, n: int):
        self.module, self.n = module, n
        self.timed = takes_time(module)
        self.keywords = keywords(module, self.timed)
        self.around: Optional[Around] = None  # see Step.around_each_call

    def __call__(self, t: float, x: Tensor) -> Tensor:
        return self.check(t, x, x.shape)

    def bind(self, context: Context) -> "Field":
        """f(t, x, **context) as a scheme calls f (the field itself when there is no context)."""
        return _Bound(self, context) if context else self

    def check_keywords(self, context: Context) -> None:
        """A clear error for a context key the function does not take."""
        unknown = [k for k in context if self.keywords is not None and k not in self.keywords]
        if unknown:
            takes = ", ".join(sorted(self.keywords)) or "no keyword arguments"
            raise TypeError(f"the context key(s) {', '.join(map(repr, unknown))} are not taken by f at step "
                            f"{self.n} ({type(self.module).__name__}, whose forward takes {takes}); every step's "
                            "function is handed the whole context, so each must accept every key (or **kwargs)")

    def check(self, t: float, x: Tensor, shape: Optional[torch.Size], context: Optional[Context] = None) -> Tensor:
        """f(t, x, **context), whose output must have ``shape`` (None: any shape)."""
        if self.around is not None:
            return self.around(lambda y: self._evaluate(t, y, shape, context), x)
        return self._evaluate(t, x, shape, context)

    def _evaluate(self, t: float, x: Tensor, shape: Optional[torch.Size], context: Optional[Context]) -> Tensor:
        if context:
            out = self.module(t, x, **context) if self.timed else self.module(x, **context)
        else:  # the common call, without an empty **{} on the hot path
            out = self.module(t, x) if self.timed else self.module(x)
        if not isinstance(out, Tensor):
            raise TypeError(f"f at step {self.n} ({type(self.module).__name__}) returned a {type(out).__name__}; a "
                            "residual function returns one tensor (wrap the module to pick one output)")
        if shape is not None and out.shape != shape:
            raise ValueError(f"f at step {self.n} returned shape {tuple(out.shape)} for a state of shape "
                             f"{tuple(x.shape)}; expected {tuple(shape)}. A residual function keeps the state's "
                             "shape (a shape-changing block needs its shortcut: ODENet(..., shortcuts=...))")
        if out.dtype != x.dtype and torch.promote_types(out.dtype, x.dtype) != x.dtype:
            raise TypeError(f"f at step {self.n} returned {out.dtype} for a {x.dtype} state, which would turn the "
                            f"whole network to {out.dtype}; make the module's parameters {x.dtype} (or the state "
                            f"{out.dtype})")
        return out


class _Bound:
    """A field with its context: called and checked as the field is."""

    __slots__ = ("field", "context")

    def __init__(self, field: Field, context: Context):
        self.field, self.context = field, context

    def __call__(self, t: float, x: Tensor) -> Tensor:
        return self.field.check(t, x, x.shape, self.context)

    def check(self, t: float, x: Tensor, shape: Optional[torch.Size]) -> Tensor:
        return self.field.check(t, x, shape, self.context)


class Step(nn.Module):
    """Step n: u_{n+1} = S(f_n, t_n, dt, u_n, past) for its scheme S, or, for a step with a
    ``shortcut`` P that changes the state's shape, the transition P(u_n) + dt f_n(u_n).

    The step owns its shortcut and its trained coefficients (``coefs``, e.g. LM's k_n)
    and refers to its function(s), which the ODENet holds (one copy of a shared f). It
    takes ``scheme`` in training mode and ``scheme.deterministic`` in eval mode; the
    result goes through ``activation`` (which may work in place: the result is new).
    """

    def __init__(self, scheme: Scheme, functions: Sequence[nn.Module], n: int, t: float, dt: float, *,
                 shortcut: Optional[nn.Module] = None, coefs: Optional[dict[str, Tensor]] = None,
                 activation: Optional[nn.Module] = None, checkpoint: bool = False):
        super().__init__()
        self.scheme, self.eval_scheme = scheme, scheme.deterministic
        self.n, self.t, self.dt = n, t, dt
        self.shortcut = shortcut
        self.coefs = nn.ParameterDict({k: nn.Parameter(v) for k, v in (coefs or {}).items()})
        self.checkpoint = checkpoint
        # referred to, not registered: the ODENet owns them
        object.__setattr__(self, "functions", tuple(functions))
        object.__setattr__(self, "activation", activation)
        self._names = tuple(self.coefs)
        fields = tuple(Field(m, n) for m in functions)
        self._f = fields[0] if len(fields) == 1 else fields

    def extra_repr(self) -> str:
        return f"n={self.n}, t={self.t:g}, scheme={type(self.scheme).__name__}"

    @property
    def field(self):
        """The step's function as its scheme calls it, f(t, u) (a pair of them for a pair
        scheme), its output checked."""
        return self._f

    @contextmanager
    def around_each_call(self, hook: Hook) -> Iterator[None]:
        """Within this block an evaluation f_i(x) of the step's function i is
        ``hook(i, call, x)``, where ``call(y)`` evaluates it (checked) at y: the reversible
        engine records and replays there the random state each evaluation starts from, and
        hands the backward pass's recomputation the evaluations the inverse made."""
        fields = self._fields()
        for i, f in enumerate(fields):
            f.around = partial(hook, i)
        try:
            yield
        finally:
            for f in fields:
                f.around = None

    @property
    def transition(self) -> bool:
        """Whether the step changes the state's shape (it has a shortcut)."""
        return self.shortcut is not None

    def forward(self, u: Tensor, past: Past = (), **context) -> tuple[Tensor, Past]:
        """u_{n+1} and the history the next step reads, from u_n and the history ``past``
        (records of earlier steps, most recent first); ``context`` goes to every
        evaluation of the step's function(s)."""
        needed = self.scheme.history if self._names else 0
        if len(past) < needed:
            raise ValueError(f"step {self.n} reads {needed} earlier state(s) (its scheme {self.scheme.name!r} has "
                             f"trained coefficients for them); pass past=, e.g. from ODENet.integrate")
        self.check_context(context)
        return self.advance(u, tuple(past), context)

    def check_context(self, context: Context) -> None:
        """A clear error if a function of the step does not take a key of ``context``."""
        for f in self._fields():
            f.check_keywords(context)

    def _fields(self) -> tuple[Field, ...]:
        return self._f if isinstance(self._f, tuple) else (self._f,)

    def _bound(self, context: Optional[Context]):
        """The step's field(s) with ``context`` added to every call."""
        if not context:
            return self._f
        return self._f.bind(context) if isinstance(self._f, Field) else tuple(f.bind(context) for f in self._f)

    def advance(self, u: Tensor, past: Past, context: Optional[Context] = None) -> tuple[Tensor, Past]:
        """:meth:`forward` without its checks: what the ODENet's loop calls."""
        context = context or {}
        if self.checkpoint and torch.is_grad_enabled():
            flat = [x for r in past for x in r]
            return _checkpoint(self._from_flat, u, *flat, use_reentrant=False, **context)
        return self._advance(u, past, context)

    def _from_flat(self, u: Tensor, *flat: Optional[Tensor], **context) -> tuple[Tensor, Past]:
        return self._advance(u, tuple(Record(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)), context)

    def _coefficients(self) -> dict[str, Tensor]:
        """The step's trained coefficients by name, as its scheme takes them (e.g. LM's k)."""
        return {k: getattr(self.coefs, k) for k in self._names} if self._names else {}

    def _advance(self, u: Tensor, past: Past, context: Context) -> tuple[Tensor, Past]:
        scheme = self.scheme if self.training else self.eval_scheme
        f = self._bound(context)
        if self.shortcut is None:
            out, record = scheme.step(f, self.t, self.dt, u, past, **self._coefficients())
        else:  # the older states later steps still read cross into the new shape
            past = tuple(Record(self.shortcut(r.u)) for r in past[:max(scheme.history - 1, 0)])
            pu = self.shortcut(u)
            out, record = scheme.transition(self._transition_fields(f, pu.shape), self.t, self.dt, u, pu)
        if self.activation is not None:
            out = self.activation(out.clone() if out is u else out)
        return out, ((record,) + past)[:scheme.history]

    @staticmethod
    def _transition_fields(f, shape: torch.Size):
        """f of a shape-changing step, checked against the new shape; a pair's F maps one
        shape to the other and G keeps it, which the scheme's transition checks."""
        if not isinstance(f, tuple):
            return lambda t, x: f.check(t, x, shape)
        return tuple((lambda t, x, g=g: g.check(t, x, None)) for g in f)

    def fixed_step(self, carrier: tuple[Tensor, ...], fx, inverse: bool = False,
                   context: Optional[Context] = None) -> tuple[Tensor, ...]:
        """The step, or its inverse, on a fixed-point carrier (a scheme that declares
        ``exact_reversal``; :mod:`odenets.solvers.fixed_point`): what the reversible engine runs."""
        run = self.scheme.fixed_inverse if inverse else self.scheme.fixed_step
        return run(self._bound(context), self.t, self.dt, carrier, fx, **self._coefficients())

    def inverse(self, u: Tensor, past: Past = (), context: Optional[Context] = None) -> tuple[Tensor, Past]:
        """(u_n, past_n) from this step's output u_{n+1} and the history it left, for an
        invertible scheme (eval and training mode alike). A step whose functions draw random
        numbers (dropout) inverts only under the draws it ran with, which the reversible
        engine replays (:meth:`around_each_call`)."""
        if not self.scheme.invertible or self.shortcut is not None or self.activation is not None:
            why = ("its scheme is not invertible" if not self.scheme.invertible else
                   "it changes the state's shape" if self.shortcut is not None else "it has an activation")
            raise ValueError(f"step {self.n} cannot be inverted: {why} (inverse() needs an invertible scheme such "
                             "as 'revnet', without noise, shortcut or activation)")
        return self.scheme.inverse(self._bound(context), self.t, self.dt, u, past, **self._coefficients())
