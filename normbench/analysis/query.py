"""Questions asked of a summary: which metric, which swept key, which variants belong together."""

from __future__ import annotations

from typing import Any

from normbench.errors import InputError, did_you_mean, unknown
from normbench.metrics import METRICS

HEADLINE = ("final_test_acc", "final_test_loss", "final_train_loss")
LR_KEY = "lr_mult"


def available_metrics(summary: dict[str, Any]) -> list[str]:
    """Metric names that carry at least one value in this run."""
    names = list(summary.get("metric_info") or {})
    return [n for n in names if any(v["metrics"].get(n, {}).get("n") for v in summary["variants"])]


def resolve_metric(summary: dict[str, Any], name: str) -> str:
    """Check ``--metric``; ``InputError`` says whether it is unknown or just not recorded here."""
    recorded = list(summary.get("metric_info") or {})
    if name in recorded:
        return name
    if name in METRICS:
        raise InputError(
            f"metric '{name}' was not recorded in this run (recorded: {', '.join(recorded)})"
        )
    raise InputError(unknown("metric", name, recorded))


def headline_metric(summary: dict[str, Any]) -> str | None:
    """The metric tables lead with: test accuracy, or a loss for regression suites."""
    have = available_metrics(summary)
    return next((m for m in HEADLINE if m in have), have[0] if have else None)


def higher_is_better(summary: dict[str, Any], metric: str) -> bool:
    return bool((summary.get("metric_info") or {}).get(metric, {}).get("higher_is_better", False))


def check_keys(summary: dict[str, Any], keys: list[str], what: str) -> list[str]:
    """Validate swept keys named on the command line (``--pivot``, ``--reference``)."""
    swept = summary["swept"]
    if not swept:
        raise InputError(f"{what} needs a swept key, but this run has no grid")
    for key in keys:
        if key not in swept:
            raise InputError(
                f"{what} key '{key}' was not swept in this run"
                f"{did_you_mean(key, swept)} (swept keys: {', '.join(swept)})"
            )
    if len(set(keys)) != len(keys):
        raise InputError(f"{what} names a key twice: {', '.join(keys)}")
    return keys


def mean(variant: dict[str, Any], metric: str) -> float | None:
    return (variant["metrics"].get(metric) or {}).get("mean")


def best_of(
    summary: dict[str, Any], variants: list[dict[str, Any]], metric: str
) -> dict[str, Any] | None:
    """The variant with the best mean of ``metric`` (``None`` when none has a value)."""
    scored = [v for v in variants if mean(v, metric) is not None]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(summary, metric) else -1.0
    return max(scored, key=lambda v: sign * mean(v, metric))  # max keeps the first on ties


def group_by(
    variants: list[dict[str, Any]], keys: list[str]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Variants grouped by their labels on ``keys``, groups in first-seen (grid) order."""
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for v in variants:
        out.setdefault(tuple(v["labels"].get(k, "") for k in keys), []).append(v)
    return out


def family_keys(summary: dict[str, Any]) -> tuple[str | None, str | None]:
    """(colour key, line-style key): norm and placement when swept, else the first swept keys.

    Fixed once per report so a norm has the same colour in every plot.
    """
    swept = [k for k in summary["swept"] if len(summary["values"].get(k, [])) > 1]
    colour = "norm" if "norm" in swept else next((k for k in swept if k != LR_KEY), None)
    rest = [k for k in swept if k not in (colour, LR_KEY)]
    style = "placement" if "placement" in rest else (rest[0] if rest else None)
    return colour, style


def name_of(labels: dict[str, str], keys: list[str]) -> str:
    """``norm=batch,placement=pre`` for the given keys (``all`` when there are none)."""
    return ",".join(f"{k}={labels[k]}" for k in keys if k in labels) or "all"
