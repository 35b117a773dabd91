"""Diagnostics registry (torch-free): names, options, validation and the metrics they add."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from normbench.errors import OptionError, unknown
from normbench.metric_traits import Metric
from normbench.models.catalog import num_blocks
from normbench.options import Option, fill


def _every() -> Option:
    # `every: null` means at every evaluation (plus the start of training): the default cadence.
    return Option(
        "every",
        "int",
        None,
        "measure every N training steps instead of at every evaluation (null)",
        min=1,
        nullable=True,
    )


ACTIVATIONS_OPTIONS = (
    Option(
        "layer",
        "int_or_str",
        -1,
        "the hidden block whose non-linearity input is recorded: an index (custom models: "
        "the normalisation sites, in order; negative from the end), or a module path such "
        "as 'layer2.0.relu'",
    ),
    Option(
        "percentiles",
        "float_list",
        (15.0, 50.0, 85.0),
        "percentiles recorded, each between 0 and 100",
        min=0.0,
        max=100.0,
        min_items=1,
        message="percentiles must list at least one value, each between 0 and 100, got {value}",
    ),
    _every(),
    # Batch statistics need two samples.
    Option("probe_size", "int", 256, "size of the fixed test probe batch", min=2),
    Option(
        "mode",
        "choice",
        "train",
        "train: batch statistics of the probe batch, as the optimizer sees the network "
        "(running statistics are saved and restored); eval: running statistics, as at inference",
        choices=("train", "eval"),
    ),
)

GRAD_NORMS_OPTIONS = (_every(),)

ICS_OPTIONS = (
    Option(
        "layers",
        "int_or_str_list",
        None,
        "block indices, or module paths ('layer1', 'fc'), to measure at (null: every block)",
        nullable=True,
        min_items=1,
        message="layers must list at least one block index (leave it out for all), got {value}",
    ),
    _every(),
)

# The η grid is in multiples of the learning rate: it must be positive.
_ETA = "the η grid must be positive (multiples of the learning rate), got {value}"

LANDSCAPE_OPTIONS = (
    Option(
        "eta_min",
        "float",
        0.5,
        "smallest step along the gradient, in multiples of the learning rate",
        min=0.0,
        min_exclusive=True,
        message=_ETA,
    ),
    Option(
        "eta_max",
        "float",
        4.0,
        "largest step along the gradient, in multiples of the learning rate",
        min=0.0,
        min_exclusive=True,
        message=_ETA,
    ),
    Option(
        "points",
        "int",
        8,
        "number of η values, evenly spaced over [eta_min, eta_max]",
        min=1,
        message="points must be at least 1, got {value}: the η grid would be empty",
    ),
    _every(),
)

EVAL_GAP_OPTIONS = (
    Option(
        "precise_samples",
        "int",
        2048,
        "training samples the precise population statistics are recomputed from",
        min=1,
    ),
    Option(
        "batch_size",
        "int",
        None,
        "batch size of the batch and precise statistics (null: the training batch size)",
        min=2,
        nullable=True,
    ),
)

LAYER_STATS_OPTIONS = (
    _every(),
    Option("probe_size", "int", 64, "training samples in the fixed probe batch", min=1),
)

SHIFT_OPTIONS = (
    Option("scale", "float", 2.0, "factor on the test inputs"),
    Option("offset", "float", 0.5, "offset added to the test inputs after the factor"),
)


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic: options, summary, the metrics it adds, its probe, plot and needs.

    ``probe`` is ``"package.module:Class"``, imported only when a run builds it (this catalog
    stays torch-free); the class takes ``(options, config)``. ``plot`` is the name of a function
    in ``normbench.report.plots`` (``None``: no plot), looked up when that module is imported.
    """

    name: str
    summary: str
    options: tuple[Option, ...]
    metrics: tuple[Metric, ...]
    probe: str
    plot: str | None = None
    needs_batch_stats: bool = False

    def __post_init__(self) -> None:
        # Caught here, a malformed reference fails at import instead of at the first run.
        module, _, attr = self.probe.partition(":")
        if not (module and attr.isidentifier()):
            raise ValueError(f"diagnostic '{self.name}': probe must be 'package.module:Class'")
        if self.plot is not None and not self.plot.isidentifier():
            raise ValueError(f"diagnostic '{self.name}': plot must be a function name")


