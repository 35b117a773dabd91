"""Byte-traffic model: the bytes a norm layer must move and the bandwidth that implies (torch-free).

Let ``X`` be the bytes of the input tensor (numel × element size), ``P`` the bytes of the
layer's parameters and ``B`` the bytes of its floating-point buffers (running statistics).
The model counts the traffic an ideal, fused implementation cannot avoid:

- forward:          read x (X) + write y (X) + read P + read B (+ write B in train mode,
                    where running statistics are updated)            = 2X + P + B (+ B)
- forward+backward: the forward, plus read dy (X) + read x again (X) + write dx (X)
                    + read P again (dx needs the weight) + write the parameter grads (P)
                                                                      = forward + 3X + 2P

Saved per-row/per-channel statistics (mean, rstd) are O(N) or O(C) and are left out; a real
kernel that re-reads y or writes extra intermediates moves more, which is exactly what the
fraction of copy bandwidth exposes. A device copy moves 2X (read + write).
"""

from __future__ import annotations


def forward_bytes(x_bytes: int, param_bytes: int, buffer_bytes: int, train: bool) -> int:
    """Bytes a forward pass must move: read x, write y, read params and buffers (+ update stats)."""
    return 2 * x_bytes + param_bytes + buffer_bytes * (2 if train else 1)


def forward_backward_bytes(x_bytes: int, param_bytes: int, buffer_bytes: int, train: bool) -> int:
    """Forward, plus read dy, re-read x, write dx, re-read params and write their grads."""
    return forward_bytes(x_bytes, param_bytes, buffer_bytes, train) + 3 * x_bytes + 2 * param_bytes


def copy_bytes(x_bytes: int) -> int:
    """A device-to-device copy reads and writes the tensor once."""
    return 2 * x_bytes


def pass_bytes(pass_: str, x_bytes: int, param_bytes: int, buffer_bytes: int, train: bool) -> int:
    """Dispatch on the pass name used in records (``forward`` or ``forward+backward``)."""
    if pass_ == "forward":
        return forward_bytes(x_bytes, param_bytes, buffer_bytes, train)
    if pass_ == "forward+backward":
        return forward_backward_bytes(x_bytes, param_bytes, buffer_bytes, train)
    raise ValueError(f"unknown pass {pass_!r}")


def gbps(num_bytes: int, seconds: float) -> float:
    """Achieved bandwidth in GB/s (10⁹ bytes per second)."""
    return num_bytes / seconds / 1e9 if seconds > 0 else float("nan")
