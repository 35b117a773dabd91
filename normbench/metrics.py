"""Metric registry: every metric's name and traits, the diagnostics' included (torch-free)."""

from __future__ import annotations

from collections.abc import Iterable

from normbench.errors import OptionError, unknown
from normbench.metric_traits import Metric, Timing
from normbench.train.diag_catalog import DIAGNOSTICS

# What tables, compare and reports show when no --metric is given, in this order.
HEADLINE_METRICS: tuple[str, ...] = (
    "final_test_acc",
    "best_test_acc",
    "final_test_loss",
    "final_train_loss",
    "steps_to_target",
    "seconds_to_target",
    "samples_per_sec",
    "rel_ms_per_step",
)

METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric to the registry (the core ones and every diagnostic's are added below)."""
    METRICS[metric.name] = metric
    return metric


for _m in [
    Metric("final_test_acc", True, "fraction", "test accuracy at the last evaluation"),
    Metric("best_test_acc", True, "fraction", "highest test accuracy over all evaluations"),
    Metric("final_test_loss", False, "nats", "test loss at the last evaluation"),
    Metric(
        "final_test_bpc",
        False,
        "bits",
        "language models: final test loss in bits per token (character or byte)",
    ),
    Metric("final_test_ppl", False, "value", "language models: final test perplexity, e^loss"),
    Metric("final_train_loss", False, "nats", "mean training loss over the last eval interval"),
    Metric("steps_to_target", False, "steps", "first eval step that reached the first target"),
    Metric(
        "seconds_to_target",
        False,
        "s",
        "training seconds until the first target was reached",
        timing="target",
    ),
    Metric(
        "samples_per_sec",
        True,
        "samples/s",
        "training samples per second: batch size / median ms per step over eval intervals",
        timing="interval",
    ),
    Metric(
        "ms_per_step",
        False,
        "ms",
        "median over eval intervals of milliseconds per training step (eval excluded)",
        timing="interval",
    ),
    Metric(
        "rel_ms_per_step",
        False,
        "ratio",
        "ms per step ÷ the reference variant's, timed side by side after training "
        "(machine-normalised)",
        timing="relative",
    ),
    Metric(
        "train_seconds",
        False,
        "s",
        "wall time spent in training steps (eval excluded)",
        timing="wall",
    ),
    Metric("num_params", False, "count", "trainable parameters of the model"),
    Metric(
        "forward_ms",
        False,
        "ms",
        "median forward time per step (step breakdown)",
        timing="breakdown",
    ),
    Metric(
        "backward_ms",
        False,
        "ms",
        "median backward time per step (step breakdown)",
        timing="breakdown",
    ),
    Metric(
        "optimizer_ms",
        False,
        "ms",
        "median optimizer time per step (step breakdown)",
        timing="breakdown",
    ),
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
        "the model's own memory: parameters + gradients + optimizer state + saved "
        "activations of one step",
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


# A diagnostic declares its metrics in its catalog entry; the catalog sits below analysis and
# never imports it, so registering them here (on import) leaves no reader with a partial view.
for _d in DIAGNOSTICS.values():
    for _m in _d.metrics:
        register(_m)


def get_metric(name: str) -> Metric:
    """Look a metric up by name; raise ``OptionError`` with a suggestion when unknown."""
    if name not in METRICS:
        raise OptionError(unknown("metric", name, sorted(METRICS)))
    return METRICS[name]


def timing_of(name: str) -> Timing:
    """A metric's timing kind ("" when it is no timing); a per-target form takes its base's."""
    m = METRICS.get(name) or METRICS.get(name.split(".", 1)[0])
    return m.timing if m else ""


def is_timing(name: str) -> bool:
    """Whether a metric is a timing: compared on log values, its runs' machines matter."""
    return timing_of(name) != ""


def timed(kinds: Iterable[Timing]) -> list[str]:
    """Registered metrics of the given timing kinds, kind by kind, registry order within."""
    return [m.name for kind in kinds for m in METRICS.values() if m.timing == kind]
