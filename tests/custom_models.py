"""User-style model factories and data loaders for the custom-model tests (imported by target)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MixedNet(nn.Module):
    """Conv2d → BatchNorm2d → ReLU, then Linear → BatchNorm1d (a 1-D feature layer) → head."""

    def __init__(
        self, num_outputs: int, input_shape: tuple[int, ...], channels: int = 8, hidden: int = 12
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.fc = nn.Linear(channels * h * w, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.act = nn.ReLU()
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.fc(self.features(x).flatten(1)))))


def mixed_net(
    num_outputs: int, input_shape: tuple[int, ...], channels: int = 8, hidden: int = 12
) -> nn.Module:
    """The factory form of MixedNet (a function, not the class)."""
    return MixedNet(num_outputs, input_shape, channels, hidden)


class SeqNet(nn.Module):
    """(N, T, F) with a LayerNorm over the last axis, the way transformers place it."""

    def __init__(self, num_outputs: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        steps, features = input_shape
        self.proj = nn.Linear(features, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8 * steps, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.proj(x))).flatten(1))


def raising(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    raise ValueError("no weights for this size")


def not_a_module(num_outputs: int, input_shape: tuple[int, ...]) -> list[int]:
    return [num_outputs]


def wrong_outputs(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    return MixedNet(num_outputs + 3, input_shape)


def no_input_shape(num_outputs: int) -> nn.Module:
    return nn.Linear(4, num_outputs)


def images(n_train: int = 96, n_test: int = 48, classes: int = 3) -> dict[str, torch.Tensor]:
    """Tiny 1×6×6 images whose class is the quadrant with the bright blob, as torch tensors."""
    gen = torch.Generator().manual_seed(7)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (n,), generator=gen)
        x = 0.3 * torch.randn(n, 1, 6, 6, generator=gen)
        for k in range(classes):
            r, c = divmod(k, 2)
            x[y == k, :, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3] += 1.0
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def sequences() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, T=5, F=3) float sequences as a 4-tuple of numpy arrays; class = sign of the sum."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 5, 3)).astype(np.float32)
    y = (x.sum((1, 2)) > 0).astype(np.int64)
    return x[:80], y[:80], x[80:], y[80:]


def broken_loader() -> str:
    return "not arrays"


def plain_mlp(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """No norm layer at all: swapping a norm in is refused."""
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, num_outputs))


class TokenNet(nn.Module):
    """Token ids (N, T) → logits (N, T, vocabulary): an embedding and a linear read-out per
    position, the classes last as normbench's per-token loss takes them."""

    def __init__(self, num_outputs: int, input_shape: tuple[int, ...], width: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_outputs, width)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x.long()))
