"""Any residual network as an ODE: :func:`convert` turns the residual stages of a
torchvision, timm or PyTorch model into ODENets over its own blocks, and
:func:`register_block` teaches it a new block type (docs/any-network.md)."""
from .engine import ResidualStage, convert
from .registry import Adapter, Residual, register_block


def from_pretrained(path):
    """A converted Hugging Face model saved with ``save_pretrained`` (see :func:`.hf.from_pretrained`)."""
    from .hf import from_pretrained as load
    return load(path)


__all__ = ["Adapter", "Residual", "ResidualStage", "convert", "from_pretrained", "register_block"]