DIAGNOSTICS: dict[str, Diagnostic] = {
    d.name: d
    for d in [
        Diagnostic(
            "activations",
            "{15,50,85}th percentiles of a block's non-linearity input over training, "
            "pooled and for unit 0 (Ioffe & Szegedy Fig. 1b-c)",
            ACTIVATIONS_OPTIONS,
            (
                Metric(
                    "act_p50_final",
                    False,
                    "value",
                    "median pre-activation at the end",
                    "activations",
                ),
                Metric(
                    "act_spread_final",
                    False,
                    "value",
                    "p85 − p15 of the pre-activation at the end",
                    "activations",
                ),
                Metric(
                    "act_p50_drift",
                    False,
                    "value",
                    "max |median − median at step 0| of the pre-activation over training",
                    "activations",
                ),
            ),
            probe="normbench.train.probes:ActivationsProbe",
            plot="plot_activations",
        ),
        Diagnostic(
            "grad_norms",
            "per-parameter gradient ℓ2 norms right after backward, over training",
            GRAD_NORMS_OPTIONS,
            (
                Metric(
                    "grad_norm_final",
                    False,
                    "value",
                    "total gradient ℓ2 norm at the last probe",
                    "grad_norms",
                ),
            ),
            probe="normbench.train.probes:GradNormsProbe",
            plot="plot_grad_norms",
        ),
        Diagnostic(
            "ics",
            "internal covariate shift (Santurkar Def. 2.1): ‖G−G′‖₂ and cos(G,G′)",
            ICS_OPTIONS,
            (
                Metric(
                    "ics_l2_mean",
                    False,
                    "value",
                    "mean ‖G−G′‖₂ over probes and blocks (block 0, zero by definition, excluded)",
                    "ics",
                ),
                Metric(
                    "ics_cos_mean",
                    True,
                    "value",
                    "mean cos(G,G′) over probes and blocks (block 0 excluded)",
                    "ics",
                ),
            ),
            probe="normbench.train.probes:IcsProbe",
            plot="plot_ics",
        ),
        Diagnostic(
            "landscape",
            "loss range, gradient predictiveness, effective β-smoothness along "
            "the gradient (Santurkar §3.2)",
            LANDSCAPE_OPTIONS,
            (
                Metric(
                    "loss_range_mean",
                    False,
                    "nats",
                    "mean over probes of the loss range along the gradient",
                    "landscape",
                ),
                Metric(
                    "grad_pred_mean",
                    False,
                    "value",
                    "mean over probes of the range of ‖∇L(θ−ηg)−∇L(θ)‖",
                    "landscape",
                ),
                Metric(
                    "beta_smoothness_max",
                    False,
                    "value",
                    "max over probes of the effective β-smoothness",
                    "landscape",
                ),
            ),
            probe="normbench.train.probes:LandscapeProbe",
            plot="plot_landscape",
        ),
        Diagnostic(
            "eval_gap",
            "test accuracy with running vs batch vs precise population statistics",
            EVAL_GAP_OPTIONS,
            (
                Metric(
                    "acc_running_stats", True, "fraction", "test accuracy, eval mode", "eval_gap"
                ),
                Metric(
                    "acc_batch_stats",
                    True,
                    "fraction",
                    "test accuracy, batch statistics",
                    "eval_gap",
                ),
                Metric(
                    "acc_precise_stats",
                    True,
                    "fraction",
                    "test accuracy, recomputed statistics",
                    "eval_gap",
                ),
                Metric(
                    "eval_gap",
                    False,
                    "fraction",
                    "batch-stats minus running-stats accuracy",
                    "eval_gap",
                ),
                Metric(
                    "acc_domain_batch_stats",
                    True,
                    "fraction",
                    "test accuracy, batch statistics of single-domain batches "
                    "(two-domain data only)",
                    "eval_gap",
                ),
                Metric(
                    "domain_eval_gap",
                    False,
                    "fraction",
                    "single-domain batch-stats minus running-stats accuracy (two-domain data only)",
                    "eval_gap",
                ),
            ),
            probe="normbench.train.probes:EvalGapProbe",
            needs_batch_stats=True,
        ),
        Diagnostic(
            "layer_stats",
            "per block: output RMS and peak |activation| (growth with depth, massive "
            "activations), the largest attention logit |q·k|/√d (Wortsman et al. 2023), and "
            "gradient norms at initialisation (Xiong et al. 2020)",
            LAYER_STATS_OPTIONS,
            (
                Metric(
                    "act_rms_growth_final",
                    False,
                    "value",
                    "last block's output RMS ÷ first block's, at the end",
                    "layer_stats",
                ),
                Metric(
                    "act_peak_final",
                    False,
                    "value",
                    "largest |activation| of any block output at the end",
                    "layer_stats",
                ),
                Metric(
                    "attn_logit_max_final",
                    False,
                    "value",
                    "largest attention logit of any block at the end (attention models)",
                    "layer_stats",
                ),
                Metric(
                    "attn_logit_max_peak",
                    False,
                    "value",
                    "largest attention logit over training (attention models)",
                    "layer_stats",
                ),
                Metric(
                    "init_grad_growth",
                    False,
                    "value",
                    "last block's gradient ℓ2 norm ÷ first block's, at initialisation",
                    "layer_stats",
                ),
            ),
            probe="normbench.train.probes:LayerStatsProbe",
            plot="plot_layer_stats",
        ),
        Diagnostic(
            "shift",
            "test accuracy under covariate shift of the test inputs (x·scale + offset)",
            SHIFT_OPTIONS,
            (
                Metric(
                    "shift_test_acc", True, "fraction", "test accuracy on shifted inputs", "shift"
                ),
                Metric("shift_drop", False, "fraction", "final_test_acc − shift_test_acc", "shift"),
            ),
            probe="normbench.train.probes:ShiftProbe",
        ),
    ]
}


