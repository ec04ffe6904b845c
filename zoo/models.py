"""The paper's architectures, registered by name.

- CIFAR ResNets (He et al. 2016): resnet{8,14,20,32,44,56,110}, basic blocks on
  16/32/64 channels with option-A shortcuts and a ReLU after each addition (depth 6n + 2;
  resnet8 and resnet14 are small models for quick experiments); ``preact=True`` gives the
  pre-activation variant.
- resnet164: He et al.'s pre-activation bottleneck ResNet-164 (conv-BN projections).
- lm_resnet{8,...,110,164}: the LM-ResNet authors' CIFAR networks (:mod:`odenets.zoo.preact`:
  pre-activation blocks, a BN-ReLU-conv1x1 shortcut, no BN after the stem) under the LM
  step; preact_resnetN is the same network under forward Euler, its ResNet twin.
- lm_resnet56_sd, lm_resnet110_sd: the paper's stochastic-depth LM-ResNets, the authors'
  networks with their stochastic depth (``noise='batch_drop'``), p_L = 0.8 and 0.5.
- resnext29_8x64d, resnext29_16x64d: ResNeXt-29 for CIFAR (Xie et al. 2017).
- resnet18/34/50/101/152: torchvision's ImageNet architectures, parameter for parameter.

``lm_<name>`` of the ResNeXts and ImageNet ResNets is ``<name>`` with solver='lm'. Every
LM model has a trainable k_n per block, initialised U(-0.1, 0), except in the first block
of each stage (the network's first step, which has no u_{n-1}, and the downsampling
blocks, ResNet steps in the authors' code).
"""
from __future__ import annotations

from functools import partial
from typing import Optional, Sequence, Union

from odenets.solvers import SolverSpec

from .preact import authors_resnet
from .registry import register_model
from .resnet import ResNet, Stage, build

CIFAR_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
Solver = Union[str, SolverSpec]
"""A builder's ``solver``: the spec, or its text (read once, by :func:`zoo.build`)."""
IMAGENET_LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
                   101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


def cifar_resnet(depth: int, num_classes: int = 10, in_chans: int = 3, solver: Solver = "euler",
                 **options) -> ResNet:
    """He et al.'s CIFAR ResNet of depth 6n + 2: n basic blocks per stage on 16/32/64 channels."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (8, 14, 20, ...), got {depth}")
    n = (depth - 2) // 6
    stages = [Stage(n, 16, 1), Stage(n, 32, 2), Stage(n, 64, 2)]
    return build(stages, block="basic", stem="cifar", stem_channels=16, shortcut_kind="pad",
                 num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def cifar_preact_bottleneck(depth: int, num_classes: int = 10, in_chans: int = 3, solver: Solver = "euler",
                            preact: Optional[bool] = True, **options) -> ResNet:
    """ResNet-164 style: depth 9n + 2, n pre-activation bottlenecks per stage on 64/128/256 channels."""
    if depth < 11 or (depth - 2) % 9:
        raise ValueError(f"a CIFAR bottleneck ResNet has depth 9n + 2, got {depth}")
    n = (depth - 2) // 9
    stages = [Stage(n, 64, 1, 16), Stage(n, 128, 2, 32), Stage(n, 256, 2, 64)]
    return build(stages, block="bottleneck", stem="cifar", stem_channels=16, shortcut_kind="projection",
                 num_classes=num_classes, in_chans=in_chans, solver=solver, preact=preact, **options)


def resnext29(cardinality: int, base_width: int, num_classes: int = 10, in_chans: int = 3,
              solver: Solver = "euler", **options) -> ResNet:
    """ResNeXt-29 (C x d): three stages of three grouped bottlenecks, 256/512/1024 channels,
    C * d * 2^i inner channels in C groups."""
    stages = [Stage(3, 256 * 2 ** i, 1 if i == 0 else 2, cardinality * base_width * 2 ** i) for i in range(3)]
    return build(stages, block="bottleneck", stem="cifar", stem_channels=64, shortcut_kind="projection",
                 groups=cardinality, num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def imagenet_resnet(block: str, layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                    solver: Solver = "euler", groups: int = 1, width_per_group: int = 64, **options) -> ResNet:
    """torchvision's ResNet/ResNeXt: 7x7 stem, four stages on 64/128/256/512 planes
    (x4 channels for bottlenecks), ``groups`` x ``width_per_group`` inner bottleneck width."""
    expansion = 4 if block == "bottleneck" else 1
    stages = [Stage(n, 64 * 2 ** i * expansion, 1 if i == 0 else 2,
                    int(64 * 2 ** i * width_per_group / 64) * groups if expansion > 1 else 0)
              for i, n in enumerate(layers)]
    return build(stages, block=block, stem="imagenet", stem_channels=64, shortcut_kind="projection",
                 groups=groups, num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def _add(builder, name: str, doc: str, cifar_weight_decay: Optional[float] = None) -> None:
    builder.__doc__ = doc
    register_model(builder, name=name, cifar_weight_decay=cifar_weight_decay)


def _register(name: str, builder, doc: str, cifar_weight_decay: Optional[float] = None) -> None:
    for prefix, solver in (("", "euler"), ("lm_", "lm")):
        _add(partial(builder, solver=solver), prefix + name,
             f"{doc} ({'LM-ResNet: solver=lm' if solver == 'lm' else 'solver=euler: the ResNet'})",
             cifar_weight_decay)


for _depth in CIFAR_DEPTHS:
    _add(partial(cifar_resnet, _depth, solver="euler"), f"resnet{_depth}",
         f"He et al.'s CIFAR ResNet-{_depth} (post-activation, option-A shortcuts), solver=euler")
_add(partial(cifar_preact_bottleneck, 164, solver="euler"), "resnet164",
     "He et al.'s pre-activation bottleneck ResNet-164 (conv-BN projections), solver=euler")
for _depth, _block in [(d, "basic") for d in CIFAR_DEPTHS] + [(164, "bottleneck")]:
    _add(partial(authors_resnet, _depth, _block, solver="euler"), f"preact_resnet{_depth}",
         f"the LM-ResNet authors' CIFAR network of depth {_depth} under forward Euler (LM-ResNet-{_depth}'s twin)")
    _add(partial(authors_resnet, _depth, _block, solver="lm"), f"lm_resnet{_depth}",
         f"LM-ResNet-{_depth}: the authors' CIFAR network, solver=lm")
for _c in (8, 16):
    _register(f"resnext29_{_c}x64d", partial(resnext29, _c, 64), f"CIFAR ResNeXt-29 ({_c}x64d)",
              cifar_weight_decay=5e-4)  # Xie et al. 2017, sec. 5.3
for _depth, (_kind, _layers) in IMAGENET_LAYERS.items():
    _register(f"resnet{_depth}", partial(imagenet_resnet, _kind, _layers), f"ImageNet ResNet-{_depth}")
for _depth, _p in ((56, 0.8), (110, 0.5)):  # their own solver: the authors' stochastic depth, p_L = _p
    _own = SolverSpec.parse("lm+bd", survival=_p)
    _add(partial(authors_resnet, _depth, "basic", solver=_own), f"lm_resnet{_depth}_sd",
         f"LM-ResNet-{_depth} with the authors' stochastic depth (noise='batch_drop'), p_L = {_p}")
