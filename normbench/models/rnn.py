"""Recurrent nets unrolled step by step, so a norm can act inside the recurrence.

``pre`` normalises the input and recurrent pre-activations separately, as recurrent batch norm
(Cooijmans et al. 2016) and the LayerNorm LSTM (Ba et al. 2016) do; ``post`` normalises the
hidden state each step before it is fed back. Norms that use batch statistics get their own
module per time step (statistics per step); steps past the training length reuse the last one.
The same unrolled implementation serves every norm, ``none`` included, so timings compare
like with like (it is slower than cuDNN's fused kernels).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.models.common import activation, init_weights, keeps_bias
from normbench.norms import catalog, make, wrap

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


class _PerStep(nn.Module):
    """One norm shared over time, or one per time step for batch-statistics norms."""

    def __init__(self, width: int, norm: dict[str, Any], steps: int) -> None:
        super().__init__()
        per_step = catalog.NORMS[norm["kind"]].uses_batch_stats
        self.norms = nn.ModuleList(make(width, norm) for _ in range(steps if per_step else 1))

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.norms[min(t, len(self.norms) - 1)](x)


class RecurrentLayer(nn.Module):
    """One recurrent layer over (N, T, F) → (N, T, H)."""

    def __init__(self, cell: str, in_size: int, hidden: int, cfg: dict[str, Any], steps: int) -> None:
        super().__init__()
        norm, placement = cfg["norm"], cfg["placement"]
        g = GATES[cell] * hidden
        self.cell, self.hidden, self.pre = cell, hidden, placement == "pre"
        self.wx = wrap(nn.Linear(in_size, g, bias=keeps_bias(norm, placement)), norm)
        self.wh = wrap(nn.Linear(hidden, g, bias=False), norm)
        if self.pre:
            self.norm_x, self.norm_h = _PerStep(g, norm, steps), _PerStep(g, norm, steps)
        else:
            self.norm_out = _PerStep(hidden, norm, steps)
        self.act = activation(cfg["activation"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps, _ = x.shape
        gx_all = self.wx(x)  # (N, T, G): one matmul for every step
        h = x.new_zeros(n, self.hidden)
        c = x.new_zeros(n, self.hidden)
        outputs = []
        for t in range(steps):
            gx, gh = gx_all[:, t], self.wh(h)
            if self.pre:
                gx, gh = self.norm_x(gx, t), self.norm_h(gh, t)
            if self.cell == "rnn":
                h = self.act(gx + gh)
            elif self.cell == "gru":
                hs = self.hidden
                rz = torch.sigmoid(gx[:, : 2 * hs] + gh[:, : 2 * hs])
                r, z = rz[:, :hs], rz[:, hs:]
                cand = self.act(gx[:, 2 * hs:] + r * gh[:, 2 * hs:])
                h = (1 - z) * cand + z * h
            else:
                i, f, o, gcell = (gx + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(gcell)
                h = torch.sigmoid(o) * self.act(c)
            if not self.pre:
                h = self.norm_out(h, t)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class RNN(nn.Module):
    """Stacked recurrent layers (``blocks``), a readout over time, a Linear head."""

    def __init__(self, sample_shape: tuple[int, ...], cfg: dict[str, Any], num_outputs: int) -> None:
        super().__init__()
        steps, features = sample_shape
        sizes = [features] + [cfg["hidden"]] * cfg["layers"]
        self.blocks = nn.ModuleList(
            RecurrentLayer(cfg["cell"], sizes[i], cfg["hidden"], cfg, steps) for i in range(cfg["layers"])
        )
        self.mean_readout = cfg["readout"] == "mean"
        self.head = nn.Linear(cfg["hidden"], num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(1) if self.mean_readout else x[:, -1])


def build_rnn(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an RNN for samples shaped (T, F)."""
    model = RNN(sample_shape, cfg, num_outputs)
    init_weights(model, cfg)
    return model
