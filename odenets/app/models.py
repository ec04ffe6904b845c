"""A run's network from the zoo, and what the ablation reports about it."""
from __future__ import annotations

import torch
from torch import nn

from odenets import ODENet

from .config import Config
from .errors import UsageError


def build(cfg: Config, num_classes: int, in_chans: int) -> nn.Module:
    """``zoo.create`` for the run's model, solver and options."""
    import zoo

    cfg.check()
    try:
        return zoo.create(cfg.model, num_classes=num_classes, in_chans=in_chans, solver=cfg.solver, **cfg.options)
    except (ValueError, TypeError) as e:
        options = ", ".join(f"{k}={v!r}" for k, v in cfg.options.items()) or "no options"
        raise UsageError(f"cannot build {cfg.model} with solver {cfg.label} and {options}: {e}") from None


def parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def evaluations(model: nn.Module, sample: torch.Tensor) -> int:
    """f-evaluations in one forward pass: calls of the residual functions of every
    ODENet in ``model``, counted on ``sample`` in eval mode. For a fixed-step scheme this
    is sum(steps * scheme.evals), less what a shape-changing step saves (it evaluates
    its f once); it also counts the evaluations of adaptive solvers."""
    calls = [0]

    def count(*_):
        calls[0] += 1

    hooks = [fn.register_forward_hook(count)
             for net in model.modules() if isinstance(net, ODENet)
             for step in net.fns for fn in (step if isinstance(step, nn.ModuleList) else [step])]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(sample)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return calls[0]
