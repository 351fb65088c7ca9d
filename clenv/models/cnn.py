"""A small ResNet-style CNN for 8-32 px images."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = (nn.Identity() if stride == 1 and c_in == c_out else
                      nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                    nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class SmallResNet(nn.Module):
    """Stem conv, stages of BasicBlocks (width doubling, stride 2 after the first stage),
    global average pooling, a linear head."""

    def __init__(self, input_shape: tuple[int, ...], n_out: int, width: int = 32,
                 blocks: list[int] | None = None) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image input (C, H, W), got shape {input_shape}")
        blocks = blocks if blocks is not None else [1, 1, 1]
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU()]
        c = width
        for stage, n in enumerate(blocks):
            c_out = width * 2 ** stage
            for b in range(n):
                layers.append(BasicBlock(c, c_out, 2 if (stage > 0 and b == 0) else 1))
                c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = c
        self.head = nn.Linear(c, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
