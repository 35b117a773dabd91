"""A test-only model kind registered from this one module: its entry and its builder."""

from __future__ import annotations

from typing import Any

from torch import nn

from normbench.models.catalog import ModelKind, common_options
from normbench.norms import make
from normbench.options import Option

NAME = "toy"


class Toy(nn.Module):
    """Linear → norm → ReLU → Linear: the smallest model whose norm a suite can choose."""

    def __init__(self, features: int, width: int, norm: dict[str, Any], num_outputs: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(features, width), make(width, norm))])
        self.blocks[0].act = nn.ReLU()
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: Any) -> Any:
        block = self.blocks[0]
        return self.head(block.act(block(x.flatten(1))))


def build_toy(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> Toy:
    features = 1
    for n in sample_shape:
        features *= n
    return Toy(features, cfg["width"], cfg["norm"], num_outputs)


def _check(cfg: dict[str, Any], given: set[str]) -> None:
    from normbench.errors import OptionError

    if cfg["width"] % 2:
        raise OptionError(f"a toy's width must be even, got {cfg['width']}", ("width",))


ENTRY = ModelKind(
    NAME,
    "test-only: Linear → Norm → ReLU → Linear",
    (Option("width", "int", 8, "hidden width", min=1), *common_options()),
    "registry_models:build_toy",
    norm_layout="features",
    accepts=("vector", "sequence", "image"),
    view=lambda x, layout: (x.reshape(len(x), -1), "vector"),
    widths=lambda cfg: (cfg["width"],),
    blocks=lambda cfg: 1,
    check=_check,
)
