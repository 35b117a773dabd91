"""Relative cost: a variant's ms per training step ÷ a reference variant's, timed side by side.

A raw ms/step moves with the machine (a neighbour's load, a CI runner's CPU, turbo clocks),
so it cannot be compared across runs taken at different times. The *ratio* of two variants
timed within milliseconds of each other sees the same machine twice and keeps only what the
variants themselves cost. After training, for every (variant, seed) of the run and its
reference variant at the same seed (the suite's first variant unless asked otherwise):

* both models are built as training builds them (same seed, data, optimizer, threads), and
  each takes a few warm-up steps, which also size a burst to about ``BURST_SECONDS``;
* ``ROUNDS`` rounds of four bursts in the order reference, variant, variant, reference
  (ABBA), so both sample the same states of the machine (clock speed, cache, neighbours);
* the seed's ``rel_ms_per_step`` is ``min(variant's bursts) ÷ min(reference's bursts)`` in
  time per step. The minimum because contention only ever adds time: on a shared machine
  most bursts may be pre-empted, and the fastest burst of each side is the closest to what
  the variant itself costs. Each round's own ratio (``min`` of its two bursts a side) is kept
  in ``timing.rel_cost.ratios``, so the report can draw how much single rounds scatter.

The measurement costs about ``BUDGET`` of the training time it describes (a burst is sized
from the task's own ``train_seconds``, between ``MIN_BURST`` and ``MAX_BURST`` seconds), so a
tiny test suite pays milliseconds and a long run gets long, steady bursts.

The reference's own value is exactly 1. The measurement trains copies that are thrown away,
so the recorded training numbers never change. It honours the training precision,
``channels_last`` and ``compile: true`` (the copy is compiled in its untimed warm-up, so a
compiled variant's ratio is of compiled steps; TorchDynamo's caches are reset before each
pair, so a long run never reaches the recompile limit that would silently run eager).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from normbench.spread import iqr_over_median
from normbench.train.device import resolve_device, synchronize
from normbench.usercode import error_text, seed_everything

ROUNDS = 7
BUDGET = 0.15  # of the task's training time, spent on its 4 × ROUNDS bursts
MIN_BURST, MAX_BURST = 0.002, 0.02  # seconds: above timer jitter, below a scheduler's patience
WARMUP_STEPS = 3
MAX_BURST_STEPS = 500


def burst_seconds(train_seconds: float | None, rounds: int = ROUNDS) -> float:
    """Seconds per burst for a task that trained for ``train_seconds``."""
    if not train_seconds or train_seconds <= 0:
        return MIN_BURST
    return min(MAX_BURST, max(MIN_BURST, BUDGET * train_seconds / (4 * rounds)))


@dataclass
class Stepper:
    """A built model, optimizer and data, ready to take timed training steps."""

    run: Callable[[int], None]  # take n training steps
    device: torch.device
    threads: int | None = None  # the variant's ``training.threads``, as in its training
    steps_per_burst: int = 1
    compiled: bool = False  # through torch.compile: (re)compiles in ``calibrate``'s warm-up

    def time(self, n: int) -> float:
        """Seconds per step over ``n`` steps, device work included."""
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        synchronize(self.device)
        t0 = time.perf_counter()
        self.run(n)
        synchronize(self.device)
        return (time.perf_counter() - t0) / n


def make_stepper(config: dict[str, Any], seed: int) -> Stepper:
    """Build the variant as ``run_variant`` does and return a closure over its training step."""
    from normbench.data.registry import load_split
    from normbench.models import build
    from normbench.train.loop import loss_function, to_tensors
    from normbench.train.optim import make_optimizer

    training = config["training"]
    device = resolve_device(training["device"])
    data = to_tensors(load_split(config), device)
    seed_everything(seed)  # torch, numpy, random: the user's code may draw from any
    model = build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs).to(device)
    if training.get("channels_last") and data.x_train.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, training)
    loss_fn = loss_function(data.classification, data.y_train.dim() > 1)
    batch = training["batch_size"]
    gen = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    model.train()
    forward = torch.compile(model) if training.get("compile") else model

    # Mixed precision as in training (no grad scaler: a timing copy need not converge).
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(training.get("precision", ""))

    def run(steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(0, n, (batch,), generator=gen).to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(forward(data.x_train[idx]).float(), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return Stepper(run, device, training.get("threads"), compiled=bool(training.get("compile")))


def calibrate(stepper: Stepper, burst: float) -> Stepper:
    """Warm up and choose the steps per burst from the warm step time (the fastest of 3)."""
    stepper.time(WARMUP_STEPS)
    per_step = max(min(stepper.time(2) for _ in range(3)), 1e-7)
    stepper.steps_per_burst = max(1, min(MAX_BURST_STEPS, round(burst / per_step)))
    return stepper


def abba(variant: Stepper, reference: Stepper, rounds: int = ROUNDS) -> dict[str, Any]:
    """ABBA rounds of bursts: the min-over-bursts ratio and each round's own ratio."""
    ratios, v_all, r_all = [], [], []
    for _ in range(rounds):
        r1 = reference.time(reference.steps_per_burst)
        v1 = variant.time(variant.steps_per_burst)
        v2 = variant.time(variant.steps_per_burst)
        r2 = reference.time(reference.steps_per_burst)
        ratios.append(min(v1, v2) / min(r1, r2))
        v_all += [v1, v2]
        r_all += [r1, r2]
    spread = iqr_over_median(ratios) if len(ratios) >= 4 else None
    return {
        "median": min(v_all) / min(r_all),
        "ratios": [round(r, 5) for r in ratios],
        "iqr_over_median": spread,
        "ms_per_step": round(1000 * min(v_all), 6),
        "reference_ms_per_step": round(1000 * min(r_all), 6),
    }


