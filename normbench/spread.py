"""Quartiles and the IQR/median spread of timing samples: one definition (a leaf module)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


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
