"""Backpropagation through invertible steps without storing the states.

Gomez et al. (2017), "The Reversible Residual Network": the backward pass rebuilds each
step's input from its output by inverting the step, recomputes the step with autograd
on, and backpropagates through it alone. Only the last state is saved, so activation
memory does not grow with the number of steps.
"""
from __future__ import annotations

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
        for n in reversed(range(ctx.start, ctx.end)):
            ps = ctx.per_step[n - ctx.start]
            with torch.no_grad():
                u = net.inverse_step(n, u)
            with torch.enable_grad():
                x = u.detach().requires_grad_(True)
                out = net.step(n, x)
                g = torch.autograd.grad(out, (x, *ps), grad, allow_unused=True)
            grad = g[0]
            for p, gp in zip(ps, g[1:]):
                if gp is not None:
                    i = index[id(p)]
                    grads[i] = gp if grads[i] is None else grads[i] + gp
        return (grad, None, None, None, None, *grads)
