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
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": med, "iqr": q3 - q1, "noisy": bool(med > 0 and (q3 - q1) / med > NOISY_IQR)}


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA max allocated, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def step_breakdown(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Any, x: torch.Tensor,
                   y: torch.Tensor, training: dict[str, Any], device: torch.device, steps: int,
                   seed: int) -> dict[str, Any]:
    """Time ``steps`` training steps on copies of the model and optimizer, phase by phase."""
    model = copy.deepcopy(model)
    opt = make_optimizer(model.parameters(), training)
    opt.load_state_dict(optimizer.state_dict())
    gen = torch.Generator().manual_seed(seed)
    batch = training["batch_size"]
    phases: dict[str, list[float]] = {"forward_ms": [], "backward_ms": [], "optimizer_ms": [], "step_ms": []}
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
            for key, value in (("forward_ms", t1 - t0), ("backward_ms", t2 - t1),
                               ("optimizer_ms", t3 - t2), ("step_ms", t3 - t0)):
                phases[key].append(1000 * value)
    return {key: median_iqr(values) for key, values in phases.items()}
