"""The training loop: one variant, one seed → one result record. This is the hot path.

Data lives on the device as tensors and batches are index slices of a per-epoch permutation,
so a step is: index → forward → loss → backward → step. Evaluation runs between intervals of
``eval_every`` steps, in eval mode, outside the timed region. On CPU the loss is read every
step (a plain memory read) so divergence is caught at the exact step; on an accelerator it is
accumulated on the device and checked once per interval to avoid a host sync per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from normbench.models import build
from normbench.train.device import resolve_device, synchronize
from normbench.train.optim import effective_lr, make_optimizer, make_schedule
from normbench.train.timing import (
    median_iqr,
    model_memory,
    peak_memory_mb,
    process_rss_mb,
    step_breakdown,
)

SCHEMA_VERSION = 1
TARGET_HIGHER = {
    "test_acc": True,
    "train_probe_acc": True,
    "test_loss": False,
    "train_loss": False,
    "train_probe_loss": False,
}


@dataclass
class Tensors:
    """A data split on the device, plus what the loss needs to know."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classification: bool
    num_outputs: int
    domain_train: torch.Tensor | None = None  # (N,) int64 on the CPU, two-domain data only
    domain_test: torch.Tensor | None = None


@dataclass
class ProbeContext:
    """What diagnostics may look at; handed to every probe call."""

    model: nn.Module
    data: Tensors
    loss_fn: Any
    lr: float
    config: dict[str, Any]
    seed: int
    optimizer: torch.optim.Optimizer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Probe(Protocol):
    """A diagnostic hooked into the loop (see ``normbench.train.probes``)."""

    def backward_steps(self, total_steps: int, eval_every: int) -> set[int]: ...
    def after_backward(
        self, step: int, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor
    ) -> None: ...
    def on_eval(self, step: int, ctx: ProbeContext) -> None: ...
    def result(
        self, ctx: ProbeContext, metrics: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...


def to_tensors(split: Any, device: torch.device) -> Tensors:
    """Move a ``DataSplit`` (numpy) onto the device once, for the whole run."""
    classification = split.task == "classification"
    y_dtype = torch.long if classification else torch.float32

    def move(a: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype).to(device)

    def domain(part: str) -> torch.Tensor | None:
        values = getattr(split, f"domain_{part}", None)
        return None if values is None else torch.as_tensor(values, dtype=torch.long)

    return Tensors(
        move(split.x_train, torch.float32),
        move(split.y_train, y_dtype),
        move(split.x_test, torch.float32),
        move(split.y_test, y_dtype),
        classification,
        int(split.num_outputs),
        domain("train"),
        domain("test"),
    )


def loss_function(classification: bool) -> Any:
    """Cross-entropy for classes, mean squared error for regression targets."""
    if classification:
        return F.cross_entropy

    def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y.view_as(out))

    return mse


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    classification: bool,
    chunk: int,
) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) over ``x`` in eval mode, in chunks."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        out = model(xb).float()
        total_loss += loss_fn(out, yb) * xb.shape[0]
        if classification:
            correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = x.shape[0]
    loss = float(total_loss) / n
    return loss, (float(correct) / n if classification else None)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def reach(curves: dict[str, list], key: str, threshold: float) -> tuple[int | None, float | None]:
    """First eval point whose ``key`` reaches ``threshold``: (step, training seconds)."""
    higher = TARGET_HIGHER[key]
    for step, secs, value in zip(
        curves["step"], curves["train_seconds"], curves.get(key, []), strict=False
    ):
        if value is not None and (value >= threshold if higher else value <= threshold):
            return step, secs
    return None, None


