"""Per-seed values of a variant, an unreached target censored at the run's span."""

from __future__ import annotations

import math
from typing import Any

from normbench.analysis.query import mean

# The metrics a seed may never reach (no value): "how long until the target".
TIME_METRICS = ("steps_to_target", "seconds_to_target")


def run_span(v: dict[str, Any], metric: str) -> float | None:
    """How far the run went (steps or seconds): bounds a speed-up when a target is never reached."""
    curves = v.get("curves") or {}
    if metric == "steps_to_target":
        steps = curves.get("step") or []
        return float(steps[-1]) if steps else None
    secs = (curves.get("train_seconds") or {}).get("mean") or []
    last = next((s for s in reversed(secs) if s is not None), None)
    return last if last is not None else mean(v, "train_seconds")


def censored_values(variant: dict[str, Any], metric: str) -> tuple[list[float], int]:
    """Finite per-seed values and how many seeds reached a target.

    An unreached target is censored at the run's span (the seed needed at least that long),
    never dropped: dropping the slow seeds would make the side look faster than it was.
    """
    stats = variant.get("metrics", {}).get(metric) or {}
    base = metric.split(".")[0]
    out, reached = [], 0
    for v in stats.get("values") or []:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            if base in TIME_METRICS:
                span = run_span(variant, base)
                if span:
                    out.append(float(span))
            continue
        reached += 1
        out.append(float(v))
    return out, reached
