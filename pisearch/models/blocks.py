"""Residual blocks (torchvision's layout) whose activations are passed in, one module per site."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class Conv1x1(nn.Conv2d):
    """A 1×1 convolution whose stride is taken by subsampling first (the same function and parameters).

    oneDNN 3.12 (torch 2.14.1) corrupts the heap in the backward pass of a strided 1×1 convolution on
    channels_last input with fewer than 8 input channels on AVX2-only CPUs; a stride-1 convolution of the
    subsampled input computes the same values without that kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return Conv1x1(c_in, c_out, 1, stride, 0, bias=False)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """conv3x3-BN-act1-conv3x3-BN, + shortcut, act2 (two sites)."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, acts: list[nn.Module]) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = conv3x3(c_in, width, stride), nn.BatchNorm2d(width), acts[0]
        self.conv2, self.bn2, self.act2 = conv3x3(width, width), nn.BatchNorm2d(width), acts[1]
        self.downsample = _downsample(c_in, width, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """conv1x1-BN-act1-conv3x3(stride)-BN-act2-conv1x1-BN, + shortcut, act3 (three sites)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, acts: list[nn.Module]) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1, self.bn1, self.act1 = conv1x1(c_in, width), nn.BatchNorm2d(width), acts[0]
        self.conv2, self.bn2, self.act2 = conv3x3(width, width, stride), nn.BatchNorm2d(width), acts[1]
        self.conv3, self.bn3, self.act3 = conv1x1(width, c_out), nn.BatchNorm2d(c_out), acts[2]
        self.downsample = _downsample(c_in, c_out, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + (x if self.downsample is None else self.downsample(x)))


class PreActBlock(nn.Module):
    """WideResNet block: BN-act1-conv3x3(stride)-BN-act2-conv3x3, + shortcut (two sites).

    As in SNL's WideResNet, a channel-changing shortcut is a 1×1 conv applied to ``act1(BN(x))``.
    """

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, acts: list[nn.Module]) -> None:
        super().__init__()
        self.bn1, self.act1, self.conv1 = nn.BatchNorm2d(c_in), acts[0], conv3x3(c_in, width, stride)
        self.bn2, self.act2, self.conv2 = nn.BatchNorm2d(width), acts[1], conv3x3(width, width)
        self.shortcut = None if stride == 1 and c_in == width else conv1x1(c_in, width, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        out = self.conv2(self.act2(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
