"""Adapters for timm's ResNet blocks, ConvNeXt blocks and Vision Transformer blocks
(ViT, DeiT): each residual branch with its LayerScale and DropPath inside."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .registry import Residual


class ResNetBranch(nn.Module):
    """The residual branch of a timm ResNet BasicBlock or Bottleneck, up to its drop path."""

    def __init__(self, block: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.names = names
        for name in names:
            setattr(self, name, getattr(block, name))

    def forward(self, x: Tensor) -> Tensor:
        for name in self.names:
            module = getattr(self, name)
            if module is not None:
                x = module(x)
        return x


_BASIC = ("conv1", "bn1", "drop_block", "act1", "aa", "conv2", "bn2", "se", "drop_path")
_BOTTLENECK = ("conv1", "bn1", "act1", "conv2", "bn2", "drop_block", "act2", "aa", "conv3", "bn3", "se",
               "drop_path")


def resnet_basic(block: nn.Module) -> list[Residual]:
    return [Residual(ResNetBranch(block, _BASIC), block.downsample, block.act2)]


def resnet_bottleneck(block: nn.Module) -> list[Residual]:
    return [Residual(ResNetBranch(block, _BOTTLENECK), block.downsample, block.act3)]


class ConvNeXtBranch(nn.Module):
    """drop_path(gamma * mlp(norm(conv_dw(x)))) of a timm ConvNeXtBlock (gamma: its LayerScale)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv_dw, self.norm, self.mlp, self.drop_path = block.conv_dw, block.norm, block.mlp, block.drop_path
        self.use_conv_mlp = block.use_conv_mlp
        self.gamma = block.gamma

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_dw(x)
        if self.use_conv_mlp:
            x = self.mlp(self.norm(x))
        else:
            x = self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x)


def convnext(block: nn.Module) -> list[Residual]:
    shortcut = None if isinstance(block.shortcut, nn.Identity) else block.shortcut
    return [Residual(ConvNeXtBranch(block), shortcut)]


class ViTAttention(nn.Module):
    """drop_path1(ls1(attn(norm1(x), attn_mask, is_causal))) of a timm ViT block: the
    mask and causality come as the steps' context (timm's forward_features hands them to
    each block it iterates)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.norm1, self.attn, self.ls1, self.drop_path1 = block.norm1, block.attn, block.ls1, block.drop_path1

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
        x = self.norm1(x)
        x = self.attn(x, attn_mask=attn_mask, is_causal=is_causal) if attn_mask is not None or is_causal \
            else self.attn(x)  # timm before 1.0 takes no mask
        return self.drop_path1(self.ls1(x))


class ViTMLP(nn.Module):
    """drop_path2(ls2(mlp(norm2(x)))) of a timm ViT block; it reads no mask."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.norm2, self.mlp, self.ls2, self.drop_path2 = block.norm2, block.mlp, block.ls2, block.drop_path2

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None, is_causal: bool = False) -> Tensor:
        return self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def vit(block: nn.Module) -> list[Residual]:
    """Two sub-steps: attention, then MLP, each with its norm, LayerScale and DropPath."""
    return [Residual(ViTAttention(block)), Residual(ViTMLP(block))]
