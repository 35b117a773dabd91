"""Where a training step's time goes: forward / backward / optimizer, median and IQR, memory.

Measured after training on a copy of the model and optimizer, so the recorded run is not
changed by the measurement. Each phase is bracketed by a device synchronisation so that
asynchronous GPU work is charged to the phase that queued it.
"""

from __future__ import annotations

import copy
import resource
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn

from normbench.spread import quartiles
from normbench.train.device import synchronize
from normbench.train.optim import make_optimizer

NOISY_IQR = 0.10  # IQR/median above this marks a timing as noisy in tables


def median_iqr(values: list[float]) -> dict[str, float | None]:
    """Median, inter-quartile range and whether the spread makes the figure noisy."""
    if not values:
        return {"median": None, "iqr": None, "noisy": None}
    if len(values) < 4:
        med = statistics.median(values)
        return {"median": med, "iqr": None, "noisy": None}
    q1, med, q3 = quartiles(values)
    return {"median": med, "iqr": q3 - q1, "noisy": bool(med > 0 and (q3 - q1) / med > NOISY_IQR)}


MIB = 2**20


def peak_memory_mb(device: torch.device) -> float | None:
    """CUDA max allocated on a GPU; None elsewhere (the process RSS is ``process_rss_mb``)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    return None


def process_rss_mb() -> float:
    """The process's peak resident set size: torch, Python and the data included."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _tensor_bytes(tensors: Any) -> int:
    seen: dict[tuple[int, int], int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            # One tensor saved twice (a ReLU output that is also the next Linear's input) counts
            # once; a slice counts its own elements, not the whole batch of data it views.
            key = (t.data_ptr(), t.numel())
            seen[key] = t.numel() * t.element_size()
    return sum(seen.values())


def model_memory(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
) -> dict[str, float]:
    """The model's own memory in MiB, accounted tensor by tensor (not the process's RSS).

    Parameters and their gradients, the optimizer's state, and the activations autograd saves
    for backward in one training step of ``batch_size`` (on a copy, so BN statistics of the
    run are untouched). ``model_memory_mb`` is their sum.
    """
    params = [p for p in model.parameters()]
    param_b = _tensor_bytes(params)
    grad_b = _tensor_bytes(p for p in params if p.requires_grad)  # a gradient per trainable one
    state_b = _tensor_bytes(v for st in optimizer.state.values() for v in st.values())
    buffers_b = _tensor_bytes(model.buffers())
    saved: list[torch.Tensor] = []
    clone = copy.deepcopy(model).train()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss = loss_fn(clone(x[:batch_size]).float(), y[:batch_size])
    # Weights saved for backward (often as transposed views) are parameters, not activations.
    own = {t.untyped_storage().data_ptr() for t in [*clone.parameters(), *clone.buffers()]}
    act_b = _tensor_bytes(t for t in saved if t.untyped_storage().data_ptr() not in own)
    saved.clear()  # the step is never run backward: free its graph now
    del loss, clone
    parts = {
        "param_memory_mb": (param_b + buffers_b) / MIB,
        "grad_memory_mb": grad_b / MIB,
        "optimizer_state_mb": state_b / MIB,
        "activation_memory_mb": act_b / MIB,
    }
    return {**parts, "model_memory_mb": sum(parts.values())}


def step_breakdown(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    training: dict[str, Any],
    device: torch.device,
    steps: int,
    seed: int,
) -> dict[str, Any]:
    """Time ``steps`` training steps on copies of the model and optimizer, phase by phase."""
    model = copy.deepcopy(model)
    opt = make_optimizer(model, training)
    opt.load_state_dict(optimizer.state_dict())
    gen = torch.Generator().manual_seed(seed)
    batch = training["batch_size"]
    phases: dict[str, list[float]] = {
        "forward_ms": [],
        "backward_ms": [],
        "optimizer_ms": [],
        "step_ms": [],
    }
    warmup = 3
    model.train()
    for i in range(steps + warmup):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen).to(device)
        xb, yb = x[idx], y[idx]
        synchronize(device)
        t0 = time.perf_counter()
        loss = loss_fn(model(xb).float(), yb)
        synchronize(device)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        synchronize(device)
        t2 = time.perf_counter()
        opt.step()
        synchronize(device)
        t3 = time.perf_counter()
        if i >= warmup:
            for key, value in (
                ("forward_ms", t1 - t0),
                ("backward_ms", t2 - t1),
                ("optimizer_ms", t3 - t2),
                ("step_ms", t3 - t0),
            ):
                phases[key].append(1000 * value)
    return {key: median_iqr(values) for key, values in phases.items()}
