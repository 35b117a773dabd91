"""Across settings: performance profiles per norm and relative step cost (torch-free).

A *setting* is one combination of every swept value except the norm (learning rate, batch
size, placement, model …). In each setting a norm's time is its mean ``steps_to_target``
over seeds when a strict majority of its seeds reached the target, else it never got there.
The AlgoPerf-style profile of a norm is ρ(τ): the fraction of settings in which its time is
within τ × the best norm's time there, for τ from 1 to 4 (ρ(1) = the share of settings it won).
"""

from __future__ import annotations

from typing import Any

from normbench.analysis.query import group_by, mean, name_of

NORM_KEY = "norm"
TAUS = [1 + 0.05 * i for i in range(61)]  # 1.00 … 4.00


def _time(v: dict[str, Any], metric: str) -> float | None:
    """Mean time to target when a strict majority of the seeds reached it."""
    stats = v["metrics"].get(metric) or {}
    values = stats.get("values") or []
    reached = [x for x in values if x is not None]
    if not values or 2 * len(reached) <= len(values):
        return None
    return sum(reached) / len(reached)


def performance_profile(
    summary: dict[str, Any], metric: str = "steps_to_target", taus: list[float] | None = None
) -> dict[str, Any] | None:
    """The per-setting times and ratios and each norm's ρ(τ); None without ≥ 2 norms × settings."""
    taus = taus or TAUS
    norms = (summary.get("values") or {}).get(NORM_KEY) or []
    keys = [k for k in summary["swept"] if k != NORM_KEY]
    if len(norms) < 2 or not keys or metric not in (summary.get("metric_info") or {}):
        return None
    settings = []
    for labels, group in group_by(summary["variants"], keys).items():
        times = {v["labels"][NORM_KEY]: _time(v, metric) for v in group if NORM_KEY in v["labels"]}
        best = min((t for t in times.values() if t is not None), default=None)
        ratios = {n: (t / best if t is not None and best else None) for n, t in times.items()}
        settings.append(
            {
                "setting": name_of(dict(zip(keys, labels, strict=True)), keys),
                "times": times,
                "ratios": ratios,
                "best": best,
            }
        )
    if len(settings) < 2:
        return None
    profile = {}
    for norm in norms:
        ratios = [s["ratios"].get(norm) for s in settings]
        profile[norm] = [
            sum(r is not None and r <= tau + 1e-9 for r in ratios) / len(settings) for tau in taus
        ]
    return {
        "metric": metric,
        "taus": taus,
        "norms": norms,
        "profile": profile,
        "settings": settings,
    }


def cost_points(summary: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """One point per variant: ``metric`` (mean, CI) against its relative step cost (mean, CI).

    The cost is ``rel_ms_per_step`` when recorded; else ms per step ÷ the mean ms per step of
    the no-norm variant at the same other settings (its CI scaled by the same divisor).
    """
    info = summary.get("metric_info") or {}
    variants = summary["variants"]
    keys = [k for k in summary["swept"] if k != NORM_KEY]
    base: dict[tuple, float | None] = {}
    if "rel_ms_per_step" not in info:
        base = {
            tuple(v["labels"].get(k) for k in keys): mean(v, "ms_per_step")
            for v in variants
            if v["labels"].get(NORM_KEY) == "none"
        }
    out = []
    for v in variants:
        y = v["metrics"].get(metric) or {}
        if y.get("mean") is None:
            continue
        if "rel_ms_per_step" in info:
            x, div = v["metrics"].get("rel_ms_per_step") or {}, 1.0
        else:
            x, div = (
                v["metrics"].get("ms_per_step") or {},
                base.get(tuple(v["labels"].get(k) for k in keys)),
            )
        if x.get("mean") is None or not div:
            continue
        out.append(
            {
                "variant": v["variant_name"],
                "labels": v["labels"],
                "cost": x["mean"] / div,
                "cost_low": (x.get("ci_low") or x["mean"]) / div,
                "cost_high": (x.get("ci_high") or x["mean"]) / div,
                "value": y["mean"],
                "low": y.get("ci_low") or y["mean"],
                "high": y.get("ci_high") or y["mean"],
            }
        )
    return out
