"""Seed statistics: mean, spread and seeded bootstrap confidence intervals (numpy only)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from normbench.results.store import finite_or_none

CI_LEVEL = 0.95
RESAMPLES = 2000
CURVE_RESAMPLES = 500
BOOTSTRAP_SEED = 20150211  # fixed: the same values always give the same interval


@lru_cache(maxsize=64)
def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Resampling indices, shape (resamples, n); cached because the seed is fixed."""
    rng = np.random.default_rng([seed, n])
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_ci(
    values: np.ndarray, level: float = CI_LEVEL, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of finite ``values`` (1-D).

    Seeded per call (not from a global stream) so an interval depends only on its values,
    never on which other variants the report happened to contain.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        raise ValueError("no values")
    if n == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    means = x[_indices(n, resamples, seed)].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _round(x: float | None, digits: int = 7) -> float | None:
    """Trim float noise so summary.json stays small and diffs stay readable."""
    return None if x is None else float(f"{x:.{digits}g}")


def describe(values: list[Any]) -> dict[str, Any]:
    """Statistics over the finite per-seed values; ``values`` keeps every seed (null allowed).

    ``n`` counts the finite values, so ``n < len(values)`` means some seeds had no value
    (failed, diverged, or a target not reached).
    """
    clean = [finite_or_none(v) for v in values]
    x = np.array([v for v in clean if v is not None], dtype=float)
    out: dict[str, Any] = {"mean": None, "std": None, "median": None, "min": None, "max": None,
                           "ci_low": None, "ci_high": None, "n": int(x.size), "values": clean}
    if x.size == 0:
        return out
    lo, hi = bootstrap_ci(x)
    out.update(
        mean=_round(float(x.mean())),
        std=_round(float(x.std(ddof=1))) if x.size > 1 else None,
        median=_round(float(np.median(x))),
        min=_round(float(x.min())),
        max=_round(float(x.max())),
        ci_low=_round(lo),
        ci_high=_round(hi),
    )
    return out


def _nan_quantiles(res: np.ndarray, probs: tuple[float, ...]) -> list[np.ndarray]:
    """Column quantiles ignoring NaN (linear interpolation), fully vectorised.

    ``np.nanquantile`` loops over columns in Python, which dominated report time.
    """
    srt = np.sort(res, axis=0)  # NaN sort last
    k = np.isfinite(res).sum(axis=0)
    cols = np.arange(res.shape[1])
    out = []
    for p in probs:
        pos = p * np.maximum(k - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
        frac = pos - lo
        q = srt[lo, cols] * (1 - frac) + srt[hi, cols] * frac
        out.append(np.where(k > 0, q, np.nan))
    return out


def band(
    matrix: np.ndarray, level: float = CI_LEVEL, resamples: int = CURVE_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, list[float | None]]:
    """Mean and bootstrap band per column of ``matrix`` (seeds × points, NaN = no value).

    Vectorised over points: one gather of shape (resamples, seeds, points) instead of a
    bootstrap per point, which is what keeps 200-variant reports fast. Callers stack
    several curves side by side to share the gather.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0:
        return {"mean": [], "ci_low": [], "ci_high": [], "n": []}
    finite = np.isfinite(m)
    n = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # nanmean by hand: sum of finite values / count, NaN where a column has none.
        filled = np.where(finite, m, 0.0)
        mean = filled.sum(axis=0) / n
        if m.shape[0] == 1:
            lo = hi = mean
        else:
            idx = _indices(m.shape[0], resamples, seed)
            res = filled[idx].sum(axis=1) / finite[idx].sum(axis=1)  # (resamples, points)
            alpha = (1.0 - level) / 2.0
            lo, hi = _nan_quantiles(res, (alpha, 1.0 - alpha))

    def clean(a: np.ndarray) -> list[float | None]:
        return [_round(float(v), 6) if np.isfinite(v) else None for v in a]

    return {"mean": clean(mean), "ci_low": clean(lo), "ci_high": clean(hi), "n": n.tolist()}


# --- intervals, equivalence and alpha spending for verdicts (torch-free, numpy-free) ---------


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with (possibly fractional) ``df``; scipy when importable."""
    try:
        from scipy.special import stdtr  # the light part of scipy; scipy.stats costs ~1 s

        return float(stdtr(df, t))
    except ImportError:
        from normbench.analysis import compare

        inc = globals().get("betainc") or compare.betainc
        tail = 0.5 * inc(df / 2.0, 0.5, df / (df + t * t))
        return tail if t < 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T ≤ t) = p (bisection on ``t_cdf``; scipy when importable)."""
    try:
        from scipy.special import stdtrit

        return float(stdtrit(df, p))
    except ImportError:
        lo, hi = -1e6, 1e6
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        return (lo + hi) / 2


def spending(fraction: float, alpha: float, kind: str = "obf") -> float:
    """Cumulative α spent by information fraction ``fraction`` (Lan–DeMets spending functions).

    ``obf``: the O'Brien–Fleming type 2 − 2Φ(z₁₋α/₂ / √t), which spends almost nothing at early
    looks and nearly all of α at the last; ``pocock``: α · ln(1 + (e − 1) t), which spends
    evenly. Both reach α at t = 1.
    """
    from statistics import NormalDist

    t = min(max(fraction, 0.0), 1.0)
    if t <= 0.0:
        return 0.0
    if kind == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    norm = NormalDist()
    return min(alpha, 2.0 - 2.0 * norm.cdf(norm.inv_cdf(1.0 - alpha / 2.0) / math.sqrt(t)))


def alpha_per_look(looks: list[int], alpha: float, kind: str = "obf") -> list[float]:
    """The α each planned look may use: the increments of the spending function at n_k / n_K.

    They add up to ``alpha``, so testing look k at its increment (Bonferroni over looks) keeps
    the chance of any false decision over all looks ≤ ``alpha`` whatever the correlation
    between looks — a valid, slightly conservative group-sequential design.
    """
    total = looks[-1]
    spent, out = 0.0, []
    for n in looks:
        now = spending(n / total, alpha, kind)
        out.append(max(now - spent, 0.0))
        spent = now
    return out


def holm_adjust(p_values: list[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values in input order (``None`` stays out of the family).

    Rejecting where the adjusted p ≤ α keeps the family-wise error ≤ α under any dependence.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    order = sorted(idx, key=lambda i: p_values[i])  # type: ignore[arg-type, return-value]
    out: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(idx)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out
