"""VGG-style CNN: stages of Conv → Norm/Act (→ pool); 2-D for images, 1-D for sequences."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.models.common import Block, init_weights, keeps_bias


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class CNN(nn.Module):
    """``blocks`` hold every Conv block in order; pooling sits between stages."""

    def __init__(
        self, sample_shape: tuple[int, ...], cfg: dict[str, Any], num_outputs: int
    ) -> None:
        super().__init__()
        dims = len(sample_shape) - 1  # (C, L) → 1-D, (C, H, W) → 2-D
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        pool_cls = {
            "max": nn.MaxPool1d if dims == 1 else nn.MaxPool2d,
            "avg": nn.AvgPool1d if dims == 1 else nn.AvgPool2d,
        }.get(cfg["pool"])
        k, stride, pad = cfg["kernel_size"], cfg["stride"], cfg["kernel_size"] // 2
        norm, placement = cfg["norm"], cfg["placement"]
        bias = keeps_bias(norm, placement)
        size = list(sample_shape[1:])
        prev = sample_shape[0]
        layers: list[nn.Module] = []
        self.blocks = nn.ModuleList()
        for channels in cfg["channels"]:
            for _ in range(cfg["convs_per_stage"]):
                block = Block(
                    conv(prev, channels, k, stride=stride, padding=pad, bias=bias),
                    channels,
                    cfg["activation"],
                    norm,
                    placement,
                    cfg.get("dropout", 0.0),
                )
                self.blocks.append(block)
                layers.append(block)
                size = [_out_size(s, k, stride, pad) for s in size]
                prev = channels
            if pool_cls is not None and min(size) >= 2:
                layers.append(pool_cls(2))
                size = [s // 2 for s in size]
        self.features = nn.Sequential(*layers)
        self.mean_readout = cfg["readout"] == "mean"
        flat = prev if self.mean_readout else prev * int(torch.tensor(size).prod())
        self.head = nn.Linear(flat, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=tuple(range(2, x.dim()))) if self.mean_readout else x.flatten(1)
        return self.head(x)


def build_cnn(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build a CNN for samples shaped (C, L) or (C, H, W)."""
    model = CNN(sample_shape, cfg, num_outputs)
    init_weights(model, cfg)
    return model
