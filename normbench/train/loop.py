"""The training loop: one variant, one seed → one result record. This is the hot path.

Data lives on the device as tensors and batches are index slices of a per-epoch permutation,
so a step is: index → forward → loss → backward → step. Evaluation runs between intervals of
``eval_every`` steps, in eval mode, outside the timed region. On CPU the loss is read every
step (a plain memory read) so divergence is caught at the exact step; on an accelerator it is
accumulated on the device and checked once per interval to avoid a host sync per step (there
``diverged_at_step`` is the interval's last step).

``run_variant`` reads top to bottom: setup, ``_train`` (interval → evaluation, repeated),
then what is measured on the trained model. ``_train_interval`` is the timed step loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normbench.models import build
from normbench.spread import finite_number
from normbench.suite_keys import TARGET_KEYS, reaches
from normbench.train.context import Probe, ProbeContext, Tensors, evaluate
from normbench.train.device import resolve_device, synchronize
from normbench.train.optim import effective_lr, make_optimizer, make_schedule
from normbench.train.timing import (
    median_iqr,
    model_memory,
    peak_memory_mb,
    process_rss_mb,
    step_breakdown,
)
from normbench.usercode import error_text, seed_everything

SCHEMA_VERSION = 1
CURVE_KEYS = (
    "step",
    "train_loss",
    "test_loss",
    "test_acc",
    "train_probe_loss",
    "train_probe_acc",
    "train_seconds",
)


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


def token_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every position of (N, T, V) logits and (N, T) targets (-100: not
    scored), as rows: faster than class-first (N, V, T) logits on CPU."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def loss_function(classification: bool, per_token: bool = False) -> Any:
    """Cross-entropy for classes (per position for sequence targets), mean squared error for
    regression targets."""
    if classification:
        return token_cross_entropy if per_token else F.cross_entropy

    def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y.view_as(out))

    return mse


def reach(curves: dict[str, list], key: str, threshold: float) -> tuple[int | None, float | None]:
    """First eval point whose ``key`` reaches ``threshold``: (step, training seconds)."""
    higher = TARGET_KEYS[key]
    for step, secs, value in zip(
        curves["step"], curves["train_seconds"], curves.get(key, []), strict=False
    ):
        if value is not None and reaches(value, threshold, higher):
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


def language_metrics(test_loss: float | None) -> dict[str, float | None]:
    """Bits per token and perplexity from a test loss in nats (None where it has none)."""
    if test_loss is None or not math.isfinite(test_loss):
        return {"final_test_bpc": None, "final_test_ppl": None}
    return {
        "final_test_bpc": test_loss / math.log(2),
        "final_test_ppl": math.exp(test_loss) if test_loss < 700 else None,
    }


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


def batch_indices(
    data: Tensors, training: dict[str, Any], gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Endless training batch indices: slices of a seeded per-epoch permutation, or per domain.

    Checks the batch size and draws the first permutation now (before the timed region); the
    per-domain draw comes after that permutation in ``gen``, as it always has.
    """
    n, batch = data.x_train.shape[0], training["batch_size"]
    if batch > n:
        raise ValueError(f"batch_size {batch} is larger than the training split ({n} samples)")
    perm = torch.randperm(n, generator=gen).to(device)
    if training.get("batches", "mixed") == "per_domain":
        if data.domain_train is None:
            raise ValueError("batches: per_domain needs a dataset with two domains (domains: 2)")
        return per_domain_batches(data.domain_train, batch, gen, device)
    return _epochs(perm, n, batch, gen, device)


