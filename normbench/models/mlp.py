"""Multi-layer perceptron: Linear → Norm/Act per hidden width, then a Linear head."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from normbench.models.common import Block, init_weights, keeps_bias


class MLP(nn.Module):
    """``blocks`` are the hidden layers (diagnostics index them); ``head`` the classifier."""

    def __init__(self, in_features: int, cfg: dict[str, Any], num_outputs: int) -> None:
        super().__init__()
        hidden = cfg["hidden"]
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        norm, placement = cfg["norm"], cfg["placement"]
        bias = keeps_bias(norm, placement)
        blocks, prev = [], in_features
        for width in widths:
            blocks.append(Block(nn.Linear(prev, width, bias=bias), width, cfg["activation"], norm,
                                placement, cfg.get("dropout", 0.0)))
            prev = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(prev, num_outputs)
        self.residual = bool(cfg.get("residual"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            y = block(x)
            # A residual connection only where the widths agree (MNIST-1D's reference MLP).
            x = x + y if self.residual and y.shape == x.shape else y
        return self.head(x)


def build_mlp(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an MLP for inputs of ``sample_shape`` (flattened)."""
    model = MLP(math.prod(sample_shape), cfg, num_outputs)
    init_weights(model, cfg)
    return model
