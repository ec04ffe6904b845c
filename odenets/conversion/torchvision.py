"""Adapters for torchvision's ResNet blocks (ResNet, ResNeXt, Wide-ResNet):
relu(downsample(x) + bn(conv(...)))."""
from __future__ import annotations

from torch import Tensor, nn

from .registry import Residual


class BasicBranch(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn of a torchvision BasicBlock."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = block.conv1, block.bn1, block.relu, block.conv2, block.bn2

    def forward(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class BottleneckBranch(BasicBranch):
    """conv1x1-bn-relu-conv3x3-bn-relu-conv1x1-bn of a torchvision Bottleneck."""

    def __init__(self, block: nn.Module):
        super().__init__(block)
        self.conv3, self.bn3 = block.conv3, block.bn3

    def forward(self, x: Tensor) -> Tensor:
        return self.bn3(self.conv3(self.relu(super().forward(x))))


def basic(block: nn.Module) -> list[Residual]:
    return [Residual(BasicBranch(block), block.downsample, nn.ReLU(inplace=True))]


def bottleneck(block: nn.Module) -> list[Residual]:
    return [Residual(BottleneckBranch(block), block.downsample, nn.ReLU(inplace=True))]
