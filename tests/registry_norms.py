"""A test-only norm, registered through ``register_norm`` by the registry tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from normbench.errors import OptionError
from normbench.norms import NormContext, NormEntry, Option

NAME = "test_pair_scale"


class PairScale(nn.Module):
    """y = gain · (x − mean over each pair of channels) + β: centres, so the bias before it goes.

    The per-pair mean is a per-channel quantity only in name, but it cancels a per-channel bias
    only when both channels of a pair carry the same bias; ``centres`` says what the entry says.
    """

    def __init__(self, num_features: int, gain: float = 1.0, shift: bool = True) -> None:
        super().__init__()
        self.gain = gain
        self.bias = nn.Parameter(torch.zeros(num_features)) if shift else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pairs = x.reshape(x.shape[0], -1, 2, *x.shape[2:])
        y = (pairs - pairs.mean(2, keepdim=True)).reshape(x.shape) * self.gain
        if self.bias is None:
            return y
        return y + self.bias.view((1, -1) + (1,) * (x.dim() - 2))


def _check_not_identity(spec: Mapping[str, Any]) -> None:
    # A cross-option check: the one combination that is refused whatever the model.
    if spec["gain"] == 0.0 and not spec["shift"]:
        raise OptionError("gain 0 without shift outputs zeros", ("gain",))


def _check_even_widths(spec: Mapping[str, Any], ctx: NormContext) -> None:
    odd = [w for w in ctx.widths if w % 2]
    if odd:
        raise OptionError(
            f"{NAME} pairs channels: every width must be even, not {', '.join(map(str, odd))}"
        )


ENTRY = NormEntry(
    name=NAME,
    summary="test-only: centres each pair of channels, times gain, plus an optional bias",
    options=(
        Option("gain", "float", 1.0, "output scale", min=0.0, max=10.0),
        Option("shift", "bool", True, "add a learned per-channel bias"),
    ),
    layouts=("features", "spatial"),
    uses_batch_stats=False,
    wraps_layer=False,
    cls="registry_norms:PairScale",
    centres_per_channel=True,
    aliases=("pairscale", "pair_norm"),
    check_options=_check_not_identity,
    check_context=_check_even_widths,
)
