"""ResNet-20 for 32×32 images, as in He et al. 2016, section 4.2 (option-A shortcuts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "resnet20"]

_STAGE_CHANNELS = (16, 32, 64)


class _PadShortcut(nn.Module):
    """Option A: identity with stride-2 subsampling and zero-padded extra channels (no weights)."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with a shortcut added before the last ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = (
            _PadShortcut(out_channels - in_channels)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A 6n+2-layer CIFAR ResNet: a 3×3 stem, three stages of n blocks, global pool, linear."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10):
        super().__init__()
        self.blocks_per_stage = blocks_per_stage
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, _STAGE_CHANNELS[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(_STAGE_CHANNELS[0])
        layers: list[nn.Module] = []
        in_channels = _STAGE_CHANNELS[0]
        for stage, channels in enumerate(_STAGE_CHANNELS):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, channels, stride))
                in_channels = channels
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.layers(F.relu(self.bn(self.conv(x))))
        logits: torch.Tensor = self.fc(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))
        return logits


def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 (3 stages × 3 basic blocks, 16/32/64 channels): 0.27 M parameters."""
    return CifarResNet(3, num_classes)
