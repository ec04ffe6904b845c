"""The interface every fixed-step scheme implements.

A scheme advances u_n to u_{n+1} for u' = f(t, u) and leaves a *record* of step n
(u_n and, where later steps need it, f(t_n, u_n)) for the steps after it. The engine
that unrolls a scheme over a network lives in :mod:`odenets`; this module knows only
numbers and tensors.
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple, Optional, Sequence

from torch import Tensor

Field = Callable[[float, Tensor], Tensor]
"""A vector field called as ``f(t, u)``."""


class Record(NamedTuple):
    """What step n leaves behind: the state u_n and, if kept, f_n(t_n, u_n)."""

    u: Tensor
    f: Optional[Tensor] = None


Past = Sequence[Record]
"""Records of earlier steps, most recent first: past[0] is step n-1."""


class Scheme:
    """One step of a fixed-step scheme.

    Subclasses declare what they are and what they can do, and implement :meth:`step`:

    - ``order``: nominal order of accuracy; ``evals``: f-evaluations per step;
    - ``history``: how many past records the step reads (0 for one-step schemes);
    - ``functions``: functions per step (2 for a pair such as RevNet's (F, G));
    - ``splits_state``: the pair acts on the two halves of the state along dim 1;
    - ``trained``: names of the trainable per-step coefficients (LM-ResNet's
      ``('k',)``), initialised by :meth:`init_params`; the network owns them and passes
      them to ``step`` as keyword arguments;
    - ``invertible``: :meth:`inverse` recovers a step's input from its output, so a
      network can train without storing its states;
    - ``exact_reversal``: the step also runs on a fixed-point carrier
      (:meth:`fixed_encode`, :meth:`fixed_step`, :meth:`fixed_inverse`,
      :meth:`fixed_decode`; :mod:`odenets.solvers.fixed_point`) on which its inverse
      rebuilds the input bit for bit, at any depth;
    - ``vjp``: :meth:`step_vjp` differentiates a step from its functions' vector-Jacobian
      products at the points the step evaluated them, so the backward pass of exact
      reversal need not recompute the step (for a scheme without trained coefficients);
    - ``skips_functions``: a training step may leave its functions unevaluated (a
      dropped block), so their parameters may get no gradient (DDP must be told);
    - ``euler_options``: options under which the step is the forward-Euler step
      u + dt f(u), a residual block unchanged (``{}``: always; LM's ``{'k_init': 0.0}``),
      or None where the scheme has no such point.

    For the analysis a scheme describes itself by :meth:`characteristic` (what its step
    does to u' = lambda u, from which stability regions, spectra verdicts, modified
    equations and the ODE it converges to follow), :meth:`coefficient_values` (its trained
    coefficients as reported) and :meth:`with_history` (the scheme that takes a step
    with a short history: a multistep scheme's starter).

    The engine, the zoo, the application and the analysis ask these, never a name.
    """

    name: str = ""
    order: int = 1
    evals: int = 1
    history: int = 0
    functions: int = 1
    splits_state: bool = False
    trained: tuple[str, ...] = ()
    invertible: bool = False
    exact_reversal: bool = False
    vjp: bool = False
    skips_functions: bool = False
    euler_options: Optional[dict] = None

    def init_params(self, n: int) -> dict[str, Tensor]:
        """Initial values of the trainable coefficients of step n, one per name in
        ``trained`` (none by default)."""
        return {}

    def characteristic(self, **params: Tensor) -> Optional[Tensor]:
        """The characteristic polynomial pi(zeta; z) of the step applied to u' = lambda u,
        z = dt * lambda, at the trained coefficients ``params`` (one per name in
        ``trained``), as the matrix of :mod:`odenets.solvers.characteristic`
        (:func:`~odenets.solvers.characteristic.one_step` from a stability function R(z),
        :func:`~odenets.solvers.characteristic.rho_sigma` from multistep coefficients).
        None (the default) where the step is not one linear recurrence for u' = lambda u
        (a pair of functions, noise): the analysis then has no region for it."""
        return None

    def coefficient_values(self, **params: Tensor) -> dict[str, Tensor]:
        """A step's trained coefficients as the analysis reports them: ``params``
        themselves by default (LM under ``k_bounds`` reports k for its ``k_raw``)."""
        return dict(params)

    def with_history(self, records: int) -> "Scheme":
        """The scheme whose step is taken when ``records`` past records are available:
        itself by default, a multistep scheme's starter while its history is short."""
        return self

    def own_records(self, dt: float, u: Tensor, past: Past) -> Past:
        """The history ``past`` handed to a step at u in the form this scheme's steps leave
        it, computed from it differentiably (momentum's records carry the velocity): the
        form in which the backward pass of ``memory_efficient=True`` rebuilds it."""
        return past

    def step(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Record]:
        """Return u_{n+1}, a new tensor that no autograd node keeps (the network may apply
        an in-place activation to it), and the record of step n."""
        raise NotImplementedError

    def transition(self, f, t: float, dt: float, u: Tensor, pu: Tensor) -> tuple[Tensor, Record]:
        """A step whose f_n changes the state's shape (a downsampling block).

        ``pu`` is u_n carried into the new shape by the block's shortcut P. A stage can be
        evaluated only on the old shape, so the step is the ResNet transition
        u_{n+1} = P(u_n) + dt f_n(u_n), forward Euler with the shortcut in place of u_n,
        for every scheme with one function per step, multistep ones included: LM-ResNet's
        authors take this step at their downsampling blocks and hand P(u_n) on as the
        u_{n-1} of the next step, the record returned here.
        """
        return pu.add(f(t, u), alpha=dt), Record(pu)

    def inverse(self, f, t: float, dt: float, u: Tensor, past: Past, **params: Tensor) -> tuple[Tensor, Past]:
        """(u_n, past_n) from step n's output u_{n+1} and the history past_{n+1} it left,
        for a scheme that declares ``invertible``. ``past_n`` may be longer than the
        history step n was given; the caller keeps what it needs."""
        raise NotImplementedError(f"{type(self).__name__} is not invertible")

    # -- exact reversal (``exact_reversal``): the step on a fixed-point carrier --------------
    # A carrier is a tuple of integer-valued tensors (``fx.carrier``: float64 for a float32
    # state, int64 for a float64 one), ``fx`` the FixedPoint of the run (its scale and the
    # stack of dropped bits); the float step computed at the decoded states gives the
    # gradients.

    def fixed_encode(self, dt: float, u: Tensor, past: Past, fx) -> tuple[Tensor, ...]:
        """The carrier of (u, past)."""
        raise NotImplementedError(f"{type(self).__name__} declares no exact reversal")

    def fixed_decode(self, dt: float, carrier: tuple[Tensor, ...], fx) -> tuple[Tensor, Past]:
        """(u, past) in floats from a carrier; the history may be longer than a step was given."""
        raise NotImplementedError(f"{type(self).__name__} declares no exact reversal")

    def fixed_step(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx,
                   **params: Tensor) -> tuple[Tensor, ...]:
        """The step on the carrier; every bit it drops goes to ``fx``."""
        raise NotImplementedError(f"{type(self).__name__} declares no exact reversal")

    def fixed_inverse(self, f, t: float, dt: float, carrier: tuple[Tensor, ...], fx,
                      **params: Tensor) -> tuple[Tensor, ...]:
        """The carrier :meth:`fixed_step` was given, bit for bit."""
        raise NotImplementedError(f"{type(self).__name__} declares no exact reversal")

    def step_vjp(self, vjp: Callable[[int, int, Tensor], Optional[Tensor]], dt: float, grad_u: Tensor,
                 grad_past: tuple[Optional[Tensor], ...], records: int) -> tuple[Tensor, tuple[Optional[Tensor], ...]]:
        """The gradients of a step's input (u_n, and the tensors of the ``records`` records
        it was handed, in order) from those of its output (u_{n+1}, and the tensors of the
        records it left; None for a gradient of zero), for a scheme that declares ``vjp``.
        ``vjp(i, k, g)`` is the gradient to the input of function i's k-th evaluation (at
        the point the forward step evaluated it) given the gradient g of its output, or None
        where the output does not depend on it; it adds up the gradients of the functions'
        weights itself."""
        raise NotImplementedError(f"{type(self).__name__} declares no vjp")

    @property
    def can_change_shape(self) -> bool:
        """Whether :meth:`transition` serves this scheme: the default one serves schemes
        with one function per step; a pair scheme needs its own."""
        return self.functions == 1 or type(self).transition is not Scheme.transition

    @property
    def deterministic(self) -> "Scheme":
        """The scheme used in eval mode: itself, or its drift for a stochastic scheme."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, order={self.order}, evals={self.evals}, history={self.history})"


def timed(fn: Callable) -> Field:
    """Wrap ``fn`` so that it is called as ``fn(t, u)``: a callable whose forward takes
    a single argument is called as ``fn(u)``."""
    return fn if takes_time(fn) else (lambda t, u: fn(u))


def takes_time(fn: Callable) -> bool:
    """Whether ``fn`` (a function or an nn.Module) takes the time before the state: it
    has two required positional arguments."""
    target = getattr(fn, "forward", fn)
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2  # an optional second argument (GRUCell's hx) is not the time


def axpy(acc: Optional[Tensor], c, x: Tensor, inplace: bool = False) -> Optional[Tensor]:
    """acc + c * x, where c is a float (skipped when zero) or a tensor, per step (0-dim)
    or per channel (shape (C,), broadcast over x's dim 1); acc None means 0. ``inplace``
    adds into acc when it has x's dtype: acc must be a new tensor of the caller's that no
    autograd node keeps."""
    if isinstance(c, Tensor):
        c = channelwise(c, x)
        if acc is None:
            return c * x
        return acc.add_(c * x) if inplace and acc.dtype == x.dtype else acc + c * x
    if c == 0:
        return acc
    if acc is None:
        return x if c == 1 else c * x
    return acc.add_(x, alpha=c) if inplace and acc.dtype == x.dtype else acc.add(x, alpha=c)


def plus(g: Optional[Tensor], h: Optional[Tensor]) -> Optional[Tensor]:
    """g + h for gradients, where None is a gradient of zero."""
    return g if h is None else h if g is None else g + h


def channelwise(c: Tensor, u: Tensor) -> Tensor:
    """A coefficient ready to multiply u: a per-channel one of shape (C,) viewed to
    broadcast over u's dim 1, and cast to u's dtype (under autocast u may be bf16/fp16)."""
    if c.dim() == 1:
        if u.dim() < 2 or c.shape[0] != u.shape[1]:
            raise ValueError(f"a per-channel coefficient of {c.shape[0]} channels does not fit a state of shape "
                             f"{tuple(u.shape)} (channels are dim 1)")
        c = c.view(-1, *([1] * (u.dim() - 2)))
    return c if c.dtype == u.dtype else c.to(u.dtype)
