"""A residual network as stem -> stages -> head, each stage one ODENet over its blocks.

Block n of a stage is the residual function f_n of the stage's ODENet; the block that
changes the shape (stride, more channels) carries the shortcut P and takes the ResNet
step u_{n+1} = P(u_n) + f_n(u_n). The stages are chained with :class:`odenets.Carry`, so
a multistep scheme's recurrence goes on inside the next stage with P(u_n) as the state
before u_{n+1}, as in the LM-ResNet authors' code:
u_{n+2} = (1 - k) u_{n+1} + k P(u_n) + f_{n+1}(u_{n+1}).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import Tensor, nn

import solvers
from odenets import Carry, ODENet

from .blocks import BasicBlock, Bottleneck, PreActBasic, PreActBottleneck
from .shortcuts import Halves, shortcut

MODEL_OPTIONS = ("preact", "noise", "survival", "dt", "checkpoint", "memory_efficient")
"""Options every zoo model takes besides its solver's own (e.g. lm's k_init, channels)."""


@dataclass(frozen=True)
class Stage:
    """``blocks`` residual blocks producing ``channels`` channels; the first has ``stride``.
    ``width`` is a bottleneck block's inner width (0 for basic blocks)."""

    blocks: int
    channels: int
    stride: int = 1
    width: int = 0


