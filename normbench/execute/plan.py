"""Execution planning (torch-free): options, shards, cost estimates, workers, resume checks."""

from __future__ import annotations

import heapq
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.errors import InputError

EXECUTORS = ("local", "dask")
MAX_SHARDS = 1_000_000  # more shards than any suite has tasks: only empty ones would follow
SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")

# What a task costs is measured, not guessed from widths: the pre-flight trains a few real steps
# of each distinct model (normbench.train.step_cost), which is right for every kind of model,
# built in or custom. Until then (or where nothing could be timed) a step counts as this much.
DEFAULT_STEP_SECONDS = 0.005
SETUP_SECONDS = 0.1  # per task: model, optimizer, data on the device
# An evaluation (the test split and the train probe, forward only) is timed too; where it was
# not, it counts as this many training steps.
UNMEASURED_EVAL_STEPS = 3.0
# Per-step work above which a model profits from several intra-op threads per worker: the
# FLOPs torch counts on one real step, a property of the configuration (threads select the
# arithmetic, so they must not depend on how fast this machine happens to be right now).
LARGE_FLOPS_PER_STEP = 5e8
# What starting workers costs before their first step: the fork server's interpreter importing
# torch, then each worker's data and first steps, mostly one after the other; seconds.
WORKER_START_SECONDS = 3.0
# Workers are started only when the model predicts them this much faster than one process:
# the prediction's own error must not buy a slower run.
WORKERS_MARGIN = 0.1
WORKER_MEMORY_BYTES = 600 * 2**20  # an interpreter with torch loaded, plus a small data set