def _check_layer(idx: int | str, n: int | None, path: tuple[Any, ...]) -> None:
    if isinstance(idx, str):  # a module path: checked against the built model
        if not idx.strip():
            raise OptionError("a module path must not be empty", path)
        return
    if n is not None and not -n <= idx < n:
        raise OptionError(
            f"layer {idx} does not exist: the model has {n} hidden blocks "
            f"(0..{n - 1}, or negative from the end, -1 for the last)",
            path,
        )


def resolve_diagnostics(
    value: Any, model: dict[str, Any], norm: dict[str, Any], skipped: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Validate ``diagnostics:`` (a list of names or a mapping name → options) and fill defaults.

    Errors carry the path below ``diagnostics``, e.g. ``("activations", "layer")``, or the
    item's index when ``value`` is a list.
    """
    from normbench.norms.catalog import NORMS

    # A list item has no key of its own: point errors at its index (and so at its line).
    items = {name: None for name in value} if isinstance(value, list) else dict(value or {})
    where = (
        {name: (i,) for i, name in enumerate(value)}
        if isinstance(value, list)
        else {n: (n,) for n in items}
    )
    out: dict[str, dict[str, Any]] = {}
    n_blocks = num_blocks(model)
    for name, opts in items.items():
        if name not in DIAGNOSTICS:
            raise OptionError(unknown("diagnostic", name, list(DIAGNOSTICS)), where[name])
        diag = DIAGNOSTICS[name]
        try:
            resolved = fill(f"diagnostic '{name}'", diag.options, opts or {})
        except OptionError as err:  # its path is below the diagnostic's own mapping
            raise OptionError(err.message, (name, *err.path)) from None
        if name == "activations":
            _check_layer(resolved["layer"], n_blocks, (name, "layer"))
        if name == "ics":
            for i, idx in enumerate(resolved["layers"] or []):
                _check_layer(idx, n_blocks, (name, "layers", i))
        if name == "landscape" and resolved["eta_min"] > resolved["eta_max"]:
            raise OptionError(
                f"eta_min ({resolved['eta_min']}) must not exceed eta_max "
                f"({resolved['eta_max']}): the η grid would be empty",
                (name, "eta_min"),
            )
        entry = NORMS.get(norm["kind"])  # None: a custom model's own norms (``keep``)
        if diag.needs_batch_stats and entry is not None and not entry.uses_batch_stats:
            if skipped is not None:  # the caller skips it for this variant (and warns)
                skipped.append(name)
                continue
            raise OptionError(
                f"'{name}' compares batch and running statistics, but norm "
                f"'{norm['kind']}' keeps none (use it with batch-statistics norms "
                "such as batch)",
                where[name],
            )
        out[name] = resolved
    return out


def rows() -> list[dict[str, str]]:
    """Rows for ``normbench list diagnostics``."""
    return [
        {
            "name": d.name,
            "summary": d.summary,
            "options": ", ".join(o.describe() for o in d.options),
            "metrics": ", ".join(m.name for m in d.metrics),
        }
        for d in DIAGNOSTICS.values()
    ]
