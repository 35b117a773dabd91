"""Recurrent nets unrolled step by step, so a norm can act inside the recurrence.

``pre`` normalises the input and recurrent pre-activations separately, as recurrent batch norm
(Cooijmans et al. 2016) and the LayerNorm LSTM (Ba et al. 2016) do; ``post`` normalises the
hidden state each step before it is fed back. Norms that use batch statistics get their own
module per time step (statistics per step); steps past the training length reuse the last one.
The same unrolled implementation serves every norm, ``none`` included, so timings compare
like with like (it is slower than cuDNN's fused kernels).

``bidirectional: true`` runs a second layer (its own weights and norms) over the reversed
sequence and concatenates both directions' outputs per time step, (N, T, 2H). ``dropout``
applies to each layer's output sequence, outside the recurrence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.models.common import activation, dropout, init_weights, keeps_bias
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

    def __init__(
        self, cell: str, in_size: int, hidden: int, cfg: dict[str, Any], steps: int
    ) -> None:
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
                cand = self.act(gx[:, 2 * hs :] + r * gh[:, 2 * hs :])
                h = (1 - z) * cand + z * h
            else:
                i, f, o, gcell = (gx + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(gcell)
                h = torch.sigmoid(o) * self.act(c)
            if not self.pre:
                h = self.norm_out(h, t)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class BidirectionalLayer(nn.Module):
    """Two recurrent layers, one over the sequence and one over it reversed: (N, T, 2H).

    The output at step t is [forward state after x_0..x_t, backward state after x_{T-1}..x_t].
    ``act`` is the forward direction's, for the activation diagnostics.
    """

    def __init__(
        self, cell: str, in_size: int, hidden: int, cfg: dict[str, Any], steps: int
    ) -> None:
        super().__init__()
        self.fwd = RecurrentLayer(cell, in_size, hidden, cfg, steps)
        self.bwd = RecurrentLayer(cell, in_size, hidden, cfg, steps)
        self.act = self.fwd.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.fwd(x), self.bwd(x.flip(1)).flip(1)], dim=2)


class RNN(nn.Module):
    """Stacked recurrent layers (``blocks``), a readout over time, a Linear head.

    Readouts: ``last`` (the final state of each direction: step T-1 forward, step 0 backward),
    ``mean`` over steps, ``flatten`` every step's output (MNIST-1D's reference GRU).
    """

    def __init__(
        self, sample_shape: tuple[int, ...], cfg: dict[str, Any], num_outputs: int
    ) -> None:
        super().__init__()
        steps, features = sample_shape
        directions = 2 if cfg.get("bidirectional") else 1
        hidden = cfg["hidden"]
        sizes = [features] + [hidden * directions] * cfg["layers"]
        layer = BidirectionalLayer if directions == 2 else RecurrentLayer
        self.blocks = nn.ModuleList(
            layer(cfg["cell"], sizes[i], hidden, cfg, steps) for i in range(cfg["layers"])
        )
        self.drop = dropout(cfg.get("dropout", 0.0))
        self.readout, self.hidden, self.directions = cfg["readout"], hidden, directions
        width = hidden * directions * (steps if self.readout == "flatten" else 1)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
            if self.drop is not None:
                x = self.drop(x)
        if self.readout == "mean":
            return self.head(x.mean(1))
        if self.readout == "flatten":
            return self.head(x.flatten(1))
        if self.directions == 2:  # the backward direction has read the whole sequence at step 0
            return self.head(torch.cat([x[:, -1, : self.hidden], x[:, 0, self.hidden :]], dim=1))
        return self.head(x[:, -1])


class FusedRecurrent(nn.Module):
    """torch's own multi-layer ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` (``fused: true``, no norm):
    the reference implementations' layer, several times faster than the unrolled one on CPU.
    Dropout, as in the unrolled net, acts on each layer's outputs (torch's own ``dropout``
    argument does the same between layers; the last layer's outputs get it here)."""

    def __init__(self, cfg: dict[str, Any], features: int) -> None:
        super().__init__()
        kwargs: dict[str, Any] = {
            "batch_first": True,
            "num_layers": cfg["layers"],
            "bidirectional": bool(cfg.get("bidirectional")),
            "dropout": cfg.get("dropout", 0.0) if cfg["layers"] > 1 else 0.0,
        }
        if cfg["cell"] == "rnn":
            kwargs["nonlinearity"] = "relu" if cfg["activation"] == "relu" else "tanh"
        cls = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cfg["cell"]]
        self.rnn = cls(features, cfg["hidden"], **kwargs)
        self.drop = dropout(cfg.get("dropout", 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        return out if self.drop is None else self.drop(out)


class FusedRNN(RNN):
    """The RNN with its stacked layers replaced by one fused torch module (readouts unchanged)."""

    def __init__(
        self, sample_shape: tuple[int, ...], cfg: dict[str, Any], num_outputs: int
    ) -> None:
        super().__init__(sample_shape, {**cfg, "layers": 1, "dropout": 0.0}, num_outputs)
        self.blocks = nn.ModuleList([FusedRecurrent(cfg, sample_shape[1])])


def build_rnn(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an RNN for samples shaped (T, F)."""
    model = (FusedRNN if cfg.get("fused") else RNN)(sample_shape, cfg, num_outputs)
    init_weights(model, cfg)
    return model