@dataclass(frozen=True)
class ExecOptions:
    """How to execute a suite: the ``run`` command's execution options, validated."""

    workers: int | None = None  # None: chosen from the core count and the model size
    threads_per_worker: int | None = None
    executor: str = "local"
    scheduler: str | None = None
    devices: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None  # (i, n), 1-based
    resume: str | None = None  # a run directory, or "latest"
    retry_failed: bool = True  # --resume re-runs failed results (--no-retry keeps them)
    reproducible: bool | None = None  # None: the suite's training.reproducible (default off)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` → ``(2, 3)``; ``InputError`` for anything that is not ``I/N`` with 1 ≤ I ≤ N."""
    match = SHARD_RE.match(text)
    if not match:
        raise InputError(f"--shard '{text}' must look like I/N, e.g. --shard 2/3")
    i, n = int(match[1]), int(match[2])
    if n < 1 or not 1 <= i <= n:
        raise InputError(f"--shard '{text}' is out of range: I must be between 1 and N (N ≥ 1)")
    if n > MAX_SHARDS:
        raise InputError(
            f"--shard '{text}': N must be at most {MAX_SHARDS:,} (shards beyond the suite's "
            "task count are empty anyway)"
        )
    return i, n


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``"cuda:0,cuda:1"`` → ``("cuda:0", "cuda:1")``; names are checked, availability is not."""
    if not text:
        return ()
    devices = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in devices if not DEVICE_RE.match(d)]
    if bad or not devices:
        raise InputError(
            f"--devices '{text}' must be a comma-separated list of cpu, cuda, "
            "cuda:N or mps, e.g. --devices cuda:0,cuda:1"
        )
    return devices


def make_options(
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    devices: str | None = None,
    shard: str | None = None,
    resume: str | None = None,
    retry_failed: bool = True,
    reproducible: bool | None = None,
) -> ExecOptions:
    """Validate the raw command-line values; every problem is one ``InputError`` sentence."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise InputError(f"--threads-per-worker must be at least 1 (got {threads_per_worker})")
    if executor not in EXECUTORS:
        raise InputError(f"--executor '{executor}' is not one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise InputError("--scheduler needs --executor dask")
    if scheduler and "://" not in scheduler:
        raise InputError(f"--scheduler '{scheduler}' must be an address like tcp://HOST:PORT")
    parsed_devices = parse_devices(devices)
    if parsed_devices and executor == "dask":
        raise InputError(
            "--devices applies to the local executor; Dask workers use the "
            "suite's training.device on their own machines"
        )
    return ExecOptions(
        workers=workers,
        threads_per_worker=threads_per_worker,
        executor=executor,
        scheduler=scheduler or None,
        devices=parsed_devices,
        shard=parse_shard(shard) if shard is not None else None,
        resume=resume or None,
        retry_failed=retry_failed,
        reproducible=reproducible,
    )


# --- cost estimates ---------------------------------------------------------------------------


def evaluations(training: dict[str, Any]) -> int:
    """How many evaluations a task runs (one every ``eval_every`` steps, and the last)."""
    return max(1, -(-int(training["steps"]) // int(training["eval_every"])))


def estimated_seconds(
    config: dict[str, Any], step_seconds: float | None = None, eval_seconds: float | None = None
) -> float:
    """Estimated seconds of one (variant, seed) on one core, from one step's and one
    evaluation's measured seconds (unmeasured: ``DEFAULT_STEP_SECONDS`` a step, evaluations
    a fraction of it)."""
    training = config["training"]
    per_step = DEFAULT_STEP_SECONDS if step_seconds is None else step_seconds
    per_eval = per_step * UNMEASURED_EVAL_STEPS if eval_seconds is None else eval_seconds
    return SETUP_SECONDS + int(training["steps"]) * per_step + evaluations(training) * per_eval


def shard_weight(config: dict[str, Any]) -> float:
    """A task's share of the work for balancing shards: its steps × batch (examples trained).

    Every shard process must reach the same partition without running anything, so this
    reads only the configuration; it ignores the model's size, which within a suite rarely
    differs as much as its steps and batches do.
    """
    training = config["training"]
    return float(int(training["steps"]) * int(training["batch_size"]))


def stacked_flops_per_step(config: dict[str, Any]) -> float:
    """A stackable model's training FLOPs per step (6 × batch × weights between its normalised
    widths), known before anything is built: whether seeds stack changes the arithmetic."""
    from normbench.models.catalog import widths_of

    widths = [int(config["dataset"].get("features") or 64), *widths_of(config["model"])]
    weights = sum(a * b for a, b in itertools.pairwise(widths))
    return 6.0 * config["training"]["batch_size"] * weights


# --- sharding ---------------------------------------------------------------------------------


def shard_of(tasks: Sequence[Any], shard: tuple[int, int]) -> list[Any]:
    """The tasks of shard ``i`` of ``n``: deterministic and balanced by estimated cost.

    Longest-processing-time-first over the tasks sorted by (variant id, seed): each task goes
    to the shard with the least estimated work so far (ties: the lowest shard). Equal costs
    reduce this to round robin. The result keeps the suite's order.

    Only ``min(n, len(tasks))`` shards can ever receive a task (an empty shard always wins
    the tie, and the lowest empty one is taken first), so the shards live in a heap of that
    size: O(T log T) whatever ``n`` is, never a list of ``n`` loads.
    """
    i, n = shard
    if i > len(tasks):  # shards past the task count stay empty
        return []
    ordered = sorted(tasks, key=lambda t: (t.variant.id, t.seed))
    costs = {t.variant.id: shard_weight(t.variant.config) for t in ordered}
    by_cost = sorted(ordered, key=lambda t: -costs[t.variant.id])  # stable
    loads = [(0.0, j) for j in range(min(n, len(tasks)))]  # (estimated work, shard index)
    owner: dict[tuple[str, int], int] = {}
    for task in by_cost:
        load, k = heapq.heappop(loads)
        owner[(task.variant.id, task.seed)] = k
        heapq.heappush(loads, (load + costs[task.variant.id], k))
    return [t for t in tasks if owner[(t.variant.id, t.seed)] == i - 1]


def format_shard(shard: tuple[int, int]) -> str:
    return f"{shard[0]}/{shard[1]}"


# --- workers and threads ----------------------------------------------------------------------


def usable_cores() -> int:
    """Cores this process may run on (affinity / container limits), physical ones preferred."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        logical = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
    except ImportError:
        physical = logical
    return max(1, min(logical, physical))


def available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


def predicted_wall(task_seconds: Sequence[float], workers: int, parallel: float) -> float:
    """Seconds a run of these tasks takes with ``workers`` processes that together run
    ``parallel`` times as fast as one (1 worker: in-process, nothing to start)."""
    total = sum(task_seconds)
    if workers <= 1:
        return total
    return WORKER_START_SECONDS + max(total / parallel, max(task_seconds, default=0.0))


def default_workers(
    task_seconds: Sequence[float],
    *,
    cores: int,
    parallel: Any,
    gpus: int = 0,
    memory: int | None = None,
) -> int:
    """How many worker processes to use when ``--workers`` is not given.

    One per GPU on accelerators. On CPU the count whose predicted wall time is least, from each
    task's measured cost, what worker processes cost to start, and ``parallel(w)``: how much
    faster ``w`` busy processes really are than one on this machine (``execute.machine``). A
    worker must pay for itself by a margin, so a machine whose cores do not overlap, or a
    suite of a few seconds, stays in-process.
    """
    n_tasks = len(task_seconds)
    if n_tasks <= 1:
        return 1
    if gpus:
        return min(n_tasks, gpus)
    most = min(cores, n_tasks)
    if memory is not None:
        most = min(most, max(1, memory // WORKER_MEMORY_BYTES))
    best, best_wall = 1, predicted_wall(task_seconds, 1, 1.0)
    for workers in range(2, most + 1):
        wall = predicted_wall(task_seconds, workers, parallel(workers))
        if wall < best_wall * (1 - WORKERS_MARGIN):
            best, best_wall = workers, wall
    return best


def is_large(flops: float | None) -> bool:
    """Whether a model's counted FLOPs per step profit from several intra-op threads."""
    return flops is not None and flops >= LARGE_FLOPS_PER_STEP


# --- resume: does the run match the suite, which results are done -----------------------------


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted path where two JSON values differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if key not in old or key not in new:
                return (
                    f"{path}.{key}" if path else key,
                    old.get(key, "<absent>"),
                    new.get(key, "<absent>"),
                )
            diff = _first_difference(old[key], new[key], f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    return None if old == new else (path, old, new)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_stored(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists): comparisons are like for like."""
    import json

    return json.loads(json.dumps(obj, default=str))


def suite_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """One sentence saying how two ``resolved.json`` differ (variants and seeds), or None."""
    old, new = as_stored(old), as_stored(new)
    problems: list[str] = []
    old_name, new_name = old.get("suite", {}).get("name"), new.get("suite", {}).get("name")
    if old_name != new_name:
        problems.append(f"suite name '{old_name}' → '{new_name}'")
    if old.get("seeds") != new.get("seeds"):
        problems.append(f"seeds {old.get('seeds')} → {new.get('seeds')}")
    old_v = {v["name"]: v for v in old.get("variants", [])}
    new_v = {v["name"]: v for v in new.get("variants", [])}
    for name, variant in new_v.items():
        before = old_v.get(name)
        if before is None:
            problems.append(f"variant '{name}' is new")
        elif before.get("id") != variant.get("id"):
            diff = _first_difference(before.get("config", {}), variant.get("config", {}))
            detail = f" ({diff[0]} {_short(diff[1])} → {_short(diff[2])})" if diff else ""
            problems.append(f"variant '{name}' changed{detail}")
        elif before.get("seeds") != variant.get("seeds") and old.get("seeds") == new.get("seeds"):
            problems.append(
                f"variant '{name}' seeds {before.get('seeds')} → {variant.get('seeds')}"
            )
    problems += [f"variant '{name}' is gone" for name in old_v if name not in new_v]
    if not problems:
        return None
    more = (
        f" (and {len(problems) - 1} more difference{'s' * (len(problems) > 2)})"
        if len(problems) > 1
        else ""
    )
    return f"{problems[0]}{more}"


def checked_result(
    path: Path, variant_id: str, seed: int
) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None) when ``path`` holds a complete result of (variant_id, seed), else
    (None, why not).

    Complete: a bounded read of a regular file, valid against its schema (types and version
    included), under its own name, and, when it finished, with every core metric. A record
    ``{"variant_id": …, "seed": 0, "status": "ok"}`` with no metrics is not complete.
    """
    from normbench.errors import InputError
    from normbench.results.store import load_result, missing_metrics, result_name

    try:
        record = load_result(path)
    except InputError as exc:
        return None, str(exc)
    if (record["variant_id"], record["seed"]) != (variant_id, seed):
        return None, f"{path} holds {result_name(record['variant_id'], record['seed'])}"
    lacking = missing_metrics(record)
    if lacking:
        return None, f"{path} is not a complete result (it lacks the metrics {', '.join(lacking)})"
    return record, None


def valid_result(path: Path, variant_id: str, seed: int) -> dict[str, Any] | None:
    """The record at ``path`` if ``checked_result`` finds it complete, else None: ``--resume``
    re-runs what this refuses (the new result then replaces the file, or the link)."""
    return checked_result(path, variant_id, seed)[0]


def remove_stale_temp_files(run_dir: Path) -> int:
    """Delete the dot-prefixed temp files a killed writer left behind; returns how many."""
    count = 0
    for folder in (run_dir, run_dir / "results"):
        for tmp in folder.glob(".*.tmp"):
            try:
                tmp.unlink()
                count += 1
            except OSError:
                pass
    return count


# --- batched seeds ----------------------------------------------------------------------------

# What the stacked trainer (normbench.train.batched) handles exactly: a stackable model kind
# whose norms are stackable (per-member modules with no cross-member state; both are traits of
# their registry entries), trained by an element-wise optimizer, with no per-model step
# (gradient clipping), autocast, compile, dropout or diagnostics hooks.


def batch_unsupported(config: dict[str, Any]) -> str | None:
    """Why this variant's seeds cannot be trained as one stacked model, or None if they can."""
    from normbench.models.catalog import MODELS
    from normbench.norms.catalog import NORMS

    model, training = config["model"], config["training"]
    norm = NORMS.get(model["norm"]["kind"])
    checks = [
        (not MODELS[model["kind"]].stackable, f"model kind '{model['kind']}'"),
        (norm is None or not norm.stackable, f"norm '{model['norm']['kind']}'"),
        (bool(config.get("diagnostics")), "diagnostics"),
        (training.get("precision", "fp32") != "fp32", f"precision {training.get('precision')}"),
        (bool(training.get("compile")), "compile"),
        (training.get("grad_clip") is not None, "grad_clip"),
        (training["optimizer"].get("decay", "all") != "all", "optimizer decay: matrices"),
        (float(model.get("dropout") or 0) > 0, "dropout"),  # per-member masks: other RNG draws
        # The reproducible mode trains each task in the process its kernels need (maybe fresh).
        (bool(training.get("reproducible")), "reproducible mode"),
    ]
    return next((why for bad, why in checks if bad), None)


def batches_seeds(config: dict[str, Any], seeds: int, *, accelerator: bool) -> bool:
    """Whether a variant's ``seeds`` pending seeds train as one stacked model.

    ``true``: wherever supported. ``auto``: where supported and measured faster, i.e. on CPU
    for models small enough to leave the core idle in per-op overhead (benchmarks/
    batched_seeds.py on the 784-input MLP: 1.4-1.6× model-steps/s at 5 seeds, 1.6-1.8× at 16).
    """
    setting = config["training"].get("batch_seeds", "auto")
    if setting is False or seeds < 2 or batch_unsupported(config) is not None:
        return False
    if setting is True:
        return True
    device = config["training"]["device"]
    on_cpu = device == "cpu" or (device == "auto" and not accelerator)
    return on_cpu and stacked_flops_per_step(config) < LARGE_FLOPS_PER_STEP
