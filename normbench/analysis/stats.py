"""All statistics: seed summaries, bootstrap CIs, t and rank tests, TOST, Holm, alpha spending."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from normbench.spread import finite_number

# Below this many seeds a bootstrap "CI" is just the seeds' range: it is shown as min–max.
CI_MIN_SEEDS = 3

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
    values: np.ndarray,
    level: float = CI_LEVEL,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
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
    clean = [finite_number(v) for v in values]
    x = np.array([v for v in clean if v is not None], dtype=float)
    out: dict[str, Any] = {
        "mean": None,
        "std": None,
        "median": None,
        "min": None,
        "max": None,
        "ci_low": None,
        "ci_high": None,
        "n": int(x.size),
        "values": clean,
    }
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
    matrix: np.ndarray,
    level: float = CI_LEVEL,
    resamples: int = CURVE_RESAMPLES,
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


# --- significance tests (used by ``compare``; pure Python, scipy only when importable) --------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b): the small own fallback when scipy is absent."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: float) -> float:
    """Two-sided p of Student's t with (possibly fractional) ``df``; scipy when importable."""
    try:
        from scipy.special import stdtr  # the light part of scipy; scipy.stats costs ~1 s

        return float(min(1.0, 2.0 * stdtr(df, -abs(t))))
    except ImportError:
        return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def no_spread(x: Sequence[float]) -> bool:
    """All values equal up to float noise (a deterministic metric)."""
    scale = max(max(abs(v) for v in x), 1e-300)
    return max(x) - min(x) <= 1e-12 * scale


def welch(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's unequal-variance t-test of mean(b) − mean(a).

    Needs ≥ 2 values a side and some spread on at least one side: two spread-free sides are
    not a test case (``significance`` reports them as an exact comparison instead).
    """
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    se2 = va + vb
    if se2 <= 0.0:
        raise ValueError("Welch's t-test needs spread on at least one side")
    df = se2**2 / ((va**2 / (na - 1) if va else 0.0) + (vb**2 / (nb - 1) if vb else 0.0))
    return t_two_sided((mb - ma) / math.sqrt(se2), df)


EXACT_SAME, EXACT_DIFFERENT = "exact: identical", "exact: differs"


def significance(a: list[float], b: list[float], log: bool) -> tuple[float | None, str]:
    """(p, what was done) for baseline values ``a`` and candidate values ``b``.

    Two spread-free sides (every seed the same value on each side, as deterministic metrics
    such as ``steps_to_target`` often are) are no sample of anything: the change is exact,
    so there is no p (never ``p = 0``) and the test says ``exact: identical`` or
    ``exact: differs``.
    """
    if min(len(a), len(b)) < 2:
        n = min(len(a), len(b))
        return None, f"no significance test ({n} seed{'s' if n != 1 else ''})"
    if no_spread(a) and no_spread(b):
        same = abs(b[0] - a[0]) <= 1e-12 * max(abs(a[0]), abs(b[0]), 1e-300)
        return None, EXACT_SAME if same else EXACT_DIFFERENT
    if log and min(a + b) > 0:
        return welch([math.log(x) for x in a], [math.log(x) for x in b]), "welch-log"
    return welch(a, b), "welch"


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Rejecting every hypothesis whose adjusted p is below α keeps the family-wise error (the
    chance of *any* false positive among the tests) at most α, under any dependence between
    the tests. Step-down: the k-th smallest p is multiplied by (m − k + 1), then made
    monotone so a smaller raw p never gets a larger adjusted one.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# --- intervals, equivalence and alpha spending for verdicts (torch-free, numpy-free) ---------


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with (possibly fractional) ``df``; scipy when importable."""
    try:
        from scipy.special import stdtr  # the light part of scipy; scipy.stats costs ~1 s

        return float(stdtr(df, t))
    except ImportError:
        tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
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


def holm_thresholds(p_values: list[float | None], alpha: float) -> list[float | None]:
    """The α each test is held to by Holm's step-down at family-wise ``alpha`` (``None``: no test).

    The k-th smallest p is compared with α / (m − k + 1) until the first one that fails; the
    tests after it are held to that stopping threshold. So a test is rejected exactly when its
    raw p is at most its threshold, and a (1 − threshold) interval excludes "no difference"
    exactly when the test rejects: the interval and the verdict cannot disagree.
    """
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i])  # type: ignore[arg-type,return-value]
    out: list[float | None] = [None] * len(p_values)
    stop: float | None = None
    for rank, i in enumerate(idx):
        level = alpha / (len(idx) - rank)
        if stop is None and float(p_values[i]) > level:  # type: ignore[arg-type]
            stop = level
        out[i] = level if stop is None else stop
    return out


