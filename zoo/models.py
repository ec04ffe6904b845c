"""The paper's architectures, registered by name. ``lm_<name>`` is ``<name>`` with
solver='lm': a trainable k_n per block, initialised U(-0.1, 0), except in the first block
of each stage (the network's first step, which has no u_{n-1}, and the downsampling
blocks, ResNet steps in the paper's code); so lm_resnet8, one block per stage, computes
the same function as resnet8.

- CIFAR ResNets (He et al. 2016): resnet{8,14,20,32,44,56,110}, basic blocks on
  16/32/64 channels with option-A shortcuts (depth 6n + 2; resnet8 and resnet14 are small
  models for quick experiments); ``preact=True`` gives the pre-activation variant.
- resnet164: pre-activation bottleneck blocks (He et al. 2016, "Identity mappings").
- resnext29_8x64d, resnext29_16x64d: ResNeXt-29 for CIFAR (Xie et al. 2017).
- resnet18/34/50/101/152: torchvision's ImageNet architectures, parameter for parameter.
- lm_resnet56_sd, lm_resnet110_sd: the paper's stochastic-depth LM-ResNets, survival
  decaying linearly over depth to p_L = 0.8 and 0.5.
"""
from __future__ import annotations

from functools import partial
from typing import Optional, Sequence, Union

from .registry import register_model
from .resnet import ResNet, Stage, build

CIFAR_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
IMAGENET_LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
                   101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


def cifar_resnet(depth: int, num_classes: int = 10, in_chans: int = 3, solver: str = "euler",
                 **options) -> ResNet:
    """He et al.'s CIFAR ResNet of depth 6n + 2: n basic blocks per stage on 16/32/64 channels."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (8, 14, 20, ...), got {depth}")
    n = (depth - 2) // 6
    stages = [Stage(n, 16, 1), Stage(n, 32, 2), Stage(n, 64, 2)]
    return build(stages, block="basic", stem="cifar", stem_channels=16, shortcut_kind="pad",
                 num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def cifar_preact_bottleneck(depth: int, num_classes: int = 10, in_chans: int = 3, solver: str = "euler",
                            preact: Optional[bool] = True, **options) -> ResNet:
    """ResNet-164 style: depth 9n + 2, n pre-activation bottlenecks per stage on 64/128/256 channels."""
    if depth < 11 or (depth - 2) % 9:
        raise ValueError(f"a CIFAR bottleneck ResNet has depth 9n + 2, got {depth}")
    n = (depth - 2) // 9
    stages = [Stage(n, 64, 1, 16), Stage(n, 128, 2, 32), Stage(n, 256, 2, 64)]
    return build(stages, block="bottleneck", stem="cifar", stem_channels=16, shortcut_kind="projection",
                 num_classes=num_classes, in_chans=in_chans, solver=solver, preact=preact, **options)


def resnext29(cardinality: int, base_width: int, num_classes: int = 10, in_chans: int = 3,
              solver: str = "euler", **options) -> ResNet:
    """ResNeXt-29 (C x d): three stages of three grouped bottlenecks, 256/512/1024 channels,
    C * d * 2^i inner channels in C groups."""
    stages = [Stage(3, 256 * 2 ** i, 1 if i == 0 else 2, cardinality * base_width * 2 ** i) for i in range(3)]
    return build(stages, block="bottleneck", stem="cifar", stem_channels=64, shortcut_kind="projection",
                 groups=cardinality, num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def imagenet_resnet(block: str, layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                    solver: str = "euler", groups: int = 1, width_per_group: int = 64, **options) -> ResNet:
    """torchvision's ResNet/ResNeXt: 7x7 stem, four stages on 64/128/256/512 planes
    (x4 channels for bottlenecks), ``groups`` x ``width_per_group`` inner bottleneck width."""
    expansion = 4 if block == "bottleneck" else 1
    stages = [Stage(n, 64 * 2 ** i * expansion, 1 if i == 0 else 2,
                    int(64 * 2 ** i * width_per_group / 64) * groups if expansion > 1 else 0)
              for i, n in enumerate(layers)]
    return build(stages, block=block, stem="imagenet", stem_channels=64, shortcut_kind="projection",
                 groups=groups, num_classes=num_classes, in_chans=in_chans, solver=solver, **options)


def _stochastic_depth_lm(depth: int, p_last: float, num_classes: int = 10, in_chans: int = 3,
                         solver: str = "lm", noise: Optional[str] = "stochastic_depth",
                         survival: Optional[Union[float, Sequence[float]]] = None, **options) -> ResNet:
    if noise == "stochastic_depth" and survival is None:
        survival = p_last
    return cifar_resnet(depth, num_classes, in_chans, solver, noise=noise, survival=survival, **options)


def _register(name: str, builder, doc: str) -> None:
    for prefix, solver in (("", "euler"), ("lm_", "lm")):
        fn = partial(builder, solver=solver)
        fn.__doc__ = f"{doc} ({'LM-ResNet: solver=lm' if solver == 'lm' else 'solver=euler: the ResNet'})"
        register_model(fn, name=prefix + name)


for _depth in CIFAR_DEPTHS:
    _register(f"resnet{_depth}", partial(cifar_resnet, _depth), f"CIFAR ResNet-{_depth}")
_register("resnet164", partial(cifar_preact_bottleneck, 164), "CIFAR pre-activation ResNet-164")
for _c in (8, 16):
    _register(f"resnext29_{_c}x64d", partial(resnext29, _c, 64), f"CIFAR ResNeXt-29 ({_c}x64d)")
for _depth, (_kind, _layers) in IMAGENET_LAYERS.items():
    _register(f"resnet{_depth}", partial(imagenet_resnet, _kind, _layers), f"ImageNet ResNet-{_depth}")
register_model(partial(_stochastic_depth_lm, 56, 0.8), name="lm_resnet56_sd")
register_model(partial(_stochastic_depth_lm, 110, 0.5), name="lm_resnet110_sd")
