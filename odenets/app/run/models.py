"""A run's network from the zoo, or from its checkpoint, and what the ablation reports about it."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
from torch import nn

from odenets import ODENet

from ..errors import CheckpointError, UsageError
from ..settings.config import Config, known
from . import checkpoint


def build(cfg: Config, num_classes: int, in_chans: int) -> nn.Module:
    """``zoo.create`` for the run's model, solver and options (of a checked Config).

    A model, option or value that the zoo refuses is a UsageError; any other error is a
    bug and surfaces as itself."""
    from odenets import zoo

    def refused(e: Exception) -> UsageError:
        options = ", ".join(f"{k}={v!r}" for k, v in cfg.options.items()) or "no options"
        return UsageError(f"cannot build {cfg.model} with solver {cfg.label} and {options}: {e}")

    try:
        zoo.check_options(cfg.model, **cfg.options)
    except (ValueError, TypeError) as e:  # an unknown option, or one of the wrong type: the user's
        raise refused(e) from None
    try:
        return zoo.create(cfg.model, num_classes=num_classes, in_chans=in_chans, solver=cfg.solver, **cfg.options)
    except ValueError as e:
        raise refused(e) from None


def from_checkpoint(path: Union[str, Path]) -> tuple[nn.Module, Config, dict]:
    """The model of a checkpoint written by `odenets train` (a file, or the --out folder
    holding checkpoint.pt), rebuilt from the zoo with the saved weights, in eval mode on
    the CPU; with the run's Config and the checkpoint (:func:`checkpoint.load`).

    Saved settings this odenets does not know are ignored (:func:`config.known`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    state = checkpoint.load(path)
    cfg = Config(**known(state["config"]))
    if not cfg.model:
        raise CheckpointError(f"{path} does not name its model (config 'model' is empty)")
    model = build(cfg, *sizes(state))
    checkpoint.restore(model, state["model"], path, "model")
    return model.eval(), cfg, state


def sizes(state: dict) -> tuple[int, int]:
    """A checkpoint's (num_classes, in_chans): saved with the weights, or in a checkpoint
    older than those fields, the shapes of the zoo model's head.fc and stem.conv weights."""
    if "num_classes" in state and "in_chans" in state:
        return state["num_classes"], state["in_chans"]
    head, stem = state["model"].get("head.fc.weight"), state["model"].get("stem.conv.weight")
    if head is None or head.dim() != 2 or stem is None or stem.dim() != 4:
        raise CheckpointError(f"{state['path']} saves neither num_classes and in_chans nor the weights head.fc and "
                              "stem.conv of a zoo model to read them from")
    return head.shape[0], stem.shape[1]


def check_test_set(state: dict, ds, data: str, data_dir: str) -> None:
    """Raise unless ``ds``, the data set ``data`` in ``data_dir``, is the one the checkpoint
    was tested on: its classes and input channels, class names and held-out split."""
    classes, chans = sizes(state)
    if (ds.num_classes, ds.in_chans) != (classes, chans):
        raise UsageError(f"{state['path']} holds a model for {classes} classes and {chans} input channels; the "
                         f"{data} test set in {data_dir} has {ds.num_classes} and {ds.in_chans}")
    checkpoint.check_classes(state, ds.classes, f"the {data} test set in {data_dir}")
    checkpoint.check_split(state, ds.description.split, f"the {data} data in {data_dir}")


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

    functions = {id(f): f for net in model.modules() if isinstance(net, ODENet) for step in net.layers
                 for f in step.functions}
    functions.update({id(net.fns[0]): net.fns[0] for net in model.modules()
                      if isinstance(net, ODENet) and not net.layers})  # an adaptive solver's f
    hooks = [f.register_forward_hook(count) for f in functions.values()]
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
