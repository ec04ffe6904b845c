"""Adapters for Hugging Face Transformers blocks: GPT-2's ``GPT2Block`` and the Llama
family's decoder layer (Llama, Mistral, Qwen2: rotary position embeddings, grouped-query
attention), each two pre-norm residual sub-steps, attention then MLP. The attention step
takes the block's call arguments (the attention mask, the rotary cos/sin, the key-value
cache) as the steps' context; the MLP step takes and ignores them."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Union

from torch import Tensor, nn

from .kv_slots import CACHE_KEYS, Evaluations
from .registry import Residual


class Attention(nn.Module):
    """attn(norm(x), **context)[0]: a block's attention with its pre-norm, reading and
    extending the cache layer of this evaluation (:class:`~.kv_slots.Evaluations`)."""

    def __init__(self, norm: nn.Module, attention: nn.Module):
        super().__init__()
        self.norm, self.attention = norm, attention

    def forward(self, x: Tensor, **context) -> Tensor:
        for key in CACHE_KEYS:
            if isinstance(context.get(key), Evaluations):
                context[key] = context[key].slot(self.attention.layer_idx)
        return self.attention(self.norm(x), **context)[0]


class MLP(nn.Module):
    """mlp(norm(x)): a block's feed-forward with its pre-norm; it reads no context."""

    def __init__(self, norm: nn.Module, mlp: nn.Module):
        super().__init__()
        self.norm, self.mlp = norm, mlp

    def forward(self, x: Tensor, **context) -> Tensor:
        return self.mlp(self.norm(x))


def gpt2(block: nn.Module) -> list[Residual]:
    if hasattr(block, "crossattention"):
        raise ValueError("a GPT-2 block with cross-attention (add_cross_attention=True) has three sub-steps, one of "
                         "them reading the encoder's states; odenets converts decoder-only GPT-2 blocks")
    return [Residual(Attention(block.ln_1, block.attn)), Residual(MLP(block.ln_2, block.mlp))]


def llama(block: nn.Module) -> list[Residual]:
    return [Residual(Attention(block.input_layernorm, block.self_attn)),
            Residual(MLP(block.post_attention_layernorm, block.mlp))]


def remember(model: nn.Module, solver, options: dict) -> None:
    """Record the conversion in the model's config (``config.odenets``), which
    ``save_pretrained`` writes to config.json and :func:`from_pretrained` reads back."""
    if not isinstance(solver, str):
        solver = solver.label
    record = {"solver": solver, **options}
    try:
        json.dumps(record)
    except TypeError:
        return  # options that are not data (a module): from_pretrained will say it has no record
    model.config = copy.deepcopy(model.config)
    model.config.odenets = record


def from_pretrained(path: Union[str, os.PathLike]) -> nn.Module:
    """A converted Hugging Face model saved by its ``save_pretrained``, weights and
    trained coefficients (k_n) included: the model's class is built from the saved config,
    converted as recorded there, and given the saved weights (strictly: a weight missing
    or left over is an error). Only local files are read; the file is safetensors."""
    import transformers
    from safetensors.torch import load_file

    from .engine import convert

    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    record = getattr(config, "odenets", None)
    if not isinstance(record, dict) or "solver" not in record:
        raise ValueError(f"{path} holds no record of an odenets conversion (config.odenets): it was not saved from "
                         "a model converted by odenets.convert; load it with transformers and convert it")
    classes = config.architectures or []
    if len(classes) != 1 or not hasattr(transformers, classes[0]):
        raise ValueError(f"{path}: config.architectures must name one transformers model class, got {classes}")
    weights = Path(path) / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{path} has no model.safetensors (a sharded or .bin checkpoint is not read here)")
    options = dict(record)
    model = convert(getattr(transformers, classes[0])(config), **options)
    missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
    tied = set(model.state_dict()) - {k for k, v in model.named_parameters(remove_duplicate=True)} - {
        k for k, _ in model.named_buffers()}
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit the converted {classes[0]}: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}")
    return model.eval()
