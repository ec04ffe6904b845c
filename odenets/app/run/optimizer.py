"""The run's optimizer: SGD, the schemes' trained coefficients in a group of their own.

LM-ResNet's k_n are not weights of a layer: weight decay would pull them towards 0, the
plain ResNet, and their gradient sums over every entry of the feature maps they
multiply. So they get their own learning rate (``--k-lr``, default the base rate) and
weight decay (``--k-weight-decay``, default none).
"""
from __future__ import annotations

import torch
from torch import nn

from odenets import ODENet

from ..settings.config import Config


def scheme_coefficients(model: nn.Module) -> list[nn.Parameter]:
    """The trained coefficients of the scheme of every ODENet in ``model`` (LM-ResNet's
    k_n, FractalNet's weights), found by asking the nets for them."""
    return [p for m in model.modules() if isinstance(m, ODENet) for p in m.coefficients()]


def sgd(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with momentum over ``model``: the weights with ``cfg.lr`` and ``cfg.weight_decay``,
    then, if the model has any, the scheme coefficients with ``cfg.k_lr`` (None: ``cfg.lr``)
    and ``cfg.k_weight_decay`` (None: 0). Each group keeps its rate before the decays as
    ``base_lr``."""
    coefficients = scheme_coefficients(model)
    own = {id(p) for p in coefficients}
    groups = [{"params": [p for p in model.parameters() if id(p) not in own], "base_lr": cfg.lr,
               "weight_decay": cfg.weight_decay}]
    if coefficients:
        groups.append({"params": coefficients, "base_lr": cfg.lr if cfg.k_lr is None else cfg.k_lr,
                       "weight_decay": cfg.k_weight_decay or 0.0})
    for group in groups:
        group["lr"] = group["base_lr"]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
