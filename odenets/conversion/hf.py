"""Adapters for Hugging Face Transformers blocks: GPT-2's ``GPT2Block`` and the Llama
family's decoder layer (Llama, Mistral, Qwen2: rotary position embeddings, grouped-query
attention) and ViT's layer, each two pre-norm residual sub-steps, attention then MLP; BERT's layer
(RoBERTa's has its form), two post-norm ones, each a step followed by its LayerNorm. The attention step
takes the block's call arguments (the attention mask, the rotary cos/sin, the key-value
cache) as the steps' context; the MLP step takes and ignores them."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

from torch import Tensor, nn

from .kv_slots import CACHE_KEYS, Evaluations
from .registry import Residual


class Attention(nn.Module):
    """after(attn(norm(x), **context)[0]): a block's attention with its pre-norm (and,
    for ViT, its dropout), reading and extending the cache layer of this evaluation
    (:class:`~.kv_slots.Evaluations`)."""

    def __init__(self, norm: nn.Module, attention: nn.Module, after: Optional[nn.Module] = None):
        super().__init__()
        self.norm, self.attention, self.after = norm, attention, after

    def forward(self, x: Tensor, **context) -> Tensor:
        for key in CACHE_KEYS:
            if isinstance(context.get(key), Evaluations):
                context[key] = context[key].slot(self.attention.layer_idx)
        out = self.attention(self.norm(x), **context)[0]
        return out if self.after is None else self.after(out)


class MLP(nn.Module):
    """after(mlp(norm(x))): a block's feed-forward with its pre-norm; it reads no context."""

    def __init__(self, norm: nn.Module, mlp: nn.Module, after: Optional[nn.Module] = None):
        super().__init__()
        self.norm, self.mlp, self.after = norm, mlp, after

    def forward(self, x: Tensor, **context) -> Tensor:
        out = self.mlp(self.norm(x))
        return out if self.after is None else self.after(out)


def gpt2(block: nn.Module) -> list[Residual]:
    if hasattr(block, "crossattention"):
        raise ValueError("a GPT-2 block with cross-attention (add_cross_attention=True) has three sub-steps, one of "
                         "them reading the encoder's states; odenets converts decoder-only GPT-2 blocks")
    return [Residual(Attention(block.ln_1, block.attn)), Residual(MLP(block.ln_2, block.mlp))]


def llama(block: nn.Module) -> list[Residual]:
    return [Residual(Attention(block.input_layernorm, block.self_attn)),
            Residual(MLP(block.post_attention_layernorm, block.mlp))]


def vit(layer: nn.Module) -> list[Residual]:
    """Hugging Face's ViT layer: two pre-norm sub-steps, each ending in the layer's dropout."""
    return [Residual(Attention(layer.layernorm_before, layer.attention, layer.dropout)),
            Residual(MLP(layer.layernorm_after, layer.mlp, layer.dropout))]


class BertAttention(nn.Module):
    """dropout(dense(self_attention(x, **context))) of a BERT layer: its attention before
    the addition; the LayerNorm after it is the step's activation."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.self, self.dense, self.dropout = attention.self, attention.output.dense, attention.output.dropout

    def forward(self, x: Tensor, attention_mask: Optional[Tensor] = None, **context) -> Tensor:
        for key in ("encoder_hidden_states", "encoder_attention_mask"):
            if context.pop(key, None) is not None:
                raise ValueError("a converted BERT layer has no cross-attention: it takes no encoder_hidden_states")
        return self.dropout(self.dense(self.self(x, attention_mask=attention_mask, **context)[0]))


class BertFeedForward(nn.Module):
    """dropout(dense(intermediate(x))) of a BERT layer; it reads no context."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.intermediate, self.dense, self.dropout = layer.intermediate, layer.output.dense, layer.output.dropout

    def forward(self, x: Tensor, **context) -> Tensor:
        return self.dropout(self.dense(self.intermediate(x)))


def bert(layer: nn.Module) -> list[Residual]:
    """Two post-norm sub-steps, x -> LayerNorm(x + g(x)): attention, then feed-forward."""
    if getattr(layer, "add_cross_attention", False) or layer.chunk_size_feed_forward:
        raise ValueError("odenets converts BERT encoder layers without cross-attention and without feed-forward "
                         "chunking (chunk_size_feed_forward=0)")
    return [Residual(BertAttention(layer.attention), activation=layer.attention.output.LayerNorm),
            Residual(BertFeedForward(layer), activation=layer.output.LayerNorm)]


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
    model.config.odenets = record  # the copy's config, which its submodels share


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
