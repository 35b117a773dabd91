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
            blocks.append(
                Block(
                    nn.Linear(prev, width, bias=bias),
                    width,
                    cfg["activation"],
                    norm,
                    placement,
                    cfg.get("dropout", 0.0),
                )
            )
            prev = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(prev, num_outputs)
        self.residual = bool(cfg.get("residual"))
        # The hot path of tiny models: each block's (layer, norm or None, act, pre, drop) called
        # directly, skipping the Block module's own __call__ (~3 µs per block per step, a few %
        # of a 40-input MLP's step). A plain list, so these are not registered twice. Used
        # only while no hook watches a Block (see ``_blocks_hooked``); Block.forward is the
        # reference and computes the same ops in the same order.
        self._fast = [
            (b.layer, None if b.skip_norm else b.norm, b.act, b.pre, b.drop) for b in blocks
        ]
        self._fast_blocks = list(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            x = x.flatten(1)
        if not self.residual and not self._blocks_hooked():
            for layer, norm, act, pre, drop in self._fast:
                x = layer(x)
                if norm is None:
                    x = act(x)
                elif pre:
                    x = act(norm(x))
                else:
                    x = norm(act(x))
                if drop is not None:
                    x = drop(x)
            return self.head(x)
        for block in self.blocks:
            y = block(x)
            # A residual connection only where the widths agree (MNIST-1D's reference MLP).
            x = x + y if self.residual and y.shape == x.shape else y
        return self.head(x)

    def _blocks_hooked(self) -> bool:
        """Whether any hook would be skipped by the direct path (blocks' own or global)."""
        if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
            return True
        for block in self._fast_blocks:  # noqa: SIM110 (a loop, not any(genexpr): runs every step)
            if block._forward_hooks or block._forward_pre_hooks:
                return True
        return False


def build_mlp(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an MLP for inputs of ``sample_shape`` (flattened)."""
    model = MLP(math.prod(sample_shape), cfg, num_outputs)
    init_weights(model, cfg)
    return model
