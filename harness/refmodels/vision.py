"""A ResNet-style CNN (basic blocks, as in ResNet-18/34) for image classification."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.down = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.down(x))


class ResNetBasic(nn.Module):
    """Stem (7x7 stride-2 conv, max-pool), four stages of basic blocks with widths w, 2w, 4w,
    8w (stride 2 from the second stage on), global average pooling, a linear classifier.
    `blocks=(2, 2, 2, 2)` with `width=64` is ResNet-18."""

    def __init__(self, width: int, blocks: tuple[int, ...], classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        in_ch = width
        for stage, count in enumerate(blocks):
            out_ch = width * 2**stage
            for i in range(count):
                layers.append(BasicBlock(in_ch, out_ch, 2 if stage > 0 and i == 0 else 1))
                in_ch = out_ch
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, classes)

    def forward(self, images: Tensor) -> Tensor:
        x = self.stages(self.stem(images))
        return self.fc(torch.flatten(self.pool(x), 1))
