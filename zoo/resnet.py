"""A residual network as stem -> stages -> head, each stage one ODENet over its blocks.

Block n of a stage is the residual function f_n of the stage's ODENet; the step of the
block that changes the shape (stride, more channels) has the shortcut P and takes the ResNet
step u_{n+1} = P(u_n) + f_n(u_n). The stages are chained with :class:`odenets.Carry`, so
a multistep scheme's recurrence goes on inside the next stage with P(u_n) as the state
before u_{n+1}, as in the LM-ResNet authors' code:
u_{n+2} = (1 - k) u_{n+1} + k P(u_n) + f_{n+1}(u_{n+1}).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from torch import Tensor, nn

from odenets import solvers
from odenets import Carry, ODENet

from .blocks import BasicBlock, Bottleneck, PreActBasic, PreActBottleneck
from .shortcuts import Halves, shortcut

MODEL_OPTIONS = ("preact", "dt", "checkpoint", "memory_efficient", "channels")
"""Options every zoo model takes; its solver's (noise, survival, lm's k_init, ...) belong to
the :class:`solvers.SolverSpec`."""


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
          num_classes: int, in_chans: int = 3, groups: int = 1, solver: Union[str, solvers.SolverSpec] = "euler",
          preact: Optional[bool] = None, dt: float = 1.0, checkpoint: bool = False, memory_efficient: bool = False,
          channels: Any = None) -> ResNet:
    """Assemble a :class:`ResNet` whose stages integrate with ``solver`` (a
    :class:`solvers.SolverSpec`, or its text, read here once).

    ``block`` is ``'basic'`` or ``'bottleneck'``; ``stem`` is ``'cifar'`` (3x3 conv) or
    ``'imagenet'`` (7x7/2 conv and 3x3/2 max-pool); ``shortcut_kind`` is ``'pad'``
    (option A) or ``'projection'``. Post-activation networks (``preact`` False, the
    default) apply a ReLU after each addition, pre-activation ones end with BN-ReLU in
    the head. A scheme whose pair of functions splits the state (``revnet``) turns each
    block into a pair (F, G) of pre-activation blocks on half the channels. The solver's
    ``survival`` (with stochastic depth) is p_L of a linear decay over the whole network's
    depth, or one probability per block. ``channels=True`` gives lm one k per channel of
    each stage.
    """
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if channels not in (None, True):
        raise ValueError(f"channels={channels!r}: a zoo model takes channels=True, one k per channel of each "
                         "stage (for lm), or no channels option; the counts are the stages' widths")
    spec = solvers.SolverSpec.parse(solver)
    if channels:  # each stage's width sizes its k; here the scheme only shows it takes channels
        try:
            spec.replace(options={**spec.options, "channels": 1})
        except ValueError as err:
            raise ValueError(f"{err}; model options: {', '.join(MODEL_OPTIONS)}") from None
    if spec.adaptive:
        raise ValueError(f"adaptive solver {spec.name!r} integrates one shared f; zoo models have a block per step "
                         "(choose a fixed-step solver, or use odenets.ODENet directly)")
    if spec.functions != spec.scheme.functions:
        raise ValueError(f"noise={spec.noise!r} mixes {spec.functions} branches per step; zoo models have one block "
                         "per step (use stochastic depth, or ODENet with pairs of blocks)")
    pair = spec.scheme.splits_state
    if spec.scheme.functions > 1 and not pair:
        raise ValueError(f"solver {spec.name!r} takes {spec.scheme.functions} functions per step; zoo models build "
                         "pairs only for schemes that split the state into halves ('revnet')")
    if preact is None:
        preact = pair
    if pair and not preact:
        raise ValueError(f"solver {spec.name!r} needs pre-activation blocks (a ReLU after the addition would make "
                         "the steps non-invertible); drop preact=False")
    depth = sum(s.blocks for s in stages)
    ps = spec.survival_probabilities(depth) if spec.survival is not None else None

    in_ch, first, nets = stem_channels, 0, []
    for i, stage in enumerate(stages):
        make = _block(block, preact, stage.width // 2 if pair else stage.width, groups)
        fns, shortcuts = [], []
        for j in range(stage.blocks):
            stride = stage.stride if j == 0 else 1
            changes = in_ch != stage.channels or stride != 1
            if pair:  # F and G on half the channels; F of the stage's first block changes the shape
                i2, o2 = in_ch // 2, stage.channels // 2
                fns.append((make(i2, o2, stride), make(o2, o2, 1)))
                shortcuts.append(Halves(shortcut(shortcut_kind, i2, o2, stride)) if changes else None)
            else:
                fns.append(make(in_ch, stage.channels, stride))
                shortcuts.append(shortcut(shortcut_kind, in_ch, stage.channels, stride) if changes else None)
            in_ch = stage.channels
        stage_spec = spec
        if channels:
            stage_spec = stage_spec.replace(options={**spec.options, "channels": stage.channels})
        if ps is not None:
            stage_spec = stage_spec.replace(survival=tuple(ps[first:first + stage.blocks]))
        nets.append(ODENet(fns, stage_spec, dt=dt, shortcuts=shortcuts,
                           activation=None if preact else nn.ReLU(inplace=True), checkpoint=checkpoint,
                           memory_efficient=memory_efficient, carry_in=i > 0))
        first += stage.blocks

    model = ResNet(_stem(stem, in_chans, stem_channels, preact), nets, _head(in_ch, num_classes, preact))
    _init(model)
    return model


def _block(kind: str, preact: bool, width: int, groups: int):
    """A constructor (in_channels, out_channels, stride) -> residual function."""
    if kind == "basic":
        cls = PreActBasic if preact else BasicBlock
        return lambda i, o, s: cls(i, o, s)
    if kind == "bottleneck":
        cls = PreActBottleneck if preact else Bottleneck
        return lambda i, o, s: cls(i, width, o, s, groups)
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