def summarize(
    curves: dict[str, list],
    targets: dict[str, float],
    timing: dict[str, Any],
    status: str,
    batch_size: int,
    num_params: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summary metrics (normative names) and per-target reach from the recorded curves."""
    accs = [a for a in curves.get("test_acc", []) if a is not None]
    ok = status == "ok"

    def last(key: str) -> float | None:
        values = curves.get(key) or []
        return values[-1] if ok and values else None

    reached = {
        k: dict(zip(("step", "seconds"), reach(curves, k, v), strict=True)) | {"threshold": v}
        for k, v in targets.items()
    }
    first = next(iter(reached.values()), {"step": None, "seconds": None})
    steps, secs = timing["steps"], timing["train_seconds"]
    # Throughput from the median eval interval: one stalled interval (a first-call warm-up, a
    # busy neighbour) moves a mean over all steps a lot and a median hardly at all.
    ms_step = (timing.get("ms_per_step_stats") or {}).get("median")
    if ms_step is None and steps and secs > 0:
        ms_step = 1000 * secs / steps
    probe_acc, test_acc = last("train_probe_acc"), last("test_acc")
    metrics = {
        "final_test_acc": test_acc,
        "best_test_acc": max(accs) if accs else None,
        "final_test_loss": last("test_loss"),
        "final_train_loss": last("train_loss"),
        "steps_to_target": first["step"],
        "seconds_to_target": first["seconds"],
        "samples_per_sec": 1000 * batch_size / ms_step if ms_step else None,
        "ms_per_step": ms_step,
        "train_seconds": secs,
        "num_params": num_params,
        "final_train_probe_acc": probe_acc,
        # Train-probe minus test accuracy, both in eval mode at the end: what regularisers shrink.
        "generalization_gap": (
            probe_acc - test_acc if probe_acc is not None and test_acc is not None else None
        ),
    }
    return metrics, reached


def breakdown_metrics(timing: dict[str, Any]) -> dict[str, Any]:
    """Throughput metrics from the step breakdown (None where it was not measured)."""
    phases = timing.get("breakdown") or {}
    out = {
        key: (phases.get(key) or {}).get("median")
        for key in ("forward_ms", "backward_ms", "optimizer_ms")
    }
    out["peak_memory_mb"] = timing.get("peak_memory_mb")
    out.update(timing.get("memory") or {})
    out["process_rss_mb"] = timing.get("process_rss_mb")
    return out


def compile_warmup(
    forward: Any,
    model: nn.Module,
    data: Tensors,
    loss_fn: Any,
    training: dict[str, Any],
    device: torch.device,
) -> float:
    """Trigger torch.compile's forward and backward compilation before the timed loop.

    One forward+backward on the first batch, then the model's buffers (BN running
    statistics), its gradients and the RNG are restored, so the run's numbers are those of
    an uncompiled run and the compile time stays out of throughput.
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    synchronize(device)
    t0 = time.perf_counter()
    batch = data.x_train[: training["batch_size"]], data.y_train[: training["batch_size"]]
    loss_fn(forward(batch[0]).float(), batch[1]).backward()
    synchronize(device)
    elapsed = time.perf_counter() - t0
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    return elapsed


