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
    """Steps start..end-1 of ``net`` (an ODENet whose scheme has ``inverse``) applied to u.

    The steps must be deterministic functions of their input, so that the backward pass
    can rebuild and re-run them: a dropout layer in training mode is refused."""
    if net.training and any(isinstance(m, nn.modules.dropout._DropoutNd) for m in net.fns.modules()):
        raise ValueError("memory_efficient=True re-runs the steps in the backward pass, which a dropout layer "
                         "would run with other masks; remove the dropout or use memory_efficient=False")
    per_step = [_parameters(net.fn(n)) for n in range(start, end)]
    params = list({id(p): p for ps in per_step for p in ps}.values())
    return _Reversible.apply(u, net, start, end, per_step, *params)


def _parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, net, start, end, per_step, *params):
        ctx.net, ctx.start, ctx.end, ctx.per_step = net, start, end, per_step
        ctx.index = {id(p): i for i, p in enumerate(params)}
        device = u.device.type  # the backward pass re-runs the steps under the same autocast as here
        ctx.autocast = dict(device_type=device, enabled=torch.is_autocast_enabled(device),
                            dtype=torch.get_autocast_dtype(device))
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
        with _frozen_norm_statistics(net.fns), torch.autocast(**ctx.autocast):
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
