"""The LM-ResNet authors' CIFAR networks (Lu, Zhong, Li & Dong 2018, their MResNet code).

They differ from He et al.'s CIFAR ResNets (the zoo's ``resnetN``) in the network around
the scheme, which sets what the LM step sees at each downsampling block:

- stem: one 3x3 convolution, 3 -> 16 channels, with no batch norm or ReLU after it;
- pre-activation blocks (BN-ReLU-conv twice; the bottleneck thrice), no ReLU after the
  addition;
- the shortcut P of a shape-changing block is BN-ReLU-conv1x1(stride) (:class:`PreActProjection`),
  also on the bottleneck network's first block (16 -> 64 channels, stride 1); P(u_n) is
  the next block's u_{n-1};
- head: BN-ReLU, global average pooling, a fully connected layer.

``lm_resnetN`` is this network under the LM step, ``preact_resnetN`` the same network
under forward Euler (the same parameters but the k_n), so the two compare like with like.
``noise='batch_drop'`` is the authors' stochastic depth (:func:`solvers.batch_drop`).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Union

from torch import nn

import solvers
from odenets import ODENet

from .blocks import PreActBasic, PreActBottleneck
from .resnet import ResNet

BLOCKS = ("basic", "bottleneck")
NOISES = ("stochastic_depth", "batch_drop")


class PreActProjection(nn.Sequential):
    """The authors' shortcut P: BN-ReLU-conv1x1(stride), no bias."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(OrderedDict(
            bn=nn.BatchNorm2d(in_channels), relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)))


def authors_resnet(depth: int, block: str = "basic", num_classes: int = 10, in_chans: int = 3,
                   solver: str = "lm", *, noise: Optional[str] = None,
                   survival: Optional[Union[float, Sequence[float]]] = None, dt: float = 1.0,
                   checkpoint: bool = False, channels: Optional[bool] = None, **scheme_options) -> ResNet:
    """The authors' CIFAR network of ``depth`` under ``solver`` (any one-function
    fixed-step scheme): ``block='basic'``, depth 6n + 2 on 16/32/64 channels, or
    ``'bottleneck'``, depth 9n + 2 on 64/128/256 channels (inner widths 16/32/64).

    ``noise`` is ``'stochastic_depth'`` (Huang et al.'s, per sample, expectation in eval
    mode) or ``'batch_drop'`` (the authors': one draw per block and mini-batch, a kept
    residual divided by its keep probability, the block as it is in eval mode); ``survival``
    is the last block's keep probability p_L or one per block. ``channels=True`` gives
    lm one k per channel. Other options go to the scheme (e.g. ``k_init``, ``k_bounds``)."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
    per_block = 3 if block == "bottleneck" else 2  # layers per block
    if not isinstance(depth, int) or depth < 3 * per_block + 2 or (depth - 2) % (3 * per_block):
        raise ValueError(f"the authors' {block} network has depth {3 * per_block}n + 2, got {depth!r}")
    if channels not in (None, True):
        raise ValueError(f"channels={channels!r}: take channels=True (one k per channel) or leave it out")
    if noise is not None and noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; the authors' networks take one of: {', '.join(NOISES)} (or None)")
    if noise is None and survival is not None:
        raise ValueError(f"survival={survival!r} is a keep probability of noise='batch_drop' or 'stochastic_depth'; "
                         "this model has no noise")
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n = (depth - 2) // (3 * per_block)
    p_last = 0.5 if survival is None else survival
    rule = {"stochastic_depth": solvers.survival_probabilities, "batch_drop": solvers.death_rates}.get(noise)
    keep = None if rule is None else rule(3 * n, p_last)  # per block: Huang's keep probability, the authors' death rate

    stages, in_ch = [], 16
    for i in range(3):
        width = 16 * 2 ** i
        out_ch = width * (4 if block == "bottleneck" else 1)
        fns = []
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            p = PreActProjection(in_ch, out_ch, stride) if in_ch != out_ch or stride != 1 else None
            fns.append(PreActBottleneck(in_ch, width, out_ch, stride, shortcut=p) if block == "bottleneck"
                       else PreActBasic(in_ch, out_ch, stride, shortcut=p))
            in_ch = out_ch
        options = dict(scheme_options, channels=out_ch) if channels else dict(scheme_options)
        per_stage = None if keep is None else keep[i * n:(i + 1) * n]
        if noise == "batch_drop":
            stages.append(_BatchDropStage(fns, solver, per_stage, dt=dt, checkpoint=checkpoint, carry_in=i > 0,
                                          **options))
        else:
            extra = {} if noise is None else {"noise": noise, "survival": per_stage}
            stages.append(ODENet(fns, solver, dt=dt, checkpoint=checkpoint, carry_in=i > 0, **extra, **options))
    stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)))
    head = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(in_ch), relu=nn.ReLU(inplace=True),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1),
                                     fc=nn.Linear(in_ch, num_classes)))
    model = ResNet(stem, stages, head)
    for m in model.modules():  # the authors' initialisation: He-normal (fan-out) convolutions
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


class _BatchDropStage(ODENet):
    """A stage whose steps are dropped the authors' way in training: ``death_rates[n]``
    is step n's, and :func:`solvers.batch_drop` turns its fields."""

    drops_steps = True  # a dropped step's parameters get no gradient: DDP must look for unused parameters

    def __init__(self, fns: Sequence[nn.Module], solver: str, death_rates: Sequence[float], **kwargs):
        super().__init__(fns, solver, **kwargs)
        self.death_rates = list(death_rates)

    def fields(self, n: int, fn: nn.Module, u, expected=None, check: bool = True) -> list:
        calls = super().fields(n, fn, u, expected, check)
        return solvers.batch_drop(calls, self.death_rates[n], expected) if self.training else calls

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, noise='batch_drop'"
