"""odenets: deep residual networks as numerical solvers of differential equations.

``ODENet(f, solver='lm', steps=n)`` unrolls any residual function with a fixed-step
scheme from :mod:`odenets.solvers`, one :class:`Step` module per step; :mod:`odenets.zoo` builds the paper's architectures from it, and
:mod:`odenets.analysis` reads trained networks as numerical schemes, and :func:`convert`
turns any residual network (torchvision, timm, PyTorch's transformer, Hugging Face
Transformers) into ODENets.
"""
from odenets.solvers import SolverSpec, available

from .conversion import Residual, convert, from_pretrained, register_block
from .odenet import Carry, ODENet
from .step import Step

__all__ = ["Carry", "ODENet", "Residual", "SolverSpec", "Step", "available", "convert", "from_pretrained", "register_block"]
__version__ = "0.2.0"
