"""Any residual network as an ODE: :func:`convert` turns the residual stages of a
torchvision, timm or PyTorch model into ODENets over its own blocks, and
:func:`register_block` teaches it a new block type (docs/any-network.md)."""
from .engine import ResidualStage, convert
from .registry import Adapter, Residual, register_block

__all__ = ["Adapter", "Residual", "ResidualStage", "convert", "register_block"]
