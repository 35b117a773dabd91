"""Diagnostics registry (torch-free): names, options, validation and the metrics they add."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from normbench.analysis.metrics import Metric, register
from normbench.errors import OptionError, unknown
from normbench.models.catalog import widths_of


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActivationsOpts(_Opts):
    """Percentiles of the input to one layer's non-linearity, on a fixed test probe batch."""

    layer: int = -1
    percentiles: list[float] = [15.0, 50.0, 85.0]
    every: int | None = Field(None, ge=1)
    probe_size: int = Field(256, ge=1)

    @field_validator("percentiles")
    @classmethod
    def _pct(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= p <= 100 for p in v):
            raise ValueError("percentiles must be a non-empty list of values between 0 and 100")
        return v


class GradNormsOpts(_Opts):
    """Per-layer gradient ℓ2 norms."""

    every: int | None = Field(None, ge=1)


class IcsOpts(_Opts):
    """Santurkar Def. 2.1 at chosen layers and steps."""

    layers: list[int] | None = None
    every: int | None = Field(None, ge=1)


class LandscapeOpts(_Opts):
    """Loss range, gradient predictiveness and β-smoothness along the gradient."""

    eta_min: float = 0.5
    eta_max: float = 4.0
    points: int = Field(8, ge=1)
    every: int | None = Field(None, ge=1)

    @field_validator("eta_min", "eta_max")
    @classmethod
    def _pos(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("the η grid must be positive (multiples of the learning rate)")
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
        Diagnostic("activations", "{15,50,85}th percentiles of a layer's pre-activation over training "
                   "(Ioffe & Szegedy Fig. 1b-c)", ActivationsOpts,
                   (Metric("act_p50_final", False, "value", "median pre-activation at the end", "activations"),
                    Metric("act_spread_final", False, "value", "p85 − p15 of the pre-activation at the end", "activations"),
                    Metric("act_p50_drift", False, "value", "max |change| of the median pre-activation over training", "activations"))),
        Diagnostic("grad_norms", "per-layer gradient ℓ2 norms over training", GradNormsOpts,
                   (Metric("grad_norm_final", False, "value", "total gradient ℓ2 norm at the last probe", "grad_norms"),)),
        Diagnostic("ics", "internal covariate shift (Santurkar Def. 2.1): ‖G−G′‖₂ and cos(G,G′)", IcsOpts,
                   (Metric("ics_l2_mean", False, "value", "mean ‖G−G′‖₂ over probes and layers", "ics"),
                    Metric("ics_cos_mean", True, "value", "mean cos(G,G′) over probes and layers", "ics"))),
        Diagnostic("landscape", "loss range, gradient predictiveness, effective β-smoothness along "
                   "the gradient (Santurkar §3.2)", LandscapeOpts,
                   (Metric("loss_range_mean", False, "nats", "mean loss range along the gradient", "landscape"),
                    Metric("grad_pred_mean", False, "value", "mean range of ‖∇L(θ−ηg)−∇L(θ)‖", "landscape"),
                    Metric("beta_smoothness_max", False, "value", "max effective β-smoothness", "landscape"))),
        Diagnostic("eval_gap", "test accuracy with running vs batch vs precise population statistics",
                   EvalGapOpts,
                   (Metric("acc_running_stats", True, "fraction", "test accuracy, eval mode", "eval_gap"),
                    Metric("acc_batch_stats", True, "fraction", "test accuracy, batch statistics", "eval_gap"),
                    Metric("acc_precise_stats", True, "fraction", "test accuracy, recomputed statistics", "eval_gap"),
                    Metric("eval_gap", False, "fraction", "batch-stats minus running-stats accuracy", "eval_gap")),
                   needs_batch_stats=True),
        Diagnostic("shift", "test accuracy under covariate shift of the test inputs (x·scale + offset)",
                   ShiftOpts,
                   (Metric("shift_test_acc", True, "fraction", "test accuracy on shifted inputs", "shift"),
                    Metric("shift_drop", False, "fraction", "final_test_acc − shift_test_acc", "shift"))),
    ]
}

for _d in DIAGNOSTICS.values():
    for _m in _d.metrics:
        register(_m)


def _check_layers(indices: list[int], n: int, key: str) -> None:
    for i, idx in enumerate(indices):
        if not -n <= idx < n:
            raise OptionError(f"layer {idx} does not exist: the model has {n} normalised layers "
                              f"(0..{n - 1}, or -1 for the last)", (key, i) if key == "layers" else (key,))


def resolve_diagnostics(value: Any, model: dict[str, Any], norm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate ``diagnostics:`` (a list of names or a mapping name → options) and fill defaults."""
    from normbench.norms.catalog import NORMS

    items = {name: None for name in value} if isinstance(value, list) else dict(value or {})
    out: dict[str, dict[str, Any]] = {}
    n_layers = len(widths_of(model))
    for name, opts in items.items():
        if name not in DIAGNOSTICS:
            raise OptionError(unknown("diagnostic", name, list(DIAGNOSTICS)), (name,))
        diag = DIAGNOSTICS[name]
        try:
            resolved = diag.options.model_validate(opts or {}).model_dump()
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            key = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = unknown("option", key[-1], list(diag.options.model_fields))
            raise OptionError(msg, (name, *key)) from None
        if name == "activations":
            _check_layers([resolved["layer"]], n_layers, "layer")
        if name == "ics" and resolved["layers"] is not None:
            try:
                _check_layers(resolved["layers"], n_layers, "layers")
            except OptionError as exc:
                raise OptionError(exc.message, (name, *exc.path)) from None
        if name == "landscape" and resolved["eta_min"] > resolved["eta_max"]:
            raise OptionError("eta_min must not exceed eta_max", (name, "eta_min"))
        if diag.needs_batch_stats and not NORMS[norm["kind"]].uses_batch_stats:
            raise OptionError(f"'{name}' compares batch and running statistics, but norm "
                              f"'{norm['kind']}' keeps none", (name,))
        out[name] = resolved
    return out


def rows() -> list[dict[str, str]]:
    """Rows for ``normbench list diagnostics``."""
    return [
        {"name": d.name, "summary": d.summary,
         "options": ", ".join(f"{k}={f.default}" for k, f in d.options.model_fields.items()),
         "metrics": ", ".join(m.name for m in d.metrics)}
        for d in DIAGNOSTICS.values()
    ]
