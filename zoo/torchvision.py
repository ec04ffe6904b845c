"""torchvision ResNets, ResNeXts and Wide-ResNets under any solver: an alias of
:func:`odenets.convert` kept from before it existed."""
from __future__ import annotations

from typing import Union

from torch import nn

import odenets
from odenets import solvers


def from_torchvision(model: nn.Module, solver: Union[str, solvers.SolverSpec] = "euler", **options) -> nn.Module:
    """``odenets.convert(model, solver, **options)`` for a torchvision ResNet/ResNeXt/Wide-ResNet
    (any depth, width, groups): a copy whose stages ``layer1``..``layer4`` are ODENets over
    its own blocks, with its weights, device, dtype and train/eval mode.

    In eval mode it computes the same function for solver='euler', and for solver='lm',
    whose k_n start at 0 (``k_init=0.0`` unless given), where the LM step is the Euler
    step: a pretrained ResNet, unchanged, to fine-tune into an LM-ResNet.
    """
    import torchvision.models.resnet as tv

    if not isinstance(model, tv.ResNet):
        raise TypeError(f"from_torchvision takes a torchvision.models.ResNet, got {type(model).__name__}")
    return odenets.convert(model, solver, **options)
