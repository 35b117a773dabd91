"""A small ResNet with batch norm inside: the kind of model you bring to normbench.

Nothing here knows about normbench. ``small_resnet`` follows the documented factory
signature (``num_outputs``, ``input_shape``, then its own options), so a suite can build it
with ``model: {kind: custom, target: "resnet:small_resnet"}`` and swap its BatchNorm layers
for any registry norm. 1-D inputs (N, L) or (N, C, L) get Conv1d/BatchNorm1d, images
(N, C, H, W) Conv2d/BatchNorm2d.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv → BN → ReLU → conv → BN, plus the (projected) input, → ReLU (He et al. 2016)."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(cout)
        self.relu = nn.ReLU()
        self.conv2 = conv(cout, cout, 3, padding=1, bias=False)
        self.bn2 = bn(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride=stride, bias=False), bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem, one BasicBlock per stage (channels doubling, stride 2), global pool, linear."""

    def __init__(
        self, num_outputs: int, input_shape: tuple[int, ...], width: int = 16, stages: int = 3
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        self.unsqueeze = len(shape) == 1  # (L,) sequences become one channel
        if self.unsqueeze:
            shape = (1, *shape)
        dims = len(shape) - 1
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(shape[0], width, 3, padding=1, bias=False)
        self.bn1 = bn(width)
        self.relu = nn.ReLU()
        layers, cin = [], width
        for i in range(stages):
            cout = width * 2**i
            layers.append(BasicBlock(dims, cin, cout, stride=1 if i == 0 else 2))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unsqueeze:
            x = x.unsqueeze(1)
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.fc(x.flatten(2).mean(2))


def small_resnet(
    num_outputs: int, input_shape: tuple[int, ...], width: int = 16, stages: int = 3
) -> nn.Module:
    """The factory a suite names: ``target: "resnet:small_resnet"``."""
    return SmallResNet(num_outputs, input_shape, width=width, stages=stages)
