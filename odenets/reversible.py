"""Backpropagation through invertible steps without storing the states.

Gomez et al. (2017), "The Reversible Residual Network": the backward pass rebuilds each
step's input (u_n and the history it read) from its output by inverting the step,
recomputes the step with autograd on, and backpropagates through it alone. Only the last
state is saved, so activation memory does not grow with the number of steps. Any scheme
that declares ``invertible`` runs here, one-step (revnet) or multistep (momentum) alike.

How a state is rebuilt depends on what the scheme declares:

- ``exact_reversal`` (revnet, momentum): the steps run on a fixed-point integer carrier
  (:mod:`odenets.solvers.fixed_point`; Maclaurin, Duvenaud & Adams 2015, MacKay et al.
  2018) and keep the bits a multiplication by gamma drops, so every state is rebuilt bit
  for bit, at any depth, and the gradients are those of the float step at the forward
  pass's states. The forward pass's output is the carrier's, which differs from the plain
  float steps' by rounding to 2^-32 (2^-48 for float64) a step. Memory: the carrier (three
  8-byte integers a number for momentum, one for revnet) and, for momentum, about
  log2(1/gamma) bits a number a step (4 bytes a number each time a buffer fills up). The
  backward pass evaluates each function once a step: the inverse's evaluations, made with
  autograd on, serve the recomputation that differentiates the step, or, for a scheme
  that declares ``vjp`` (revnet; momentum with a fixed gamma), its hand-written
  vector-Jacobian product, which differentiates the evaluations' graphs without
  recomputing the step.
- ``invertible`` only: the float inverse, checked. The forward pass stores the state (and
  history) every K = ceil(sqrt(N)) steps of a run of N, so memory is O(sqrt(N)) states; the
  backward pass compares each rebuilt state with the stored one and raises
  :class:`ReversalDrift`, naming the step, when the largest difference relative to the
  stored state's largest entry exceeds :func:`drift_tolerance` (sqrt of the dtype's
  machine epsilon: 3.5e-4 in float32, 1.5e-8 in float64); below it the stored state
  replaces the rebuilt one, so drift does not build up across checks.

The steps' functions may draw random numbers (dropout in training mode): the forward pass
records the random state each evaluation of a function starts from (torch's CPU
generator, and the CUDA generator of the state's device for a CUDA state), and the
backward pass evaluates the function under that state again, in the inverse as in the
recomputation, so each evaluation sees its forward draws (revnet's inverse calls G before
F, so each function has its own record). The cost is one saved state per function
evaluation that draws: about 5 KB for the CPU generator (16 bytes more for a CUDA one),
e.g. 10 KB per revnet step with dropout, whatever the batch; an evaluation that draws
nothing (the generators stand still until the next) keeps none. The backward pass leaves
the caller's random streams where they were.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from odenets.solvers import Past, Record
from odenets.solvers.fixed_point import FixedPoint
from odenets.solvers.scheme import plus

from .step import Context, Hook, Step

RandomState = tuple[Tensor, Optional[Tensor]]
"""torch's CPU generator state, and the CUDA generator's of one device (None on the CPU)."""


def reversible_steps(steps: Sequence[Step], u: Tensor, past: Past, context: Context) -> tuple[Tensor, Past]:
    """``steps`` (consecutive, invertible) applied to (u, past), saving only the result.

    The backward pass rebuilds and re-runs the steps under the random states they ran
    from, so a step may draw random numbers (dropout in training mode) as long as each
    function draws on the CPU or on the state's device and depends on its input and its
    random state alone."""
    steps = list(steps)
    if not torch.is_grad_enabled():  # no backward pass to serve: nothing to save or record
        for step in steps:
            u, past = step.advance(u, past, context)
        return u, past
    per_step = [_parameters(s) for s in steps]
    params = list({id(p): p for ps in per_step for p in ps}.values())
    past = steps[0].scheme.own_records(steps[0].dt, u, past)  # the form the backward pass rebuilds
    flat, template = _flatten(past)
    shape: list = []  # the output history's template, filled by forward
    rebuild = _Exact if all(s.scheme.exact_reversal for s in steps) else _Checked
    given = _Context(context)
    out = _Reversible.apply(rebuild, steps, per_step, template, shape, len(flat), given, u, *flat, *given.tensors,
                            *params)
    return out[0], _unflatten(out[1:], shape[0])


class _Context:
    """The steps' context as the autograd function takes it: its tensors are inputs (a
    tensor that requires a gradient gets one, summed over the steps), the rest is kept."""

    def __init__(self, context: Context):
        leaves, self.spec = tree_flatten(dict(context))
        self.where = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]
        self.leaves = [None if isinstance(x, Tensor) else x for x in leaves]
        self.tensors = [leaves[i] for i in self.where]

    def build(self, tensors: Sequence[Tensor]) -> Context:
        """The context with ``tensors`` in place of its tensors."""
        leaves = list(self.leaves)
        for i, t in zip(self.where, tensors):
            leaves[i] = t
        return tree_unflatten(leaves, self.spec)


class ReversalDrift(RuntimeError):
    """A state rebuilt by inverting the steps is not the one the forward pass computed."""


def drift_tolerance(dtype: torch.dtype) -> float:
    """The largest relative drift the check of an inexact inverse lets pass: sqrt(eps)."""
    return torch.finfo(dtype).eps ** 0.5


def _parameters(step: Step) -> list[nn.Parameter]:
    ps = [p for m in step.functions for p in m.parameters()] + list(step.coefs.values())
    return [p for p in {id(p): p for p in ps}.values() if p.requires_grad]


def _flatten(past: Past) -> tuple[list[Tensor], tuple[bool, ...]]:
    """The tensors of a history, and which records hold an f-value."""
    return [x for r in past for x in r if x is not None], tuple(r.f is not None for r in past)


def _unflatten(flat: Sequence[Tensor], template: tuple[bool, ...]) -> tuple[Record, ...]:
    records, i = [], 0
    for has_f in template:
        records.append(Record(flat[i], flat[i + 1] if has_f else None))
        i += 2 if has_f else 1
    return tuple(records)


class _Exact:
    """States on a fixed-point carrier: each inverse step gives back the carrier its
    forward step was given, bit for bit."""

    exact = True

    def __init__(self, steps: Sequence[Step], u: Tensor, past: Past, context: Context):
        self.context = context
        self.fx = FixedPoint(u.dtype)
        self.scheme = steps[0].scheme  # one carrier for the run: its first step's scheme encodes it
        self.carrier = self.scheme.fixed_encode(steps[0].dt, u, past, self.fx)
        self.dt = steps[-1].dt

    def forward(self, i: int, step: Step) -> None:
        self.fx.step = i
        self.carrier = step.fixed_step(self.carrier, self.fx, context=self.context)

    def result(self) -> tuple[Tensor, Past]:
        out = self.scheme.fixed_decode(self.dt, self.carrier, self.fx)
        self.fx.verify()
        self.fx.checking = False  # the backward pass converts the very values this pass checked
        self.fx.remembering = True  # and decodes the states its inverse steps evaluated f at
        return out

    def pack(self) -> list[Tensor]:
        """The tensors the backward pass needs (handed to save_for_backward)."""
        self.at = [i for i, _ in self.fx.stack]
        tensors = [*self.carrier, *(t for _, t in self.fx.stack)]
        self.size, self.carrier, self.fx.stack = len(self.carrier), (), []
        return tensors

    def unpack(self, tensors: Sequence[Tensor]) -> None:
        self.carrier = tuple(tensors[:self.size])
        self.fx.stack = list(zip(self.at, tensors[self.size:]))

    def back(self, i: int, step: Step) -> None:
        """Invert step i."""
        self.fx.step = i
        self.carrier = step.fixed_step(self.carrier, self.fx, inverse=True, context=self.context)

    def rebuilt(self, step: Step) -> tuple[Tensor, Past]:
        """The state (and history) the last inverted step was given."""
        return self.scheme.fixed_decode(step.dt, self.carrier, self.fx)


class _Checked:
    """States rebuilt by the float inverse, checked against one stored every K steps."""

    exact = False

    def __init__(self, steps: Sequence[Step], u: Tensor, past: Past, context: Context):
        self.context = context
        self.state = (u, tuple(past))
        self.every = max(1, math.ceil(math.sqrt(len(steps))))
        self.kept: dict[int, tuple[Tensor, Past]] = {}

    def forward(self, i: int, step: Step) -> None:
        if i % self.every == 0:
            self.kept[i] = self.state
        self.state = step.advance(*self.state, self.context)

    def result(self) -> tuple[Tensor, Past]:
        return self.state

    def pack(self) -> list[Tensor]:
        states = [self.state, *self.kept.values()]
        self.at, self.templates = list(self.kept), [_flatten(p)[1] for _, p in states]
        tensors = [t for u, p in states for t in (u, *_flatten(p)[0])]
        self.state, self.kept = None, {}
        return tensors

    def unpack(self, tensors: Sequence[Tensor]) -> None:
        states, i = [], 0
        for template in self.templates:
            n = 1 + len(template) + sum(template)
            states.append((tensors[i], _unflatten(tensors[i + 1:i + n], template)))
            i += n
        self.state, self.kept = states[0], dict(zip(self.at, states[1:]))

    def rebuilt(self, step: Step) -> tuple[Tensor, Past]:
        return self.state

    def back(self, i: int, step: Step) -> None:
        u, past = step.inverse(*self.state, self.context)
        if i in self.kept:
            kept_u, kept_past = self.kept[i]
            pairs = [(u, kept_u)] + list(zip(_flatten(past[:len(kept_past)])[0], _flatten(kept_past)[0]))
            drift = max(float((a - b).abs().amax() / b.abs().amax().clamp_min(torch.finfo(b.dtype).tiny))
                        for a, b in pairs)
            tolerance = drift_tolerance(kept_u.dtype)
            if not drift <= tolerance:
                raise ReversalDrift(
                    f"memory_efficient=True: the state before step {step.n}, rebuilt by inverting the steps after "
                    f"it, drifted {drift:.3g} (largest difference relative to the largest entry) from the one the "
                    f"forward pass stored, beyond the tolerance {tolerance:.2g} (sqrt of {kept_u.dtype}'s eps): "
                    f"the inverse of {type(step.scheme).__name__} is not exact enough at this depth. Declare "
                    "exact_reversal with a fixed-point step (odenets.solvers.fixed_point), or use checkpoint=True")
            u, past = kept_u, kept_past
        self.state = (u, past)


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rebuild, steps, per_step, template, shape, n_past, given, u, *rest):
        past = _unflatten(rest[:n_past], template)
        n_context = len(given.tensors)
        context = given.build(rest[n_past:n_past + n_context])
        ctx.steps, ctx.per_step, ctx.n_past, ctx.given = steps, per_step, n_past, given
        ctx.index = {id(p): i for i, p in enumerate(rest[n_past + n_context:])}
        device = u.device.type  # the backward pass re-runs the steps under the same autocast as here
        ctx.autocast = dict(device_type=device, enabled=torch.is_autocast_enabled(device),
                            dtype=torch.get_autocast_dtype(device))
        ctx.device = u.device
        ctx.lengths = []  # how many records each step was handed
        calls: list = []  # every evaluation's record, in the order of the calls
        ctx.draws = [_Draws(u.device, calls) for _ in steps]
        ctx.rebuild = rebuild = rebuild(steps, u, past, context)
        length = len(past)
        with torch.no_grad():
            for i, (step, draws) in enumerate(zip(steps, ctx.draws)):
                ctx.lengths.append(length)
                with step.around_each_call(draws.record):
                    rebuild.forward(i, step)
                length = min(length + 1, step.scheme.history)
            u, past = rebuild.result()
            past = past[:length]
        _forget_unused(calls, u.device)
        flat, out_template = _flatten(past)
        shape.append(out_template)
        ctx.save_for_backward(*rest[n_past:n_past + n_context], *rebuild.pack())
        return (u, *flat)

    @staticmethod
    def backward(ctx, grad_u, *grad_past):
        n_context = len(ctx.given.tensors)
        given = ctx.saved_tensors[:n_context]
        ctx.rebuild.unpack(ctx.saved_tensors[n_context:])
        trained = [t.is_floating_point() and ctx.needs_input_grad[8 + ctx.n_past + i] for i, t in enumerate(given)]
        given = [_leaf(t) if r else t for t, r in zip(given, trained)]
        context, wrt = ctx.given.build(given), [t for t, r in zip(given, trained) if r]
        ctx.rebuild.context = context  # an exact inverse's evaluations serve the gradients, to the context too
        context_grads: list[Optional[Tensor]] = [None] * len(wrt)
        grads: list[Optional[Tensor]] = [None] * len(ctx.index)
        with _frozen_norm_statistics(ctx.steps), torch.autocast(**ctx.autocast), _forked_random(ctx.device):
            for i in reversed(range(len(ctx.steps))):
                step, ps, length, draws = ctx.steps[i], ctx.per_step[i], ctx.lengths[i], ctx.draws[i]
                targets = [*wrt, *ps]
                if ctx.rebuild.exact:  # the inverse's evaluations serve the gradients
                    made = _Made(draws.replay(), targets, step)
                    with torch.enable_grad(), step.around_each_call(made.evaluate):
                        ctx.rebuild.back(i, step)
                    if step.scheme.vjp and not step.coefs:
                        grad_u, grad_past = step.scheme.step_vjp(made.vjp, step.dt, grad_u, grad_past, length)
                        found = made.found
                    else:
                        grad_u, grad_past, found = _differentiate(step, ctx.rebuild.rebuilt(step), length, made.reuse,
                                                                  made.start, context, (grad_u, *grad_past), targets)
                else:
                    with torch.no_grad(), step.around_each_call(draws.replay()):
                        ctx.rebuild.back(i, step)
                    grad_u, grad_past, found = _differentiate(step, ctx.rebuild.rebuilt(step), length, draws.replay(),
                                                              _leaf, context, (grad_u, *grad_past), targets)
                context_grads = [plus(a, b) for a, b in zip(context_grads, found[:len(wrt)])]
                for p, gp in zip(ps, found[len(wrt):]):
                    j = ctx.index[id(p)]
                    grads[j] = plus(grads[j], gp)
        context_grads = iter(context_grads)
        given_grads = [next(context_grads) if r else None for r in trained]
        return (None, None, None, None, None, None, None, grad_u, *grad_past, *given_grads, *grads)


def _differentiate(step: Step, state: tuple[Tensor, Past], length: int, hook: Hook, start: Callable[[Tensor], Tensor],
                   context: Context, grads_out: Sequence[Optional[Tensor]], targets: Sequence[Tensor]):
    """Step recomputed from ``state`` (its history cut to the ``length`` records it was
    handed) with autograd on and ``hook`` around its evaluations, and differentiated from
    the gradients of its output: those of its state, of its records' tensors and of
    ``targets``. ``start`` makes the leaf the recomputation starts from."""
    u, past = state
    with torch.enable_grad(), step.around_each_call(hook):
        x = start(u)
        inputs, template = _flatten(past[:length])
        inputs = [_leaf(t) for t in inputs]
        out, out_past = step.advance(x, _unflatten(inputs, template), context)
        outputs = [out, *_flatten(out_past)[0]]
        pairs = [(o, g) for o, g in zip(outputs, grads_out) if g is not None and o.requires_grad]
        g = torch.autograd.grad([o for o, _ in pairs], (x, *inputs, *targets), [g for _, g in pairs],
                                allow_unused=True)
    return g[0], g[1:1 + len(inputs)], g[1 + len(inputs):]


class _Draws:
    """The random state each evaluation of one step's functions starts from: recorded in
    the forward pass, set again before the same evaluation in the backward pass."""

    def __init__(self, device: torch.device, calls: list):
        self.device, self.calls = device, calls
        # per function, per evaluation; None for one that drew nothing
        self.states: defaultdict[int, list[Optional[RandomState]]] = defaultdict(list)

    def record(self, i: int, call: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Evaluate function i at x, recording the random state it starts from."""
        self.states[i].append(_random_state(self.device))
        self.calls.append((self, i, len(self.states[i]) - 1))
        return call(x)

    def replay(self) -> Hook:
        """A hook that evaluates the k-th evaluation of function i under the state the
        forward pass's k-th evaluation of it started from (revnet's inverse evaluates G first)."""
        seen: Counter[int] = Counter()

        def hook(i: int, call: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
            state = self.states[i][seen[i]]
            seen[i] += 1
            if state is not None:  # it drew something
                cpu, cuda = state
                torch.set_rng_state(cpu)
                if cuda is not None:
                    torch.cuda.set_rng_state(cuda, self.device)
            return call(x)
        return hook


class _Made:
    """The evaluations an exact inverse step makes, with autograd on, kept for the
    recomputation that differentiates the step, which takes them instead of evaluating
    again. An exact inverse evaluates each function at the points its forward step did
    (undoing x + f(y) means subtracting the same f(y)), in the same order for each
    function, so the k-th evaluation of function i in the recomputation is the inverse's
    k-th: the gradients are the functions' at the forward pass's own points, and each
    function is evaluated once in the backward pass instead of twice. A scheme's
    ``step_vjp`` differentiates them directly (:meth:`vjp`)."""

    def __init__(self, replay: Hook, targets: Sequence[Tensor], step: Step):
        self.replay, self.targets, self.step = replay, list(targets), step
        self.made: defaultdict[int, list[tuple[Tensor, Tensor]]] = defaultdict(list)
        self.used: Counter[int] = Counter()
        self.found: list[Optional[Tensor]] = [None] * len(self.targets)  # the targets' gradients from :meth:`vjp`

    def evaluate(self, i: int, call: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        leaf = _leaf(x)
        out = self.replay(i, call, leaf)
        self.made[i].append((leaf, out))
        return out.detach()

    def start(self, u: Tensor) -> Tensor:
        """The leaf the recomputation starts from at u: the one an evaluation was made at,
        if it is u itself (the same memory: the inverse evaluated f at the very state it
        rebuilt, as momentum's does), so that evaluation's graph is part of the
        recomputation's and one autograd call differentiates the step, with no nested one
        for f; else a new leaf."""
        for leaf, _ in (pair for pairs in self.made.values() for pair in pairs):
            if (leaf.data_ptr(), leaf.shape, leaf.stride(), leaf.dtype) == (u.data_ptr(), u.shape, u.stride(), u.dtype):
                return leaf
        return _leaf(u)

    def _evaluation(self, i: int, k: int) -> tuple[Tensor, Tensor]:
        if k >= len(self.made[i]):
            raise RuntimeError(f"step {self.step.n}: {type(self.step.scheme).__name__}.fixed_inverse evaluated function "
                               f"{i} {len(self.made[i])} time(s), its step more: an exact inverse evaluates each "
                               "function at the points its step did, in the same order")
        return self.made[i][k]

    def vjp(self, i: int, k: int, g: Tensor) -> Optional[Tensor]:
        """The gradient to the input of function i's k-th evaluation, given g, its
        output's (None where the output does not depend on it); the targets' gradients go
        to :attr:`found`."""
        leaf, out = self._evaluation(i, k)
        if not out.requires_grad:
            return None
        gs = torch.autograd.grad(out, (leaf, *self.targets), g.to(out.dtype), allow_unused=True)
        self.found = [plus(a, b) for a, b in zip(self.found, gs[1:])]
        return gs[0]

    def reuse(self, i: int, call: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        k = self.used[i]
        self.used[i] += 1
        leaf, out = self._evaluation(i, k)
        if x is leaf:  # made at the recomputation's own input: its graph is the recomputation's
            return out
        if not out.requires_grad:  # f ignored its input and has no trained weights: a constant
            return out.detach()
        return _Reused.apply((leaf, out, self.targets), x, *self.targets)


class _Reused(torch.autograd.Function):
    """An evaluation made before, standing for f(x) in the recomputation: its value, and
    its gradients (to x, the weights and the context) from its own graph."""

    @staticmethod
    def forward(ctx, made, x, *targets):
        ctx.made = made
        return made[1].detach()

    @staticmethod
    def backward(ctx, grad):
        leaf, out, targets = ctx.made
        del ctx.made
        return (None, *torch.autograd.grad(out, (leaf, *targets), grad, allow_unused=True))


def _leaf(x: Tensor) -> Tensor:
    """x's value as a new leaf that requires a gradient."""
    return x.detach().requires_grad_(True)


def _random_state(device: torch.device) -> RandomState:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _forget_unused(calls: list, device: torch.device) -> None:
    """Drop the record of every evaluation that drew nothing (the generators stood still
    until the next evaluation): a network without dropout keeps no random states."""
    states = [draws.states[i][k] for draws, i, k in calls] + [_random_state(device)]
    for (draws, i, k), state, after in zip(calls, states, states[1:]):
        if torch.equal(state[0], after[0]) and (state[1] is None or torch.equal(state[1], after[1])):
            draws.states[i][k] = None


def _forked_random(device: torch.device):
    """A block whose draws leave the CPU generator and the device's unchanged after it."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda")


@contextmanager
def _frozen_norm_statistics(steps: Sequence[Step]):
    """Batch-norm layers keep their running statistics while the backward pass re-runs
    the steps: the forward pass has already counted this batch once."""
    norms = {id(m): m for s in steps for f in s.functions for m in f.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training}.values()
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
