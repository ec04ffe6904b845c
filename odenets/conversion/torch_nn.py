"""PyTorch's own transformer encoder: a pre-norm ``nn.TransformerEncoderLayer`` is two
residual sub-steps, self-attention then feed-forward."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .registry import DOCS, Residual


class SelfAttention(nn.Module):
    """dropout1(self_attn(norm1(x))) of a pre-norm encoder layer."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.norm1, self.self_attn, self.dropout1 = layer.norm1, layer.self_attn, layer.dropout1

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x)
        return self.dropout1(self.self_attn(x, x, x, need_weights=False)[0])


class FeedForward(nn.Module):
    """dropout2(linear2(dropout(activation(linear1(norm2(x)))))) of a pre-norm encoder layer."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.norm2, self.linear1, self.dropout, self.linear2 = layer.norm2, layer.linear1, layer.dropout, layer.linear2
        self.dropout2 = layer.dropout2
        self.activation = layer.activation  # a module or a function such as F.relu

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(self.norm2(x))))))


def encoder_layer(layer: nn.TransformerEncoderLayer) -> list[Residual]:
    if not layer.norm_first:
        raise ValueError("nn.TransformerEncoderLayer with norm_first=False (post-norm) computes norm(x + g(x)): "
                         "the normalisation after the addition makes it no residual step x + g(x), so it has no "
                         f"ODE reading; build it with norm_first=True (pre-norm), see {DOCS}")
    return [Residual(SelfAttention(layer)), Residual(FeedForward(layer))]


class Encoder(nn.Module):
    """An ``nn.TransformerEncoder`` whose layers are one converted stage, then its norm."""

    def __init__(self, stage: nn.Module, norm: Optional[nn.Module]):
        super().__init__()
        self.stage, self.norm = stage, norm

    def forward(self, src: Tensor, mask: Optional[Tensor] = None, src_key_padding_mask: Optional[Tensor] = None,
                is_causal: Optional[bool] = None) -> Tensor:
        if mask is not None or src_key_padding_mask is not None or is_causal:
            raise ValueError("a converted nn.TransformerEncoder takes no attention masks: its steps are functions "
                             "of the state alone")
        out = self.stage(src)
        return out if self.norm is None else self.norm(out)
