"""Backpropagation through invertible steps without storing the states.

Gomez et al. (2017), "The Reversible Residual Network": the backward pass rebuilds each
step's input (u_n and the history it read) from its output by inverting the step
(:meth:`Step.inverse`), recomputes the step with autograd on, and backpropagates through
it alone. Only the last state and history are saved, so activation memory does not grow
with the number of steps. Any scheme that declares ``invertible`` runs here, one-step
(revnet) or multistep (momentum) alike.

The steps' functions may draw random numbers (dropout in training mode): the forward pass
records the random state each evaluation of a function starts from (torch's CPU
generator, and the CUDA generator of the state's device for a CUDA state), and the
backward pass evaluates the function under that state again, in the inverse as in the
recomputation, so each evaluation sees its forward draws (revnet's inverse calls G before
F, so each function has its own record). The cost is one saved state per function
evaluation: about 5 KB for the CPU generator (16 bytes more for a CUDA one), e.g. 10 KB
per revnet step, whatever the batch. The backward pass leaves the caller's random streams
where they were.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from odenets.solvers import Past, Record

from .step import Context, Step

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
    if context:
        raise NotImplementedError("memory_efficient=True with a context: not yet")
    per_step = [_parameters(s) for s in steps]
    params = list({id(p): p for ps in per_step for p in ps}.values())
    flat, template = _flatten(past)
    shape: list = []  # the output history's template, filled by forward
    out = _Reversible.apply(steps, per_step, template, shape, len(flat), u, *flat, *params)
    return out[0], _unflatten(out[1:], shape[0])


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


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, steps, per_step, template, shape, n_past, u, *rest):
        past = _unflatten(rest[:n_past], template)
        ctx.steps, ctx.per_step, ctx.n_past = steps, per_step, n_past
        ctx.index = {id(p): i for i, p in enumerate(rest[n_past:])}
        device = u.device.type  # the backward pass re-runs the steps under the same autocast as here
        ctx.autocast = dict(device_type=device, enabled=torch.is_autocast_enabled(device),
                            dtype=torch.get_autocast_dtype(device))
        ctx.device = u.device
        ctx.lengths = []  # how many records each step was handed
        ctx.draws = [_Draws(u.device) for _ in steps]
        with torch.no_grad():
            for step, draws in zip(steps, ctx.draws):
                ctx.lengths.append(len(past))
                with step.before_each_call(draws.record):
                    u, past = step.advance(u, past)
        flat, out_template = _flatten(past)
        shape.append(out_template)
        ctx.template = out_template
        ctx.save_for_backward(u, *flat)
        return (u, *flat)

    @staticmethod
    def backward(ctx, grad_u, *grad_past):
        u, *flat = ctx.saved_tensors
        past = _unflatten(flat, ctx.template)
        grads: list[Optional[Tensor]] = [None] * len(ctx.index)
        with _frozen_norm_statistics(ctx.steps), torch.autocast(**ctx.autocast), _forked_random(ctx.device):
            for step, ps, length, draws in zip(reversed(ctx.steps), reversed(ctx.per_step), reversed(ctx.lengths),
                                               reversed(ctx.draws)):
                with torch.no_grad(), step.before_each_call(draws.replay()):
                    u, past = step.inverse(u, past)
                    past = past[:length]
                with torch.enable_grad(), step.before_each_call(draws.replay()):
                    x = u.detach().requires_grad_(True)
                    inputs, template = _flatten(past)
                    inputs = [t.detach().requires_grad_(True) for t in inputs]
                    out, out_past = step.advance(x, _unflatten(inputs, template))
                    outputs = [out, *_flatten(out_past)[0]]
                    pairs = [(o, g) for o, g in zip(outputs, (grad_u, *grad_past)) if g is not None and o.requires_grad]
                    g = torch.autograd.grad([o for o, _ in pairs], (x, *inputs, *ps), [g for _, g in pairs],
                                            allow_unused=True)
                grad_u, grad_past = g[0], g[1:1 + len(inputs)]
                for p, gp in zip(ps, g[1 + len(inputs):]):
                    if gp is not None:
                        i = ctx.index[id(p)]
                        grads[i] = gp if grads[i] is None else grads[i] + gp
        return (None, None, None, None, None, grad_u, *grad_past, *grads)


class _Draws:
    """The random state each evaluation of one step's functions starts from: recorded in
    the forward pass, set again before the same evaluation in the backward pass."""

    def __init__(self, device: torch.device):
        self.device = device
        self.states: defaultdict[int, list[RandomState]] = defaultdict(list)  # per function, per evaluation

    def record(self, i: int) -> None:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.states[i].append((torch.get_rng_state(), cuda))

    def replay(self) -> Callable[[int], None]:
        """A hook that gives the k-th evaluation of function i the state the forward
        pass's k-th evaluation of it started from (revnet's inverse evaluates G first)."""
        seen: Counter[int] = Counter()

        def hook(i: int) -> None:
            cpu, cuda = self.states[i][seen[i]]
            seen[i] += 1
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, self.device)
        return hook


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