def _epochs(
    perm: torch.Tensor, n: int, batch: int, gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``perm``; a fresh permutation when too few remain for a batch."""
    pos = 0
    while True:
        if pos + batch > n:
            perm = torch.randperm(n, generator=gen).to(device)
            pos = 0
        yield perm[pos : pos + batch]
        pos += batch


# --- one run: setup, train (interval → evaluation), measure -------------------------------------


@dataclass
class Run:
    """Everything the step loop needs, built once before the timed region."""

    training: dict[str, Any]
    seed: int
    device: torch.device
    data: Tensors
    model: nn.Module
    forward: Any  # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    schedule: Any
    loss_fn: Any
    ctx: ProbeContext
    x_probe: torch.Tensor  # the fixed train probe batch, evaluated like the test split
    y_probe: torch.Tensor


@dataclass
class StepOptions:
    """Per-step choices made once, so the hot loop branches only on plain locals."""

    autocast: torch.autocast | None  # bf16/fp16 only: fp32 enters no context manager
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    channels_last: bool
    clip: float | None
    exact: bool  # read the loss every step (CPU: a plain memory read) to stop at divergence
    backward_steps: set[int]  # the steps whose gradients the probes look at


@dataclass
class Interval:
    """One stretch of training between evaluations, as the timed loop saw it."""

    step: int  # steps done at its end
    length: int  # steps it was to run
    seconds: float  # training time, probe time excluded
    probe_seconds: float
    loss_sum: float  # non-finite once the training loss was
    ms_per_step: float | None  # None when it stopped early at a non-finite loss

    @property
    def diverged(self) -> bool:
        """Whether the training loss turned non-finite in this interval."""
        return not math.isfinite(self.loss_sum)


@dataclass
class Evaluation:
    """The evaluation after an interval: test split and train probe batch, in eval mode."""

    test_loss: float
    test_acc: float | None
    probe_loss: float
    probe_acc: float | None
    seconds: float
    probe_seconds: float  # the probes' ``on_eval``


@dataclass
class History:
    """What the loop records: curves at every evaluation and the timing totals."""

    curves: dict[str, list] = field(default_factory=lambda: {k: [] for k in CURVE_KEYS})
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    probe_seconds: float = 0.0
    steps: int = 0
    setup_seconds: float = 0.0
    compile_seconds: float | None = None
    interval_ms: list[float] = field(default_factory=list)

    def add_interval(self, interval: Interval) -> None:
        """Count an interval's time and steps (and its ms/step, when it ran to the end)."""
        self.train_seconds += interval.seconds
        self.probe_seconds += interval.probe_seconds
        self.steps = interval.step
        if interval.ms_per_step is not None:
            self.interval_ms.append(interval.ms_per_step)

    def add_evaluation(self, interval: Interval, evaluation: Evaluation) -> None:
        """One point on every curve, at the interval's last step."""
        points = (
            interval.step,
            finite_number(interval.loss_sum / interval.length),
            finite_number(evaluation.test_loss),
            evaluation.test_acc,
            finite_number(evaluation.probe_loss),
            evaluation.probe_acc,
            self.train_seconds,
        )
        for key, value in zip(CURVE_KEYS, points, strict=True):
            self.curves[key].append(value)
        self.eval_seconds += evaluation.seconds
        self.probe_seconds += evaluation.probe_seconds

    def timing(self) -> dict[str, Any]:
        """The record's ``timing`` so far (the post-training measurements are added to it)."""
        timing: dict[str, Any] = {
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "probe_seconds": self.probe_seconds,
            "steps": self.steps,
            "setup_seconds": self.setup_seconds,
        }
        if self.compile_seconds is not None:
            timing["compile_seconds"] = self.compile_seconds
        if self.interval_ms:
            timing["ms_per_step_stats"] = median_iqr(self.interval_ms)
        return timing


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
    training, probes = config["training"], probes or []
    record = new_record(config, seed, meta, getattr(split, "info", None))
    history = History()
    num_params = 0
    diag_metrics: dict[str, Any] = {}
    measured: dict[str, Any] = {}  # after training: step breakdown, memory
    model: torch.nn.Module | None = None
    try:
        # Setup: data on the device, the seeded model, optimizer, schedule (timed on its own)
        t_setup = time.perf_counter()
        device = resolve_device(training["device"])
        record["device"] = str(device)
        data = to_tensors(split, device)
        model = _build_model(config, data, seed, device)
        if hasattr(model, "normbench_swaps"):  # a custom model: which layers were replaced
            record["model_swaps"] = model.normbench_swaps
        num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        run = _prepare(config, seed, device, data, model)
        if training.get("compile"):
            # Each task compiles from an empty cache: a worker's earlier tasks would otherwise
            # fill TorchDynamo's per-function cache, and past its recompile limit it runs eager.
            torch._dynamo.reset()
            run.forward = torch.compile(model)
            history.compile_seconds = compile_warmup(
                run.forward, model, data, run.loss_fn, training, device
            )
        history.setup_seconds = time.perf_counter() - t_setup
        # Train: interval after interval, each followed by an evaluation
        diverged_at = _train(run, probes, on_progress, history)
        if diverged_at is not None:  # the one place a run becomes "diverged"
            record.update(
                status="diverged",
                diverged_at_step=diverged_at,
                error=f"training loss became non-finite at step {diverged_at}",
            )
        # Diagnostics: each probe's result, given the metrics of the finished training
        if probes:
            so_far = _summarize(history, config, record["status"], num_params)[0]
            record["diagnostics"], diag_metrics = _probe_results(run, probes, so_far)
        # Measurements on the trained model, outside training: step breakdown, memory
        _measure(run, record["status"] == "ok", measured)
    except Exception as exc:  # a failed variant is a row with an error, not a crash
        record["status"] = "failed"
        record["error"] = f"{error_text(exc)}"
    if model is not None and (chosen := auto_group_counts(model)):
        record["norm_groups"] = chosen  # groups: auto, decided layer by layer (after training)
    timing = history.timing() | measured
    metrics, reached = _summarize(history, config, record["status"], num_params, timing)
    metrics.update(breakdown_metrics(timing))
    metrics.update(diag_metrics)
    if getattr(split.y_train, "ndim", 1) > 1:  # one target per position: a language model
        metrics.update(language_metrics(metrics.get("final_test_loss")))
    record.update(curves=history.curves, metrics=metrics, targets=reached, timing=timing)
    record.setdefault("diagnostics", {})
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def new_record(
    config: dict[str, Any],
    seed: int,
    meta: dict[str, Any] | None,
    data_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record's head: identity and an ``ok`` status until something says otherwise;
    ``dataset_info`` when the data say more about themselves (``DataSplit.info``)."""
    record = {
        "schema_version": SCHEMA_VERSION,
        **(meta or {}),
        "seed": seed,
        "config": config,
        "status": "ok",
        "error": None,
        "diverged_at_step": None,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if data_info:
        record["dataset_info"] = data_info
    return record


def auto_group_counts(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Each group norm built with ``groups: auto``: its layer, channels and the groups chosen."""
    return [
        {"layer": name, "channels": m.num_channels, "groups": m.num_groups}
        for name, m in model.named_modules()
        if getattr(m, "normbench_auto_groups", False)
    ]


def _build_model(
    config: dict[str, Any], data: Tensors, seed: int, device: torch.device
) -> nn.Module:
    """The model, initialised from the seed, on the device (channels-last for images if asked)."""
    seed_everything(seed)  # torch, numpy, random: the user's code may draw from any
    model = build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs).to(device)
    if config["training"].get("channels_last") and data.x_train.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    return model


def _prepare(
    config: dict[str, Any], seed: int, device: torch.device, data: Tensors, model: nn.Module
) -> Run:
    """Optimizer, schedule, loss, probe context and the train probe batch for ``model``."""
    training = config["training"]
    optimizer = make_optimizer(model, training)
    schedule = make_schedule(optimizer, training)
    loss_fn = loss_function(data.classification, data.y_train.dim() > 1)
    ctx = ProbeContext(model, data, loss_fn, effective_lr(training), config, seed, optimizer)
    # The train probe batch has its own generator: the same samples whatever the batch order.
    probe_gen = torch.Generator().manual_seed(10_000 + seed)
    n = data.x_train.shape[0]
    probe_idx = torch.randperm(n, generator=probe_gen)[: training["probe_size"]].to(device)
    return Run(
        training=training,
        seed=seed,
        device=device,
        data=data,
        model=model,
        forward=model,  # run_variant swaps in the compiled model when asked
        optimizer=optimizer,
        schedule=schedule,
        loss_fn=loss_fn,
        ctx=ctx,
        x_probe=data.x_train[probe_idx],
        y_probe=data.y_train[probe_idx],
    )


def _summarize(
    history: History,
    config: dict[str, Any],
    status: str,
    num_params: int,
    timing: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``summarize`` over the history (its timing so far unless ``timing`` is given)."""
    return summarize(
        history.curves,
        config["targets"],
        history.timing() if timing is None else timing,
        status,
        config["training"]["batch_size"],
        num_params,
    )


def _probe_results(
    run: Run, probes: list[Probe], metrics: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every probe's (diagnostics data, diagnostic metrics), merged."""
    data, diag_metrics = {}, {}
    for probe in probes:
        d, m = probe.result(run.ctx, metrics)
        data.update(d)
        diag_metrics.update(m)
    return data, diag_metrics


def _measure(run: Run, ok: bool, measured: dict[str, Any]) -> None:
    """Fill ``measured`` in order, so what was measured before a failure is kept."""
    training, data = run.training, run.data
    if ok and training.get("profile_steps", 0) > 0:
        measured["breakdown"] = step_breakdown(
            run.model,
            run.optimizer,
            run.loss_fn,
            data.x_train,
            data.y_train,
            training,
            run.device,
            training["profile_steps"],
            run.seed,
        )
    measured["peak_memory_mb"] = peak_memory_mb(run.device)
    if ok:
        measured["memory"] = model_memory(
            run.model,
            run.optimizer,
            run.loss_fn,
            data.x_train,
            data.y_train,
            training["batch_size"],
        )
    measured["process_rss_mb"] = process_rss_mb()


def _train(run: Run, probes: list[Probe], on_progress: Any, history: History) -> int | None:
    """Train interval by interval, evaluating after each; the step of divergence, or None."""
    steps, eval_every = run.training["steps"], run.training["eval_every"]
    batches = batch_indices(
        run.data, run.training, torch.Generator().manual_seed(run.seed), run.device
    )
    opts = _step_options(run, probes)
    run.model.train()
    for probe in probes:  # the state before training (Ioffe & Szegedy's Fig. 1 starts at 0)
        probe.on_eval(0, run.ctx)
    step = 0
    while step < steps:
        # Train: eval_every steps (fewer at the end), timed without the probes
        interval = _train_interval(run, opts, probes, batches, step, min(eval_every, steps - step))
        history.add_interval(interval)
        step = interval.step
        if interval.diverged:
            return step
        # Evaluate: the test split and the train probe batch in eval mode, then the probes
        evaluation = _evaluate(run, probes, step)
        history.add_evaluation(interval, evaluation)
        if on_progress is not None:
            on_progress(step, steps, evaluation.test_acc, evaluation.test_loss)
    return None


def _step_options(run: Run, probes: list[Probe]) -> StepOptions:
    """Autocast and the gradient scaler built once for the run, and the other step switches."""
    training, device = run.training, run.device
    precision = training.get("precision", "fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    backward_steps: set[int] = set()
    for probe in probes:
        backward_steps |= probe.backward_steps(training["steps"], training["eval_every"])
    return StepOptions(
        autocast=None if amp_dtype is None else torch.autocast(device.type, dtype=amp_dtype),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        channels_last=bool(training.get("channels_last")) and run.data.x_train.dim() == 4,
        clip=training.get("grad_clip"),
        exact=device.type == "cpu",
        backward_steps=backward_steps,
    )


def _train_interval(
    run: Run,
    opts: StepOptions,
    probes: list[Probe],
    batches: Iterator[torch.Tensor],
    step: int,
    length: int,
) -> Interval:
    """``length`` training steps after ``step`` (on CPU, up to a non-finite loss): the hot path.

    Everything is hoisted into locals first: a step of a tiny model costs tens of
    microseconds, so an attribute lookup or a no-op call per step is measurable.
    """
    x_train, y_train, ctx = run.data.x_train, run.data.y_train, run.ctx
    forward, loss_fn, optimizer, schedule = run.forward, run.loss_fn, run.optimizer, run.schedule
    autocast, scaler, scaling = opts.autocast, opts.scaler, opts.scaler.is_enabled()
    channels_last, clip = opts.channels_last, opts.clip
    exact, backward_steps, isfinite = opts.exact, opts.backward_steps, math.isfinite
    draw = batches.__next__  # a bound method: no builtin lookup per step
    params = list(run.model.parameters()) if clip else []
    loss_sum, loss_acc, probe_seconds = 0.0, torch.zeros((), device=run.device), 0.0
    synchronize(run.device)
    t0 = time.perf_counter()
    for _ in range(length):
        # Batch: an index slice gathered on the device
        idx = draw()
        xb, yb = x_train[idx], y_train[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        # Forward and loss: fp32 has no context manager and no cast (tiny models feel each op)
        if autocast is None:
            loss = loss_fn(forward(xb), yb)
        else:
            with autocast:
                loss = loss_fn(forward(xb).float(), yb)
        # Backward: fp16 unscales at once, so probes and clipping see the true gradients
        optimizer.zero_grad(set_to_none=True)
        if scaling:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        step += 1
        if step in backward_steps:
            tp = time.perf_counter()
            for probe in probes:
                probe.after_backward(step, ctx, xb, yb)
            probe_seconds += time.perf_counter() - tp
        # Update
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        if scaling:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if schedule is not None:
            schedule.step()
        # Loss: on CPU read now, to stop at the exact step; elsewhere summed on the device
        if exact:
            value = loss.item()
            loss_sum += value
            if not isfinite(value):
                break
        else:
            loss_acc += loss.detach()
    synchronize(run.device)
    seconds = time.perf_counter() - t0 - probe_seconds
    if not exact:
        loss_sum = float(loss_acc)  # the interval's one host sync on an accelerator
    stopped = exact and not math.isfinite(loss_sum)
    ms_per_step = None if stopped else 1000 * seconds / length
    return Interval(step, length, seconds, probe_seconds, loss_sum, ms_per_step)


def _evaluate(run: Run, probes: list[Probe], step: int) -> Evaluation:
    """Test split and train probe batch in eval mode, then every probe's ``on_eval``."""
    t0 = time.perf_counter()
    model, data, loss_fn, chunk = run.model, run.data, run.loss_fn, run.training["eval_batch_size"]
    test_loss, test_acc = evaluate(
        model, data.x_test, data.y_test, loss_fn, data.classification, chunk
    )
    probe_loss, probe_acc = evaluate(
        model, run.x_probe, run.y_probe, loss_fn, data.classification, chunk
    )
    tp = time.perf_counter()
    for probe in probes:
        probe.on_eval(step, run.ctx)
    return Evaluation(test_loss, test_acc, probe_loss, probe_acc, tp - t0, time.perf_counter() - tp)
