"""Pieces shared by the model builders: activations, the Layer → Norm/Act block, init."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.norms import NORMS, make, wrap


def activation(name: str) -> nn.Module:
    """The activation module for a registry name."""
    return {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "leaky_relu": nn.LeakyReLU,
        "identity": nn.Identity,
    }[name]()


def keeps_bias(norm: dict[str, Any], placement: str) -> bool:
    """Whether the Linear/Conv before the norm needs its own bias.

    A norm that centres per channel cancels that bias exactly (``centres_per_channel``).
    """
    entry = NORMS.get(norm["kind"])
    return not (placement == "pre" and entry is not None and entry.centres_per_channel)


def dropout(p: float) -> nn.Module | None:
    """A dropout module for ``p > 0``; None otherwise, so a model without dropout has no extra
    module and draws nothing from the RNG (its numbers stay those of earlier versions)."""
    return nn.Dropout(p) if p > 0 else None


class Block(nn.Module):
    """Layer → Norm → Act (``pre``) or Layer → Act → Norm (``post``), then Dropout if any.

    Dropout sits on the block's output, i.e. before the next layer's Linear/Conv and so before
    the next norm (the usual "BN → act → dropout" order; Li et al. 2019's variance shift is
    about this order). ``act`` is its own module so diagnostics can hook the input of the
    non-linearity.
    """

    def __init__(
        self,
        layer: nn.Module,
        width: int,
        act: str,
        norm: dict[str, Any],
        placement: str,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.layer = wrap(layer, norm)
        self.norm = make(width, norm)
        self.act = activation(act)
        self.pre = placement == "pre"
        self.drop = dropout(drop)
        # No norm: skip the Identity module's call (a few µs per step on tiny models). Nothing
        # hooks it: diagnostics hook the activation, which always runs.
        self.skip_norm = isinstance(self.norm, nn.Identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        if self.skip_norm:
            x = self.act(x)
        else:
            x = self.act(self.norm(x)) if self.pre else self.norm(self.act(x))
        return x if self.drop is None else self.drop(x)


def init_weights(model: nn.Module, cfg: dict[str, Any]) -> None:
    """Apply the configured initialisation to every Linear/Conv weight (biases to zero)."""
    scheme = cfg.get("init", "default")
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            weight = getattr(module, "parametrizations", None)
            # Weight-normalised layers keep their own (g, v) parametrisation; init v.
            w = module.parametrizations.weight.original1 if weight is not None else module.weight
            with torch.no_grad():
                if scheme == "gaussian":
                    w.normal_(0.0, cfg.get("init_std", 0.01))
                elif scheme == "xavier":
                    nn.init.xavier_uniform_(w)
                elif scheme == "kaiming":
                    nn.init.kaiming_uniform_(w, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