def holm_adjust(p_values: list[float | None]) -> list[float | None]:
    """``holm`` over the p-values that exist; ``None`` (no test) stays out of the family."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    for i, adj in zip(idx, holm([float(p_values[i]) for i in idx]), strict=True):  # type: ignore[arg-type]
        out[i] = adj
    return out


# --- rank test, Welch interval and TOST for verdicts (torch-free, numpy-free) ----------------


def mean_var(x: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n − 1 in the denominator)."""
    n = len(x)
    m = sum(x) / n
    return m, sum((v - m) ** 2 for v in x) / (n - 1)


def mid_ranks(values: Sequence[float]) -> list[float]:
    """Mid-ranks (1-based), so ties share the average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that ``a`` tends to be larger than ``b`` (exact for small samples).

    Enumerates every split of the pooled ranks when there are at most 50,000; beyond that,
    the normal approximation with a continuity correction.
    """
    n, m = len(a), len(b)
    if not n or not m:
        return math.nan
    ranks = mid_ranks([*a, *b])
    observed = sum(ranks[:n])
    splits = math.comb(n + m, n)
    if splits <= 50_000:
        hits = sum(1 for combo in itertools.combinations(ranks, n) if sum(combo) >= observed - 1e-9)
        return hits / splits
    u = observed - n * (n + 1) / 2
    mean, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
    z = (u - mean - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


def welch_se_df(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Standard error of mean(a) − mean(b) and its Welch–Satterthwaite degrees of freedom."""
    (_, va), (_, vb) = mean_var(a), mean_var(b)
    sa, sb = va / len(a), vb / len(b)
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (
        (sa**2 / (len(a) - 1) if sa else 0.0) + (sb**2 / (len(b) - 1) if sb else 0.0)
    )
    return se, df


def t_interval(d: float, se: float, df: float, level: float) -> tuple[float, float]:
    """The two-sided ``level`` t interval around the estimate ``d``."""
    q = t_quantile(1 - (1 - level) / 2, df)
    return d - q * se, d + q * se


def se_from_interval(lo: float, hi: float, df: float, level: float) -> float:
    """The standard error behind a two-sided ``level`` t interval [lo, hi] (its half-width ÷ q)."""
    return (hi - lo) / 2 / t_quantile(1 - (1 - level) / 2, df)


def decisive_alpha(
    verdict: str, alpha_dir: float | None, alpha_equiv: float | None
) -> float | None:
    """The α of the interval that decides ``verdict`` (its level is 1 − this).

    A two-sided t interval at 1 − a excludes "no difference" exactly when the two-sided test
    rejects at a, and the interval at 1 − 2a lies inside ±margin exactly when TOST rejects at
    a. So: better / worse (above / below) show the direction test's interval, equivalent the
    TOST one, and undecided the wider of the two, which both contains "no difference" and
    leaves the margin.
    """
    tost = None if alpha_equiv is None else 2 * alpha_equiv
    if verdict == "equivalent":
        return tost
    if verdict != "undecided":
        return alpha_dir
    return min((a for a in (alpha_dir, tost) if a is not None), default=None)


def tost_p(d: float, delta: float, se: float, df: float) -> float:
    """TOST p of |true difference| < ``delta``: the larger of the two one-sided t tests' p."""
    return max(1 - t_cdf((d + delta) / se, df), t_cdf((d - delta) / se, df))


# --- power: how many seeds would decide a contrast (torch-free, numpy-free) ------------------

POWER = 0.8  # the conventional planning power
MAX_PLANNED_SEEDS = 10_000  # beyond this "more seeds" is no longer an answer


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@lru_cache(maxsize=256)
def _scaled_chi(df: float, points: int = 1500) -> tuple[tuple[float, float], ...]:
    """Quadrature of U = √(V/df), V ~ χ²(df): (u, weight) pairs whose weights sum to 1.

    The grid is uniform in log V (wide enough for df = 1's long left tail, narrow enough for
    df in the thousands), and the weights are normalised so the grid's own error cancels.
    """
    k = df / 2.0
    centre = math.log(df)
    lo = centre - min(60.0, 40.0 * math.sqrt(2.0 / df))
    hi = math.log(df + 20.0 * math.sqrt(2.0 * df) + 60.0)
    step = (hi - lo) / (points - 1)
    const = math.lgamma(k) + k * math.log(2.0)
    nodes = []
    for i in range(points):
        y = lo + i * step  # y = ln V; the density of y is V · χ²-density(V)
        nodes.append((math.exp(0.5 * (y - centre)), math.exp(k * y - math.exp(y) / 2.0 - const)))
    total = sum(w for _, w in nodes)
    return tuple((u, w / total) for u, w in nodes)


def t_test_power(d: float, se: float, df: float, level: float, shift: float = 0.0) -> float:
    """Power of the two-sided t-test at ``level`` when the true difference is ``d``.

    The estimate D ~ N(d, se²) and its standard error S = se·U with U² ~ χ²(df)/df (the
    Welch–Satterthwaite approximation), so the t statistic is noncentral t with λ = d / se.
    ``shift`` > 0 tests leaving the band ±shift instead of 0 (a published number ± tolerance):
    rejected when |D| − shift > t·S.
    """
    tc = t_quantile(1.0 - level / 2.0, df)
    up, down = (d - shift) / se, (d + shift) / se
    return sum(w * (1.0 - _phi(tc * u - up) + _phi(-tc * u - down)) for u, w in _scaled_chi(df))


def tost_power(d: float, delta: float, se: float, df: float, level: float) -> float:
    """Power of TOST at ``level`` (both one-sided tests) to show |difference| < ``delta`` when
    the true difference is ``d``: P(−δ + t·S < D < δ − t·S), exact under the same model."""
    tc = t_quantile(1.0 - level, df)
    total = 0.0
    for u, w in _scaled_chi(df):
        room = delta / se - tc * u
        if room > 0:
            total += w * (_phi(room - d / se) - _phi(-room - d / se))
    return total


def welch_plan(sds: Sequence[float], n: int) -> tuple[float, float]:
    """Standard error and Welch degrees of freedom with ``n`` seeds on every side of spread
    ``sds`` (one sd: a one-sample test, df = n − 1)."""
    parts = [s * s / n for s in sds]
    se = math.sqrt(sum(parts))
    nonzero = [p for p in parts if p > 0]
    df = sum(parts) ** 2 / sum(p * p / (n - 1) for p in nonzero) if nonzero else n - 1.0
    return se, df


def seeds_for_power(
    power_at: Any, start: int = 2, power: float = POWER, cap: int = MAX_PLANNED_SEEDS
) -> int | None:
    """The fewest seeds a side n ≥ ``start`` with ``power_at(n)`` ≥ ``power`` (power grows
    with n); None when even ``cap`` seeds fall short."""
    if power_at(cap) < power:
        return None
    lo, hi = start, start
    while power_at(hi) < power:
        lo, hi = hi + 1, min(cap, hi * 2)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power_at(mid) < power else (lo, mid)
    return lo


def rank_test_seeds(level: float, cap: int = MAX_PLANNED_SEEDS) -> int:
    """Seeds a side for the permutation test of ranks to reach ``level`` two-sided when every
    seed keeps its side (the best case: p = 2 / C(2n, n))."""
    n = 2
    while n < cap and 2.0 / math.comb(2 * n, n) > level:
        n += 1
    return n
