"""Adapters for Hugging Face Transformers blocks: GPT-2's ``GPT2Block`` and the Llama
family's decoder layer (Llama, Mistral, Qwen2: rotary position embeddings, grouped-query
attention), each two pre-norm residual sub-steps, attention then MLP. The attention step
takes the block's call arguments (the attention mask, the rotary cos/sin, the key-value
cache) as the steps' context; the MLP step takes and ignores them."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .kv_slots import Evaluations
from .registry import Residual


class Attention(nn.Module):
    """attn(norm(x), **context)[0]: a block's attention with its pre-norm, reading and
    extending the cache layer of this evaluation (:class:`~.kv_slots.Evaluations`)."""

    def __init__(self, norm: nn.Module, attention: nn.Module):
        super().__init__()
        self.norm, self.attention = norm, attention

    def forward(self, x: Tensor, cache: Optional[Evaluations] = None, **context) -> Tensor:
        if cache is not None:
            context["cache"] = cache.slot(self.attention.layer_idx)
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
