"""What one training step of a model costs: its FLOPs, counted exactly, and its seconds, timed."""

# The planner needs both for every kind of model, built in or custom, without a formula per
# kind: the FLOPs (a property of the configuration and the data's shape, so the same on every
# run: they may decide arithmetic, i.e. threads) and the seconds (this machine's, now: they
# decide only how many workers, which changes no number). Both come from real steps of the
# real model on the real data, on one thread, with the global RNG left as it was.

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Timed steps: at least two, and more until this much time has passed (a tiny model's step
# is tens of microseconds: one alone is noise), at most TIME_STEPS_MAX.
TIME_STEPS_MIN = 2
TIME_STEPS_MAX = 20
TIME_SECONDS = 0.1


@dataclass(frozen=True)
class StepCost:
    """One training step of a variant (FLOPs counted, seconds timed on one thread) and one
    evaluation of it (the test split and the train probe)."""

    flops: float
    seconds: float
    eval_seconds: float


def layer_macs(module: nn.Module, output: Any) -> int:
    """Multiply-accumulates of one forward call of a leaf layer, from its weights and output.

    By the shape of the layer's weights, not its model's kind: a matrix (linear) does one
    row per output element, a kernel (convolution) one kernel's worth, a recurrent layer
    its input and hidden matrices at every time step; other layers (norms) one per output.
    """
    out = output[0] if isinstance(output, tuple) else output
    if not isinstance(out, torch.Tensor):
        return 0
    if isinstance(module, nn.RNNBase):  # output (batch, time, …) or (time, batch, …)
        steps = out.shape[0] * out.shape[1] if out.dim() == 3 else out.shape[0]
        weights = sum(p.numel() for n, p in module.named_parameters() if n.startswith("weight"))
        return int(steps * weights)
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        return int(out.numel() * weight[0].numel())
    return int(out.numel()) if any(True for _ in module.parameters(recurse=False)) else 0


def count_flops(model: nn.Module, step: Any) -> float:
    """Training FLOPs of one ``step()`` of ``model``: 2 per MAC, forward and backward (×3)."""
    total = [0]

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        total[0] += layer_macs(module, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.RNNBase) or not any(True for _ in m.children())
    ]
    try:
        step()
    finally:
        for handle in handles:
            handle.remove()
    return 6.0 * total[0]


def measure_step(config: dict[str, Any], split: Any) -> StepCost:
    """Build the variant's model on CPU and train a few steps of it: counted, then timed."""
    from normbench.train.loop import _build_model, _evaluate, _prepare, to_tensors

    device = torch.device("cpu")
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        try:
            data = to_tensors(split, device)
            run = _prepare(config, 0, device, data, _build_model(config, data, 0, device))
            batch = min(int(config["training"]["batch_size"]), data.x_train.shape[0])
            xb, yb = data.x_train[:batch], data.y_train[:batch]

            def step() -> None:
                loss = run.loss_fn(run.model(xb), yb)
                run.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                run.optimizer.step()

            flops = count_flops(run.model, step)  # also the first, warm-up step
            step()
            steps, start = 0, time.perf_counter()
            while steps < TIME_STEPS_MAX and (
                steps < TIME_STEPS_MIN or time.perf_counter() - start < TIME_SECONDS
            ):
                step()
                steps += 1
            seconds = (time.perf_counter() - start) / steps
            start = time.perf_counter()
            _evaluate(run, [], steps)
            eval_seconds = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)
    return StepCost(flops=flops, seconds=seconds, eval_seconds=eval_seconds)
