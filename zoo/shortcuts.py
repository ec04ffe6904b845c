"""Shortcuts P of shape-changing steps, u_{n+1} = P(u_n) + f_n(u_n).

The step of a block that changes the state's shape is given one (``ODENet(...,
shortcuts=...)``); it applies it to u_n and, for a multistep scheme, to the past states too.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PadShortcut(nn.Module):
    """He et al.'s option A for CIFAR: subsample with the stride and append zero channels.

    Parameter-free and linear, so the past states of a multistep scheme cross it unchanged
    in kind."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"PadShortcut pads channels; it cannot map {in_channels} to {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, u: Tensor) -> Tensor:
        if self.stride > 1:
            u = u[:, :, ::self.stride, ::self.stride]
        return F.pad(u, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class Projection(nn.Sequential):
    """torchvision's ``downsample`` (option B): a strided 1x1 convolution and batch norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            bn=nn.BatchNorm2d(out_channels)))


class PreActProjection(nn.Sequential):
    """The LM-ResNet authors' shortcut: BN-ReLU-conv1x1(stride), no bias."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(OrderedDict(
            bn=nn.BatchNorm2d(in_channels), relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)))


class Halves(nn.Module):
    """P applied to each half (X, Y) of a RevNet state: (X, Y) -> (P(X), P(Y))."""

    def __init__(self, each: nn.Module):
        super().__init__()
        self.each = each

    def forward(self, u: Tensor) -> Tensor:
        return torch.cat([self.each(x) for x in u.chunk(2, dim=1)], dim=1)


SHORTCUTS = {"pad": PadShortcut, "projection": Projection, "preact": PreActProjection}


def shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """``'pad'`` (option A), ``'projection'`` (option B) or ``'preact'`` (the LM-ResNet authors')."""
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; choose one of: {', '.join(SHORTCUTS)}")
    return SHORTCUTS[kind](in_channels, out_channels, stride)
