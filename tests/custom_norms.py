"""User-style norm classes for the ``custom`` norm tests (imported by target string)."""

from __future__ import annotations

import os
import sys
import time

import torch
from torch import nn


class Scale(nn.Module):
    """A learnable per-feature scale: the simplest custom norm that trains."""

    def __init__(self, num_features: int, init: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_features,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.weight.view(shape)


class Raising(nn.Module):
    """Fails in forward, like a buggy user layer (the variant must become ``failed``)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this layer is broken on purpose")


class Sleepy(nn.Module):
    """Identity that sleeps ``NB_SLEEP_MS`` ms per call: a real injected slowdown."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delay = float(os.environ.get("NB_SLEEP_MS", "0"))
        if delay:
            time.sleep(delay / 1000)
        return x


class Noisy(nn.Module):
    """LayerNorm that adds noise of std ``NB_NOISE`` (a behaviour change the suite cannot see)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        std = float(os.environ.get("NB_NOISE", "0"))
        return y + std * torch.randn_like(y) if std else y


class Killer(nn.Module):
    """Kills its own process in forward, like a segfault or the OOM killer (worker isolation)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        return x


class SysExit(nn.Module):
    """Calls ``sys.exit(0)`` in forward: must fail its variant, not end the run with exit 0."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import sys

        sys.exit(0)


class OsExit(nn.Module):
    """Calls ``os._exit(1)`` in forward: only a worker process can survive it."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os._exit(1)


def _timed_for_relative_cost() -> bool:
    """Whether the caller runs inside the relative-cost measurement (not training)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("train", "relcost.py")):
            return True
        frame = frame.f_back
    return False


class DiesWhenTimed(nn.Module):
    """Identity that ends its process (``os._exit(3)``) only when the relative-cost
    measurement steps it: training succeeds, measuring its cost kills the worker."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _timed_for_relative_cost():
            os._exit(3)
        return x


class SlowWhenTimed(nn.Module):
    """Identity that sleeps 50 ms per call only while its relative cost is measured."""

    def __init__(self, num_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _timed_for_relative_cost():
            time.sleep(0.05)
        return x


def make_scale(num_features: int) -> nn.Module:
    """A documented factory: a function annotated to return an ``nn.Module``."""
    return Scale(num_features)


class Jittery(nn.Module):
    """Blocks the signal (outputs zeros) and sleeps ``NB_JITTER_MS`` in every other block of
    10 training calls.

    With two norms per forward and ``eval_every: 5`` every other eval interval is slow: a
    real, deterministic spread between intervals (the ``(noisy)`` flag's case); with no
    signal the variant never reaches a target (a missing value beside a noisy timing).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            delay = float(os.environ.get("NB_JITTER_MS", "0"))
            if delay and (self.calls - 1) // 10 % 2:
                time.sleep(delay / 1000)
        return x * 0
