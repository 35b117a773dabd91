"""Diagnostics registry (torch-free): names, options, validation and the metrics they add."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from normbench.errors import OptionError, unknown
from normbench.metrics import Metric, register
from normbench.models.catalog import widths_of


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _every() -> Any:
    # `every: null` means at every evaluation (plus the start of training): the default cadence.
    return Field(None, ge=1)


class ActivationsOpts(_Opts):
    """Percentiles of the input to one block's non-linearity, on a fixed test probe batch."""

    # An index into the hidden blocks (custom models: the normalisation sites, in order), or
    # a module path such as "layer2.0.relu" whose input is recorded.
    layer: int | str = -1
    percentiles: list[float] = [15.0, 50.0, 85.0]
    every: int | None = _every()
    probe_size: int = Field(256, ge=2)  # batch statistics need two samples
    # train: batch statistics of the probe batch, as the optimizer sees the network (running
    # statistics are saved and restored); eval: running statistics, as at inference.
    mode: Literal["train", "eval"] = "train"

    @field_validator("percentiles")
    @classmethod
    def _pct(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("percentiles must list at least one value between 0 and 100")
        bad = [p for p in v if not 0 <= p <= 100]
        if bad:
            raise ValueError(f"percentiles must lie between 0 and 100, got {bad[0]:g}")
        return v


class GradNormsOpts(_Opts):
    """Per-parameter gradient ℓ2 norms right after backward."""

    every: int | None = _every()


class IcsOpts(_Opts):
    """Santurkar Def. 2.1 at chosen blocks and steps."""

    layers: list[int | str] | None = None  # block indices, or module paths ("layer1", "fc")
    every: int | None = _every()

    @field_validator("layers")
    @classmethod
    def _nonempty(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not v:
            raise ValueError("layers must list at least one block index (leave it out for all)")
        return v


class LandscapeOpts(_Opts):
    """Loss range, gradient predictiveness and β-smoothness along the gradient."""

    eta_min: float = 0.5
    eta_max: float = 4.0
    points: int = 8
    every: int | None = _every()

    @field_validator("eta_min", "eta_max")
    @classmethod
    def _pos(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(
                f"the η grid must be positive (multiples of the learning rate), got {v!r}"
            )
        return v

    @field_validator("points")
    @classmethod
    def _points(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"points must be at least 1, got {v!r}: the η grid would be empty")
        return v


class EvalGapOpts(_Opts):
    """Test accuracy with running vs batch vs precisely recomputed statistics."""

    precise_samples: int = Field(2048, ge=1)
    batch_size: int | None = Field(None, ge=2)


class ShiftOpts(_Opts):
    """Test accuracy when the test inputs are scaled and shifted."""

    scale: float = 2.0
    offset: float = 0.5


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic: options model, summary, what it needs, and the metrics it adds."""

    name: str
    summary: str
    options: type[_Opts]
    metrics: tuple[Metric, ...]
    needs_batch_stats: bool = False


DIAGNOSTICS: dict[str, Diagnostic] = {
    d.name: d
    for d in [
        Diagnostic(
            "activations",
            "{15,50,85}th percentiles of a block's non-linearity input over training, "
            "pooled and for unit 0 (Ioffe & Szegedy Fig. 1b-c)",
            ActivationsOpts,
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
        ),
        Diagnostic(
            "grad_norms",
            "per-parameter gradient ℓ2 norms right after backward, over training",
            GradNormsOpts,
            (
                Metric(
                    "grad_norm_final",
                    False,
                    "value",
                    "total gradient ℓ2 norm at the last probe",
                    "grad_norms",
                ),
            ),
        ),
        Diagnostic(
            "ics",
            "internal covariate shift (Santurkar Def. 2.1): ‖G−G′‖₂ and cos(G,G′)",
            IcsOpts,
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
        ),
        Diagnostic(
            "landscape",
            "loss range, gradient predictiveness, effective β-smoothness along "
            "the gradient (Santurkar §3.2)",
            LandscapeOpts,
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
        ),
        Diagnostic(
            "eval_gap",
            "test accuracy with running vs batch vs precise population statistics",
            EvalGapOpts,
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
            needs_batch_stats=True,
        ),
        Diagnostic(
            "shift",
            "test accuracy under covariate shift of the test inputs (x·scale + offset)",
            ShiftOpts,
            (
                Metric(
                    "shift_test_acc", True, "fraction", "test accuracy on shifted inputs", "shift"
                ),
                Metric("shift_drop", False, "fraction", "final_test_acc − shift_test_acc", "shift"),
            ),
        ),
    ]
}

for _d in DIAGNOSTICS.values():
    for _m in _d.metrics:
        register(_m)


def num_blocks(model: dict[str, Any]) -> int | None:
    """How many entries ``model.blocks`` will have (None: a custom model, known when built)."""
    kind = model["kind"]
    if kind == "custom":
        return None
    if kind == "cnn":
        return len(model["channels"]) * int(model.get("convs_per_stage", 1))
    if kind == "rnn":
        return int(model.get("layers", 1))
    return len(widths_of(model))


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


def _pydantic_message(err: dict[str, Any], diag: Diagnostic) -> str:
    """One sentence for one pydantic error on a diagnostic's options."""
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return unknown("option", err["loc"][-1], list(diag.options.model_fields))
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{err['msg'].replace('Input should be', 'must be')}, got {value!r}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed (choose from {expected.replace(' or ', ', ')})"
    if kind.endswith(("_parsing", "_type", "from_float")):
        return f"{err['msg'].replace('Input should be', 'expected')}, got {value!r}"
    return str(err["msg"]).removeprefix("Value error, ")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-member markers (``int``, ``list[int]``…) from an error location."""
    return tuple(
        p for p in loc if isinstance(p, int) or not ("[" in p or p in ("int", "float", "str"))
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
            resolved = diag.options.model_validate(opts or {}).model_dump()
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise OptionError(
                _pydantic_message(err, diag), (name, *_clean_loc(tuple(err["loc"])))
            ) from None
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
            "options": ", ".join(f"{k}={f.default}" for k, f in d.options.model_fields.items()),
            "metrics": ", ".join(m.name for m in d.metrics),
        }
        for d in DIAGNOSTICS.values()
    ]