def per_domain_batches(
    domain: torch.Tensor, batch: int, gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Endless batch indices alternating domain 0, 1, 0, …, each batch from one domain only.

    Every domain is drawn like the mixed loop draws the whole split: slices of a seeded
    permutation of its own samples, a fresh one when too few remain for a full batch.
    """
    pools = [torch.nonzero(domain == d).flatten() for d in (0, 1)]
    small = min(len(p) for p in pools)
    if batch > small:
        raise ValueError(f"batch_size {batch} is larger than a domain's training samples ({small})")
    perms = [p.to(device) for p in pools]
    pos, d = [len(p) for p in pools], 0  # full: the first draw permutes each domain
    while True:
        if pos[d] + batch > len(pools[d]):
            perms[d] = pools[d][torch.randperm(len(pools[d]), generator=gen)].to(device)
            pos[d] = 0
        yield perms[d][pos[d] : pos[d] + batch]
        pos[d] += batch
        d = 1 - d


def run_variant(
    config: dict[str, Any],
    seed: int,
    split: Any,
    probes: list[Probe] | None = None,
    on_progress: Any = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one resolved variant for one seed and return its result record.

    Divergence (a non-finite training loss) ends the run as ``diverged``; any exception from
    the model or optimizer ends it as ``failed`` with the message. Neither is raised.
    """
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    training = config["training"]
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **(meta or {}),
        "seed": seed,
        "config": config,
        "status": "ok",
        "error": None,
        "diverged_at_step": None,
        "started": started,
    }
    curves: dict[str, list] = {
        k: []
        for k in (
            "step",
            "train_loss",
            "test_loss",
            "test_acc",
            "train_probe_loss",
            "train_probe_acc",
            "train_seconds",
        )
    }
    timing = {
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
        "probe_seconds": 0.0,
        "steps": 0,
        "setup_seconds": 0.0,
    }
    num_params = 0
    try:
        t_setup = time.perf_counter()
        device = resolve_device(training["device"])
        record["device"] = str(device)
        data = to_tensors(split, device)
        torch.manual_seed(seed)
        model = build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs).to(device)
        if hasattr(model, "normbench_swaps"):  # a custom model: which layers were replaced
            record["model_swaps"] = model.normbench_swaps
        if training.get("channels_last") and data.x_train.dim() == 4:
            model = model.to(memory_format=torch.channels_last)
        num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = make_optimizer(model.parameters(), training)
        schedule = make_schedule(optimizer, training)
        loss_fn = loss_function(data.classification)
        ctx = ProbeContext(model, data, loss_fn, effective_lr(training), config, seed, optimizer)
        forward = model
        if training.get("compile"):
            forward = torch.compile(model)
            timing["compile_seconds"] = compile_warmup(
                forward, model, data, loss_fn, training, device
            )
        timing["setup_seconds"] = time.perf_counter() - t_setup
        _train(
            record,
            curves,
            timing,
            forward,
            model,
            optimizer,
            schedule,
            loss_fn,
            data,
            training,
            device,
            probes or [],
            ctx,
            on_progress,
            seed,
        )
        if probes:
            diag_data, diag_metrics = {}, {}
            metrics_so_far, _ = summarize(
                curves,
                config["targets"],
                timing,
                record["status"],
                training["batch_size"],
                num_params,
            )
            for probe in probes:
                d, m = probe.result(ctx, metrics_so_far)
                diag_data.update(d)
                diag_metrics.update(m)
            record["diagnostics"] = diag_data
            record["diagnostic_metrics"] = diag_metrics
        if record["status"] == "ok" and training.get("profile_steps", 0) > 0:
            timing["breakdown"] = step_breakdown(
                model,
                optimizer,
                loss_fn,
                data.x_train,
                data.y_train,
                training,
                device,
                training["profile_steps"],
                seed,
            )
        timing["peak_memory_mb"] = peak_memory_mb(device)
        if record["status"] == "ok":
            timing["memory"] = model_memory(
                model, optimizer, loss_fn, data.x_train, data.y_train, training["batch_size"]
            )
        timing["process_rss_mb"] = process_rss_mb()
    except Exception as exc:  # a failed variant is a row with an error, not a crash
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
    metrics, reached = summarize(
        curves, config["targets"], timing, record["status"], training["batch_size"], num_params
    )
    metrics.update(breakdown_metrics(timing))
    metrics.update(record.pop("diagnostic_metrics", {}))
    record.update(curves=curves, metrics=metrics, targets=reached, timing=timing)
    record.setdefault("diagnostics", {})
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def _train(
    record: dict[str, Any],
    curves: dict[str, list],
    timing: dict[str, Any],
    forward: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    loss_fn: Any,
    data: Tensors,
    training: dict[str, Any],
    device: torch.device,
    probes: list[Probe],
    ctx: ProbeContext,
    on_progress: Any,
    seed: int,
) -> None:
    """The step loop proper (see the module docstring for what is and is not timed)."""
    steps, eval_every, batch = training["steps"], training["eval_every"], training["batch_size"]
    n = data.x_train.shape[0]
    if batch > n:
        raise ValueError(f"batch_size {batch} is larger than the training split ({n} samples)")
    gen = torch.Generator().manual_seed(seed)
    probe_gen = torch.Generator().manual_seed(10_000 + seed)
    probe_idx = torch.randperm(n, generator=probe_gen)[: training["probe_size"]].to(device)
    x_probe, y_probe = data.x_train[probe_idx], data.y_train[probe_idx]
    backward_steps: set[int] = set()
    for probe in probes:
        backward_steps |= probe.backward_steps(steps, eval_every)
    sync_each_step = device.type == "cpu"
    precision = training.get("precision", "fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    channels_last = training.get("channels_last") and data.x_train.dim() == 4
    clip = training.get("grad_clip")
    perm = torch.randperm(n, generator=gen).to(device)
    pos, step = 0, 0
    domain_draw = None
    if training.get("batches", "mixed") == "per_domain":
        if data.domain_train is None:
            raise ValueError("batches: per_domain needs a dataset with two domains (domains: 2)")
        domain_draw = per_domain_batches(data.domain_train, batch, gen, device)
    interval_ms: list[float] = []
    model.train()
    for probe in probes:  # the state before training (Ioffe & Szegedy's Fig. 1 starts at 0)
        probe.on_eval(0, ctx)
    while step < steps:
        interval = min(eval_every, steps - step)
        loss_sum = 0.0
        loss_acc = torch.zeros((), device=device)
        synchronize(device)
        t0 = time.perf_counter()
        probe_time = 0.0
        for _ in range(interval):
            if domain_draw is not None:
                idx = next(domain_draw)
            else:
                if pos + batch > n:  # new epoch: a fresh permutation from the seeded generator
                    perm = torch.randperm(n, generator=gen).to(device)
                    pos = 0
                idx = perm[pos : pos + batch]
                pos += batch
            xb, yb = data.x_train[idx], data.y_train[idx]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if amp_dtype is None:  # fp32: no context manager, no cast (tiny models feel each op)
                loss = loss_fn(forward(xb), yb)
            else:
                with torch.autocast(device.type, dtype=amp_dtype):
                    loss = loss_fn(forward(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            step += 1
            if backward_steps and step in backward_steps:
                tp = time.perf_counter()
                for probe in probes:
                    probe.after_backward(step, ctx, xb, yb)
                probe_time += time.perf_counter() - tp
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if schedule is not None:
                schedule.step()
            if sync_each_step:
                value = loss.item()
                if not math.isfinite(value):
                    return _diverged(record, timing, step, t0, probe_time, device)
                loss_sum += value
            else:
                loss_acc += loss.detach()
        synchronize(device)
        elapsed = time.perf_counter() - t0 - probe_time
        timing["train_seconds"] += elapsed
        timing["probe_seconds"] += probe_time
        timing["steps"] = step
        interval_ms.append(1000 * elapsed / interval)
        timing["ms_per_step_stats"] = median_iqr(interval_ms)
        if not sync_each_step:
            loss_sum = float(loss_acc)
            if not math.isfinite(loss_sum):
                record.update(
                    status="diverged",
                    diverged_at_step=step,
                    error=f"training loss became non-finite by step {step}",
                )
                return None
        t_eval = time.perf_counter()
        chunk = training["eval_batch_size"]
        test_loss, test_acc = evaluate(
            model, data.x_test, data.y_test, loss_fn, data.classification, chunk
        )
        probe_loss, probe_acc = evaluate(
            model, x_probe, y_probe, loss_fn, data.classification, chunk
        )
        curves["step"].append(step)
        curves["train_loss"].append(_finite_or_none(loss_sum / interval))
        curves["test_loss"].append(_finite_or_none(test_loss))
        curves["test_acc"].append(test_acc)
        curves["train_probe_loss"].append(_finite_or_none(probe_loss))
        curves["train_probe_acc"].append(probe_acc)
        curves["train_seconds"].append(timing["train_seconds"])
        tp = time.perf_counter()
        timing["eval_seconds"] += tp - t_eval
        for probe in probes:
            probe.on_eval(step, ctx)
        timing["probe_seconds"] += time.perf_counter() - tp
        if on_progress is not None:
            on_progress(step, steps, test_acc, test_loss)
    return None


def _diverged(
    record: dict[str, Any],
    timing: dict[str, Any],
    step: int,
    t0: float,
    probe_time: float,
    device: torch.device,
) -> None:
    """Mark the record diverged at ``step`` and close the timing of the open interval."""
    synchronize(device)
    timing["train_seconds"] += time.perf_counter() - t0 - probe_time
    timing["steps"] = step
    record.update(
        status="diverged",
        diverged_at_step=step,
        error=f"training loss became non-finite at step {step}",
    )
