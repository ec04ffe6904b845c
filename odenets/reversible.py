"""Backpropagation through invertible steps without storing the states.

Gomez et al. (2017), "The Reversible Residual Network": the backward pass rebuilds each
step's input from its output by inverting the step, recomputes the step with autograd
on, and backpropagates through it alone. Only the last state is saved, so activation
memory does not grow with the number of steps.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn


def reversible_steps(net: nn.Module, u: Tensor, start: int, end: int) -> Tensor:
    """Steps start..end-1 of ``net`` (an ODENet whose scheme has ``inverse``) applied to u."""
    per_step = [_parameters(net.fns[0 if net.shared else n]) for n in range(start, end)]
    params = list({id(p): p for ps in per_step for p in ps}.values())
    return _Reversible.apply(u, net, start, end, per_step, *params)


def _parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, net, start, end, per_step, *params):
        ctx.net, ctx.start, ctx.end, ctx.per_step = net, start, end, per_step
        ctx.index = {id(p): i for i, p in enumerate(params)}
        with torch.no_grad():
            for n in range(start, end):
                u = net.step(n, u)
        ctx.save_for_backward(u)
        return u

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        net, index = ctx.net, ctx.index
        grads: list = [None] * len(index)
        with _frozen_norm_statistics(net.fns):
            for n in reversed(range(ctx.start, ctx.end)):
                ps = ctx.per_step[n - ctx.start]
                with torch.no_grad():
                    u = net.inverse_step(n, u)
                with torch.enable_grad():
                    x = u.detach().requires_grad_(True)
                    g = torch.autograd.grad(net.step(n, x), (x, *ps), grad, allow_unused=True)
                grad = g[0]
                for p, gp in zip(ps, g[1:]):
                    if gp is not None:
                        i = index[id(p)]
                        grads[i] = gp if grads[i] is None else grads[i] + gp
        return (grad, None, None, None, None, *grads)


@contextmanager
def _frozen_norm_statistics(module: nn.Module):
    """Batch-norm layers keep their running statistics while the backward pass re-runs
    the steps: the forward pass has already counted this batch once."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
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
