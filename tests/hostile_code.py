"""User code that misbehaves, for the supervisor-boundary tests (imported by target string)."""

from __future__ import annotations

import os
import random
import signal
import sys

import numpy as np
import torch
from torch import nn

if os.environ.get("NB_PRINT_ON_IMPORT"):
    print("hello from an import")


def _arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return x[:64], y[:64], x[64:], y[64:]


def loader() -> tuple[np.ndarray, ...]:
    return _arrays()


def exiting_loader() -> None:
    sys.exit(0)


def printing_loader() -> tuple[np.ndarray, ...]:
    print("hello from a loader")
    return _arrays()


def per_process_loader() -> tuple[np.ndarray, ...]:
    """Other data in every process: a loader seeded by its process id."""
    return _arrays(seed=os.getpid())


def tensor_loader(kind: str) -> tuple[object, ...]:
    """x_train in the tensor form ``kind``; the other three arrays plain."""
    x, y, xt, yt = _arrays()
    t = torch.from_numpy(x)
    forms = {
        "bfloat16": lambda: t.bfloat16(),
        "float16": lambda: t.half(),
        "sparse": lambda: t.to_sparse(),
        "noncontiguous": lambda: t.t().contiguous().t(),
        "meta": lambda: torch.empty(t.shape, device="meta"),
        "complex": lambda: t.to(torch.complex64),
        "object": lambda: x.astype(object),
        "huge": lambda: np.broadcast_to(np.float32(1), (10**13, 4)),
        "ragged": lambda: [[1.0, 2.0], [3.0]],
    }
    return forms[kind](), y, xt, yt


def small_net(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    return nn.Sequential(
        nn.Linear(input_shape[0], 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, num_outputs)
    )


def exiting_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    sys.exit(0)


def interrupting_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    raise KeyboardInterrupt


def printing_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    print("hello from a factory")
    return small_net(num_outputs, input_shape)


def exit_in_forward(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    class Quits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sys.exit(0)

    return nn.Sequential(small_net(num_outputs, input_shape), Quits())


def hard_exit_in_forward(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``os._exit(0)`` on the first forward: it would end the process with status 0, silently."""

    class Ends(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            os._exit(0)

    return nn.Sequential(small_net(num_outputs, input_shape), Ends())


def hard_exit_later(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Trains through the pre-flight's batch, then ``os._exit(0)`` from the 3rd forward on."""

    class EndsLater(nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            EndsLater.calls += 1
            if EndsLater.calls > 2:
                os._exit(0)
            return x

    return nn.Sequential(small_net(num_outputs, input_shape), EndsLater())


def wandering_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Changes the working directory (to its parent) while building."""
    os.chdir(os.path.dirname(os.getcwd()))
    return small_net(num_outputs, input_shape)


def deaf_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Ignores SIGINT and SIGTERM from now on (as a careless library might), then builds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return small_net(num_outputs, input_shape)


def state_changing_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``small_net``, then torch's process-wide switches left changed (as a careless script)."""
    net = small_net(num_outputs, input_shape)
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1 + torch.get_num_threads())
    return net


class Unprintable(Exception):
    """An exception whose message cannot be shown: ``str()`` raises; it spans lines besides."""

    def __str__(self) -> str:
        raise RuntimeError("no text\nfor you")


def unprintable_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    raise Unprintable()


def unprintable_later(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Trains through the pre-flight's batch, then raises ``Unprintable`` in training."""

    class Breaks(nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Breaks.calls += 1
            if Breaks.calls > 2:
                raise Unprintable()
            return x

    return nn.Sequential(small_net(num_outputs, input_shape), Breaks())


def multiline_factory(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    raise ValueError("first line\nsecond line\r\nthird " + "x" * 5000)


def numpy_init(num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Initial weights drawn from numpy's and Python's global generators."""
    net = small_net(num_outputs, input_shape)
    with torch.no_grad():
        first = net[0].weight
        first.copy_(torch.from_numpy(np.random.normal(size=tuple(first.shape))).float())
        first.mul_(random.uniform(0.5, 1.5))
    return net


class NoParams(nn.Module):
    """Outputs a slice of its input: runs, but has nothing to train."""

    def __init__(self, num_outputs: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.k = num_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.k] * 1.0


class PrintingNorm(nn.Module):
    """A custom norm that prints on every forward call."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("hello from a norm")
        return self.norm(x)
