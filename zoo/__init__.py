"""The model zoo: the paper's residual architectures, each one architecture under a
choice of solver (``from odenets import zoo``).

``zoo.create('lm_resnet56')`` is LM-ResNet-56, the LM-ResNet authors' CIFAR network,
``zoo.create('preact_resnet56')`` the same network under forward Euler, and
``zoo.create('resnet56')`` He et al.'s ResNet-56, which
``zoo.create('resnet56', solver='polynet')`` runs as a PolyNet: each stage is an
:class:`odenets.ODENet` over the stage's blocks.
"""
from . import models  # noqa: F401  (registers the architectures)
from .blocks import BasicBlock, Bottleneck, PreActBasic, PreActBottleneck
from .preact import authors_resnet
from .registry import check_options, cifar_weight_decay, create, list_models, model_options, register_model, solver_spec, split_options
from .resnet import ResNet, Stage, build
from .shortcuts import Halves, PadShortcut, PreActProjection, Projection
from .torchvision import from_torchvision

__all__ = [
    "BasicBlock", "Bottleneck", "Halves", "PadShortcut", "PreActBasic", "PreActBottleneck", "PreActProjection",
    "Projection", "ResNet", "Stage", "authors_resnet", "build", "check_options", "cifar_weight_decay", "create",
    "from_torchvision", "list_models", "model_options", "register_model", "solver_spec", "split_options",
]
