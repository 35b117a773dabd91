"""Metric registry: every metric's name, direction and meaning (torch-free)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric a result may carry; ``higher_is_better`` decides what a regression is."""

    name: str
    higher_is_better: bool
    unit: str
    summary: str
    source: str = "core"  # "core" or the diagnostic that adds it


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric to the registry (diagnostics call this for their own)."""
    METRICS[metric.name] = metric
    return metric


for _m in [
    Metric("final_test_acc", True, "fraction", "test accuracy at the last evaluation"),
    Metric("best_test_acc", True, "fraction", "highest test accuracy over all evaluations"),
    Metric("final_test_loss", False, "nats", "test loss at the last evaluation"),
    Metric("final_train_loss", False, "nats", "mean training loss over the last eval interval"),
    Metric("steps_to_target", False, "steps", "first eval step that reached the first target"),
    Metric("seconds_to_target", False, "s", "training seconds until the first target was reached"),
    Metric(
        "samples_per_sec",
        True,
        "samples/s",
        "training samples per second: batch size / median ms per step over eval intervals",
    ),
    Metric(
        "ms_per_step",
        False,
        "ms",
        "median over eval intervals of milliseconds per training step (eval excluded)",
    ),
    Metric(
        "rel_ms_per_step",
        False,
        "ratio",
        "ms per step ÷ the reference variant's, timed side by side after training (machine-normalised)",
    ),
    Metric("train_seconds", False, "s", "wall time spent in training steps (eval excluded)"),
    Metric("num_params", False, "count", "trainable parameters of the model"),
    Metric("forward_ms", False, "ms", "median forward time per step (step breakdown)"),
    Metric("backward_ms", False, "ms", "median backward time per step (step breakdown)"),
    Metric("optimizer_ms", False, "ms", "median optimizer time per step (step breakdown)"),
    Metric(
        "final_train_probe_acc",
        True,
        "fraction",
        "accuracy on the fixed training probe (eval mode) at the last evaluation",
    ),
    Metric(
        "generalization_gap",
        False,
        "fraction",
        "final train-probe accuracy minus final test accuracy (eval mode)",
    ),
    Metric(
        "peak_memory_mb",
        False,
        "MiB",
        "CUDA max allocated during the run (GPU only; older CPU runs stored the process RSS here)",
    ),
    Metric(
        "model_memory_mb",
        False,
        "MiB",
        "the model's own memory: parameters + gradients + optimizer state + saved activations of one step",
    ),
    Metric("param_memory_mb", False, "MiB", "parameters and buffers of the model"),
    Metric("grad_memory_mb", False, "MiB", "gradients of the trainable parameters"),
    Metric("optimizer_state_mb", False, "MiB", "optimizer state (momentum, Adam moments)"),
    Metric(
        "activation_memory_mb",
        False,
        "MiB",
        "activations autograd saves for backward in one training step",
    ),
    Metric(
        "process_rss_mb",
        False,
        "MiB",
        "peak resident memory of the worker process (torch, Python and the data included)",
    ),
    # Computed by the report from the stored curves (normbench.analysis.convergence):
    Metric("best_test_loss", False, "nats", "lowest test loss over all evaluations"),
    Metric(
        "auc_test_loss",
        False,
        "nats",
        "area under the test-loss curve ÷ step span (mean loss over training)",
    ),
    Metric(
        "auc_train_loss",
        False,
        "nats",
        "area under the train-loss curve ÷ step span (mean loss over training)",
    ),
]:
    register(_m)


def load_diagnostic_metrics() -> None:
    """Diagnostics register their metrics on import; do it so their names are recognised."""
    # Another package's import problem must not break reports.
    with contextlib.suppress(Exception):
        import normbench.train.diag_catalog  # noqa: F401


def get_metric(name: str) -> Metric:
    """Look a metric up by name; raise ``OptionError`` with a suggestion when unknown."""
    from normbench.errors import OptionError, unknown

    if name not in METRICS:
        raise OptionError(unknown("metric", name, sorted(METRICS)))
    return METRICS[name]


# Diagnostics register the metrics they add; importing their torch-free catalog here means
# every reader of METRICS (tables, claims, compare gates) sees their directions too.
import normbench.train.diag_catalog  # noqa: E402, F401
