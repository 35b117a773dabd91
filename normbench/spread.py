"""Numbers every layer agrees on (a leaf module): what counts as a finite value, quartiles and
the IQR/median spread of timing samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def finite_number(value: Any) -> float | None:
    """A number (int, float, numpy or 0-d tensor) as a float, or ``None`` for null, NaN, ±inf,
    bools, strings and anything else (JSON has no NaN; a tampered file may hold anything)."""
    if value is None or isinstance(value, bool | str | bytes) or not hasattr(value, "__float__"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finite_or_none(value: Any) -> Any:
    """``finite_number`` through nested lists (a curve, a matrix of per-layer values)."""
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return finite_number(value)


def quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """(Q1, median, Q3) with linear interpolation between order statistics, like numpy."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q2, q3


def iqr_over_median(samples: Sequence[float]) -> float | None:
    """The inter-quartile range as a fraction of the median (None when the median is ≤ 0)."""
    q1, med, q3 = quartiles(samples)
    return (q3 - q1) / med if med > 0 else None
