"""odenets: deep residual networks as numerical solvers of differential equations.

``ODENet(f, solver='lm', steps=n)`` unrolls any residual function with a fixed-step
scheme from :mod:`solvers`; :mod:`zoo` builds the paper's architectures from it, and
:mod:`odenets.analysis` reads trained networks as numerical schemes.
"""
from solvers import available

from .odenet import Carry, ODENet

__all__ = ["Carry", "ODENet", "available"]
__version__ = "0.1.0"
