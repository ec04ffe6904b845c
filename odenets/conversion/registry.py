"""Block adapters: for each residual block type, where its residual branch(es) and its
shortcut are. Registering a new block type is one adapter (docs/any-network.md)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from torch import nn

DOCS = "docs/any-network.md"


@dataclass
class Residual:
    """One residual sub-step of a block, x -> activation(shortcut(x) + branch(x)): the
    branch f_n, the shortcut P (None: the identity) and what follows the addition (None:
    nothing; torchvision's ReLU; a post-norm block's LayerNorm, its own for each sub-step)."""

    branch: nn.Module
    shortcut: Optional[nn.Module] = None
    activation: Optional[nn.Module] = None


Adapter = Callable[[nn.Module], Sequence[Residual]]
"""Takes a block (a copy, its modules free to be moved) and returns its residual
sub-steps in order: one for a ResNet block, two (attention, MLP) for a transformer block."""

_ADAPTERS: dict[str, Union[Adapter, str]] = {
    "torchvision.models.resnet.BasicBlock": "odenets.conversion.torchvision:basic",
    "torchvision.models.resnet.Bottleneck": "odenets.conversion.torchvision:bottleneck",
    "timm.models.resnet.BasicBlock": "odenets.conversion.timm:resnet_basic",
    "timm.models.resnet.Bottleneck": "odenets.conversion.timm:resnet_bottleneck",
    "timm.models.convnext.ConvNeXtBlock": "odenets.conversion.timm:convnext",
    "timm.models.vision_transformer.Block": "odenets.conversion.timm:vit",
    "torch.nn.modules.transformer.TransformerEncoderLayer": "odenets.conversion.torch_nn:encoder_layer",
    "transformers.models.gpt2.modeling_gpt2.GPT2Block": "odenets.conversion.hf:gpt2",
    "transformers.models.llama.modeling_llama.LlamaDecoderLayer": "odenets.conversion.hf:llama",
    "transformers.models.mistral.modeling_mistral.MistralDecoderLayer": "odenets.conversion.hf:llama",
    "transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer": "odenets.conversion.hf:llama",
    "transformers.models.bert.modeling_bert.BertLayer": "odenets.conversion.hf:bert",
    "transformers.models.vit.modeling_vit.ViTLayer": "odenets.conversion.hf:vit",
    "transformers.models.roberta.modeling_roberta.RobertaLayer": "odenets.conversion.hf:bert",
}  # built-in adapters by the block's qualified name, imported when first used: no timm import before


def type_name(cls: type) -> str:
    """A type's qualified name, which the registry is keyed by."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_block(block_type: type, adapter: Adapter) -> None:
    """Make :func:`odenets.convert` convert blocks of exactly ``block_type`` (not its
    subclasses, whose forward may differ) with ``adapter``; a later registration of a
    type replaces the earlier one."""
    if not isinstance(block_type, type) or not issubclass(block_type, nn.Module):
        raise TypeError(f"block_type must be an nn.Module subclass, got {block_type!r}")
    if not callable(adapter):
        raise TypeError(f"adapter must be callable (block -> list of Residual), got {type(adapter).__name__}")
    _ADAPTERS[type_name(block_type)] = adapter


def adapter_for(block: nn.Module) -> Optional[Adapter]:
    """The adapter registered for ``block``'s exact type, or None."""
    found = _ADAPTERS.get(type_name(type(block)))
    if isinstance(found, str):
        module, name = found.split(":")
        found = getattr(importlib.import_module(module), name)
    return found


def residuals(block: nn.Module) -> list[Residual]:
    """The residual sub-steps of ``block`` by its adapter, checked."""
    adapter = adapter_for(block)
    if adapter is None:
        raise ValueError(f"no adapter for block type {type_name(type(block))}; register one with "
                         f"odenets.register_block (see {DOCS})")
    out = list(adapter(block))
    if not out or not all(isinstance(r, Residual) for r in out):
        raise TypeError(f"the adapter of {type_name(type(block))} must return a non-empty list of odenets.Residual")
    return out