def measure(
    pairs: list[tuple[str, dict[str, Any], int, float | None]],
    reference: tuple[str, dict[str, Any]],
    *,
    rounds: int = ROUNDS,
    warn: Callable[[str], None] | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Relative cost of each (variant id, config, seed, train seconds) in ``pairs``.

    Returns ``{(variant id, seed): timing.rel_cost dict}``; a variant that cannot be built or
    stepped (the failure its training already recorded) is left out, with a warning.
    """
    ref_id, ref_config = reference
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for seed in sorted({p[2] for p in pairs}):
        for vid, _, s, _ in pairs:
            if vid == ref_id and s == seed:
                out[(vid, seed)] = {
                    "reference_id": ref_id,
                    "ratios": [1.0] * rounds,
                    "median": 1.0,
                    "iqr_over_median": 0.0,
                    "rounds": rounds,
                }
        if not any(vid != ref_id and s == seed for vid, _, s, _ in pairs):
            continue  # only the reference itself: nothing to time
        try:
            ref = make_stepper(ref_config, seed)
        except Exception as exc:  # the reference's own training failed the same way
            if warn:
                warn(
                    f"relative cost not measured for seed {seed}: the reference variant "
                    f"cannot take a step ({error_text(exc)})"
                )
            continue
        for vid, config, s, train_seconds in pairs:
            if s != seed or vid == ref_id:
                continue
            try:
                burst = burst_seconds(train_seconds, rounds)
                if ref.compiled or config["training"].get("compile"):
                    # One pair's graphs at a time: each model compiled again instead of the
                    # cache filling up to dynamo's recompile limit (then it runs eager).
                    torch._dynamo.reset()
                calibrate(ref, burst)
                var = calibrate(make_stepper(config, seed), burst)
                result = abba(var, ref, rounds)
            except Exception as exc:
                if warn:
                    warn(f"relative cost not measured for {vid} seed {seed}: {error_text(exc)}")
                continue
            out[(vid, seed)] = {
                "reference_id": ref_id,
                **result,
                "rounds": rounds,
                "steps_per_burst": [var.steps_per_burst, ref.steps_per_burst],
            }
    return out
