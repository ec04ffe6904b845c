"""Residual functions f_n: the branch of a residual block, never its skip connection.

The ODENet adds the skip (u_n, or P(u_n) for a block whose step has a shortcut P) and,
in a post-activation network, the ReLU after the addition. Submodule names follow
torchvision (conv1, bn1, ...), so its weights map onto these blocks by name.
"""
from __future__ import annotations

from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """f(u) = BN(conv3x3(ReLU(BN(conv3x3(u))))), the stride on the first convolution
    (He et al. 2016; torchvision's BasicBlock without skip and final ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, u: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(u)))))


class Bottleneck(nn.Module):
    """f(u) = BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(u)))))))) through ``width``
    inner channels, the stride on the 3x3 convolution (torchvision's ResNet v1.5).
    With ``groups`` > 1 the 3x3 convolution is grouped: the ResNeXt block (Xie et al. 2017)."""

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, u: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(u)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PreActBasic(nn.Module):
    """f(u) = conv3x3(ReLU(BN(conv3x3(ReLU(BN(u)))))): the pre-activation basic block
    (He et al. 2016, "Identity mappings"), for networks without a ReLU after the addition."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)

    def forward(self, u: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(u)))
        return self.conv2(self.relu(self.bn2(out)))


class PreActBottleneck(nn.Module):
    """The pre-activation bottleneck of ResNet-164: BN-ReLU-conv1x1, BN-ReLU-conv3x3
    (stride, groups), BN-ReLU-conv1x1."""

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, u: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(u)))
        out = self.conv2(self.relu(self.bn2(out)))
        return self.conv3(self.relu(self.bn3(out)))
