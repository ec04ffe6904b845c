"""torchvision ResNets and ResNeXts as zoo models: same weights, any solver."""
from __future__ import annotations

import re

from torch import nn

import solvers

from .resnet import ResNet, Stage, build


def from_torchvision(model: nn.Module, solver: str = "euler", **options) -> ResNet:
    """The zoo model of a torchvision ResNet/ResNeXt (any depth, width, groups), with its weights.

    The architecture is read off ``model`` and its state dict copied, so in eval mode the
    zoo model computes the same function (solver='euler'). With solver='lm' the k_n start
    at 0 (``k_init=0.0`` unless given), where the LM step is the Euler step: a pretrained
    ResNet, unchanged, to fine-tune into an LM-ResNet. The result has ``model``'s device,
    dtype and train/eval mode. :func:`odenets.convert` does the same for any residual
    network, keeping the model's own class and blocks.
    """
    import torchvision.models.resnet as tv

    if not isinstance(model, tv.ResNet):
        raise TypeError(f"from_torchvision takes a torchvision.models.ResNet, got {type(model).__name__}")
    layers = [model.layer1, model.layer2, model.layer3, model.layer4]
    first = layers[0][0]
    if not all(isinstance(m, nn.BatchNorm2d) for m in (model.bn1, first.bn1)):
        raise ValueError("from_torchvision supports BatchNorm2d ResNets only")
    if any(m.dilation != (1, 1) for m in model.modules() if isinstance(m, nn.Conv2d)):
        raise ValueError("from_torchvision does not support replace_stride_with_dilation")
    bottleneck = isinstance(first, tv.Bottleneck)
    stages = [Stage(len(layer), layer[0].bn3.num_features if bottleneck else layer[0].bn2.num_features,
                    layer[0].stride, layer[0].conv1.out_channels if bottleneck else 0) for layer in layers]
    point = solvers.SolverSpec.parse(solver).scheme.euler_options or {}  # lm: k = 0, the Euler step
    options = {**point, **options}
    zoo = build(stages, block="bottleneck" if bottleneck else "basic", stem="imagenet",
                stem_channels=model.conv1.out_channels, shortcut_kind="projection",
                groups=first.conv2.groups if bottleneck else 1, num_classes=model.fc.out_features,
                in_chans=model.conv1.in_channels, solver=solver, **options)
    state = {_zoo_key(k): v for k, v in model.state_dict().items()}
    missing, unexpected = zoo.load_state_dict(state, strict=False)
    coefficients = {id(p) for net in zoo.stages for p in net.coefficients()}
    initialised = {k for k, p in zoo.named_parameters() if id(p) in coefficients}  # the scheme's own, kept
    missing = [k for k in missing if k not in initialised]
    if missing or unexpected:
        raise ValueError(f"torchvision weights do not fit the zoo model (solver={solver!r}): "
                         f"missing {missing}, unexpected {unexpected}")
    p = next(model.parameters())
    return zoo.to(device=p.device, dtype=p.dtype).train(model.training)


def _zoo_key(key: str) -> str:
    """torchvision's state-dict key -> the zoo's: layer2.0.downsample.0.weight ->
    stages.1.layers.0.shortcut.conv.weight, layer2.0.conv1.weight -> stages.1.fns.0.conv1.weight,
    conv1.weight -> stem.conv.weight, fc -> head.fc."""
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(.*)", key)
    if m:
        stage, block, rest = int(m[1]) - 1, m[2], m[3]
        down = re.fullmatch(r"downsample\.([01])\.(.*)", rest)
        if down:
            return f"stages.{stage}.layers.{block}.shortcut.{'conv' if down[1] == '0' else 'bn'}.{down[2]}"
        return f"stages.{stage}.fns.{block}.{rest}"
    for old, new in (("conv1.", "stem.conv."), ("bn1.", "stem.bn."), ("fc.", "head.fc.")):
        if key.startswith(old):
            return new + key[len(old):]
    return key
