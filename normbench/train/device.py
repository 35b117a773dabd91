"""Device helpers in one place: resolve ``auto|cpu|cuda|cuda:N|mps`` and synchronise clocks."""

from __future__ import annotations

import torch

from normbench.errors import InputError


def resolve_device(name: str) -> torch.device:
    """Turn a suite's device string into a ``torch.device``; InputError when unavailable."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device '{name}' was asked for, but this machine has no CUDA GPU "
                "(use device: auto or cpu)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device '{name}' does not exist: {torch.cuda.device_count()} GPU(s) visible"
            )
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise InputError(f"device '{name}' was asked for, but MPS is not available here")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so a clock read measures finished work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