class ResNet(nn.Module):
    """stem -> stages -> head, the stages chained so that a multistep scheme's history
    goes on across their boundaries."""

    def __init__(self, stem: nn.Module, stages: Sequence[ODENet], head: nn.Module):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        """The last stage's state."""
        carry = Carry(self.stem(x))
        for stage in self.stages:
            carry = stage.integrate(carry)
        return carry.u

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def build(stages: Sequence[Stage], *, block: str, stem: str, stem_channels: int, shortcut_kind: str,
          num_classes: int, in_chans: int = 3, groups: int = 1, solver: str = "euler",
          preact: Optional[bool] = None, noise: Optional[str] = None,
          survival: Optional[Union[float, Sequence[float]]] = None, dt: float = 1.0, checkpoint: bool = False,
          memory_efficient: bool = False, **scheme_options) -> ResNet:
    """Assemble a :class:`ResNet` whose stages integrate with ``solver``.

    ``block`` is ``'basic'`` or ``'bottleneck'``; ``stem`` is ``'cifar'`` (3x3 conv) or
    ``'imagenet'`` (7x7/2 conv and 3x3/2 max-pool); ``shortcut_kind`` is ``'pad'``
    (option A) or ``'projection'``. Post-activation networks (``preact`` False, the
    default) apply a ReLU after each addition, pre-activation ones end with BN-ReLU in
    the head. ``solver='revnet'`` turns each block into a pair (F, G) of pre-activation
    blocks on half the channels. ``survival`` (with ``noise='stochastic_depth'``) is
    p_L of a linear decay over the whole network's depth, or one probability per block.
    The remaining options go to the scheme (:func:`solvers.get`); ``channels=True`` gives
    lm one k per channel of each stage.
    """
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    pair = _check_solver(solver, scheme_options)
    if preact is None:
        preact = pair
    if pair and not preact:
        raise ValueError("solver='revnet' needs pre-activation blocks (a ReLU after the addition would make the "
                         "steps non-invertible); drop preact=False")
    if noise == "shake_shake":
        raise ValueError("noise='shake_shake' mixes two branches per step; zoo models have one block per step "
                         "(use noise='stochastic_depth', or ODENet with pairs of blocks)")
    depth = sum(s.blocks for s in stages)
    if noise == "stochastic_depth":
        ps = solvers.survival_probabilities(depth, 0.5 if survival is None else survival)
    elif survival is not None:
        raise ValueError(f"survival={survival!r} is the keep probability of noise='stochastic_depth'; "
                         f"this model has noise={noise!r}")
    per_channel = scheme_options.get("channels") is True

    in_ch, first, nets = stem_channels, 0, []
    for i, spec in enumerate(stages):
        make = _block(block, preact, spec.width // 2 if pair else spec.width, groups)
        fns = []
        for j in range(spec.blocks):
            stride = spec.stride if j == 0 else 1
            changes = in_ch != spec.channels or stride != 1
            if pair:  # F and G on half the channels; F of the stage's first block changes the shape
                i2, o2 = in_ch // 2, spec.channels // 2
                p = Halves(shortcut(shortcut_kind, i2, o2, stride)) if changes else None
                fns.append((make(i2, o2, stride, p), make(o2, o2, 1, None)))
            else:
                p = shortcut(shortcut_kind, in_ch, spec.channels, stride) if changes else None
                fns.append(make(in_ch, spec.channels, stride, p))
            in_ch = spec.channels
        options = dict(scheme_options, channels=spec.channels) if per_channel else scheme_options
        if noise == "stochastic_depth":
            options = dict(options, survival=ps[first:first + spec.blocks])
        nets.append(ODENet(fns, solver, dt=dt, noise=noise, activation=None if preact else nn.ReLU(inplace=True),
                           checkpoint=checkpoint, memory_efficient=memory_efficient, carry_in=i > 0, **options))
        first += spec.blocks

    model = ResNet(_stem(stem, in_chans, stem_channels, preact), nets, _head(in_ch, num_classes, preact))
    _init(model)
    return model


def _check_solver(solver: str, scheme_options: dict) -> bool:
    """Validate the solver and its options early; whether it takes a pair (F, G) per step."""
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a name (str), one of: {', '.join(solvers.available())}")
    if solver not in solvers.available():
        raise ValueError(f"unknown solver {solver!r}; known solvers: {', '.join(solvers.available())}")
    if solvers.is_adaptive(solver):
        raise ValueError(f"adaptive solver {solver!r} integrates one shared f; zoo models have a block per step "
                         "(choose a fixed-step solver, or use odenets.ODENet directly)")
    options = dict(scheme_options)
    if "channels" in options:  # each stage's width sizes its k; here the scheme only shows it takes channels
        if options["channels"] is not True:
            raise ValueError(f"channels={options['channels']!r}: a zoo model takes channels=True, one k per channel "
                             "of each stage (for lm), or no channels option; the counts are the stages' widths")
        options["channels"] = 1
    try:
        scheme = solvers.get(solver, **options)
    except ValueError as err:
        raise ValueError(f"{err}; model options: {', '.join(MODEL_OPTIONS)}") from None
    if scheme.functions == 2 and solver != "revnet":
        raise ValueError(f"solver {solver!r} takes two functions per step; zoo models build pairs for 'revnet' only")
    return scheme.functions == 2


def _block(kind: str, preact: bool, width: int, groups: int):
    """A constructor (in_channels, out_channels, stride, shortcut) -> residual function."""
    if kind == "basic":
        cls = PreActBasic if preact else BasicBlock
        return lambda i, o, s, p: cls(i, o, s, shortcut=p)
    if kind == "bottleneck":
        cls = PreActBottleneck if preact else Bottleneck
        return lambda i, o, s, p: cls(i, width, o, s, groups, shortcut=p)
    raise ValueError(f"unknown block {kind!r}; choose 'basic' or 'bottleneck'")


def _stem(kind: str, in_chans: int, channels: int, preact: bool) -> nn.Sequential:
    if kind == "cifar":
        layers = [("conv", nn.Conv2d(in_chans, channels, 3, padding=1, bias=False))]
        if not preact:  # a pre-activation network normalises at the start of each block
            layers += [("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU(inplace=True))]
    elif kind == "imagenet":
        layers = [("conv", nn.Conv2d(in_chans, channels, 7, stride=2, padding=3, bias=False)),
                  ("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU(inplace=True)),
                  ("pool", nn.MaxPool2d(3, stride=2, padding=1))]
    else:
        raise ValueError(f"unknown stem {kind!r}; choose 'cifar' or 'imagenet'")
    return nn.Sequential(OrderedDict(layers))


def _head(channels: int, num_classes: int, preact: bool) -> nn.Sequential:
    layers = [("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU(inplace=True))] if preact else []
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)), ("fc", nn.Linear(channels, num_classes))]
    return nn.Sequential(OrderedDict(layers))


def _init(model: nn.Module) -> None:
    """torchvision's initialisation: He-normal (fan-out) convolutions, unit BN scale."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
