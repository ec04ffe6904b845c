"""PyTorch's own transformer encoder: an ``nn.TransformerEncoderLayer`` is two residual
sub-steps, self-attention then feed-forward; pre-norm, each normalises its input; post-norm
(``norm_first=False``), each is a residual step followed by its own norm, x -> norm(x + g(x)),
as torchvision's blocks are a step followed by a ReLU."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn
from torch.nn import functional as F

from .registry import Residual


class SelfAttention(nn.Module):
    """dropout1(self_attn(norm1(x))) of a pre-norm encoder layer (no norm: post-norm)."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.norm1 = layer.norm1 if layer.norm_first else nn.Identity()
        self.self_attn, self.dropout1 = layer.self_attn, layer.dropout1

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None,
                is_causal: bool = False) -> Tensor:
        x = self.norm1(x)
        return self.dropout1(self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask,
                                            need_weights=False, is_causal=is_causal)[0])


class FeedForward(nn.Module):
    """dropout2(linear2(dropout(activation(linear1(norm2(x)))))) of a pre-norm encoder layer
    (no norm: post-norm)."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.norm2 = layer.norm2 if layer.norm_first else nn.Identity()
        self.linear1, self.dropout, self.linear2 = layer.linear1, layer.dropout, layer.linear2
        self.dropout2 = layer.dropout2
        self.activation = layer.activation  # a module or a function such as F.relu

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None,
                is_causal: bool = False) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(self.norm2(x))))))


def encoder_layer(layer: nn.TransformerEncoderLayer) -> list[Residual]:
    if layer.norm_first:
        return [Residual(SelfAttention(layer)), Residual(FeedForward(layer))]
    return [Residual(SelfAttention(layer), activation=layer.norm1), Residual(FeedForward(layer), activation=layer.norm2)]


class Encoder(nn.Module):
    """An ``nn.TransformerEncoder`` whose layers are one converted stage, then its norm."""

    def __init__(self, stage: nn.Module, norm: Optional[nn.Module]):
        super().__init__()
        self.stage, self.norm = stage, norm

    def forward(self, src: Tensor, mask: Optional[Tensor] = None, src_key_padding_mask: Optional[Tensor] = None,
                is_causal: Optional[bool] = None) -> Tensor:
        """As ``nn.TransformerEncoder.forward`` (its slow path, no nested tensors): the
        masks, made float as it makes them, reach every attention step as its context."""
        context = {}
        if src_key_padding_mask is not None:
            context["key_padding_mask"] = F._canonical_mask(
                mask=src_key_padding_mask, mask_name="src_key_padding_mask", other_type=F._none_or_dtype(mask),
                other_name="mask", target_type=src.dtype)
        if mask is not None:
            context["mask"] = F._canonical_mask(mask=mask, mask_name="mask", other_type=None, other_name="",
                                                target_type=src.dtype, check_other=False)
        if is_causal:
            if mask is None:
                raise ValueError("is_causal=True is a hint that mask is the causal mask; give the mask too "
                                 "(nn.Transformer.generate_square_subsequent_mask), as nn.TransformerEncoder wants")
            context["is_causal"] = True
        out = self.stage(src, **context)
        return out if self.norm is None else self.norm(out)
