"""Verdicts: an effect with its confidence interval, and better / worse / equivalent / undecided.

The method (README, "Claims and verdicts"):

* **Scale.** Step, time, throughput and memory metrics (and ratios of them) are compared on
  log values — their noise is multiplicative — so the effect is a *ratio* (geometric means)
  with its interval; every other metric gives a *difference* of means, side ``a`` − side ``b``.
* **Interval.** Welch's t interval for the difference of means (of logs), with the
  Welch–Satterthwaite degrees of freedom; it needs two seeds a side. Its level is the one
  that decided the verdict (``settle_interval``; README, "One verdict, one interval").
* **Better / worse.** Welch's t-test, two-sided; the sign says which. ``p_dir`` is its p.
* **Equivalent within ±δ.** TOST: two one-sided Welch tests that the difference is above −δ
  and below +δ; ``p_equiv`` is the larger p. δ is the claim's ``margin:`` (a number in the
  metric's units, or ``"5%"``); defaults: 0.01 (one point) for fractions such as accuracy,
  5 % for everything else.
* **Exact differences.** When no side has any spread (every seed gave the same value, as
  deterministic step counts often do) there is no variance to test with: the difference is
  stated as exact, and its only test is the permutation test of ranks (perfect separation of
  n and m seeds: one-sided p = 1 / C(n + m, n)). Identical values are *equivalent*, exactly.
* **Unreached targets.** A seed that never reached a target is censored at the run's span
  (the steps or seconds it ran): it needed at least that much, so the unreached side is never
  made to look faster than it was.
* **Many claims.** All tests of a suite form one family: Holm–Bonferroni over the
  better/worse p-values at α = 0.05, then over the equivalence p-values of the rest, so the
  chance of any false *better* or *worse* in the suite stays ≤ α, and so (separately) does the
  chance of any false *equivalent*.
* **Repeated looks** (``run --until-decided``): look k tests at the α its spending function
  allots it (``analysis.stats.alpha_per_look``), and a decided pair keeps its decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from normbench.analysis.stats import (
    decisive_alpha,
    holm_adjust,
    holm_thresholds,
    mann_whitney_greater,
    mean_var,
    no_spread,
    se_from_interval,
    t_cdf,
    t_interval,
    tost_p,
    welch_se_df,
)

ALPHA = 0.05
LEVEL = 0.95
LOG_UNITS = {"s", "ms", "samples/s", "steps", "MiB", "ratio"}
DEFAULT_FRACTION_MARGIN = 0.01
DEFAULT_RELATIVE_MARGIN = 0.05
VERDICTS = ("better", "worse", "equivalent", "undecided")


def on_log_scale(metric: str) -> bool:
    """Whether ``metric`` is compared on log values (steps, times, rates, memory, ratios)."""
    from normbench.metrics import METRICS

    base = metric.split(".")[0]
    if base in ("steps_to_target", "seconds_to_target"):
        return True
    info = METRICS.get(base)
    return info is not None and info.unit in LOG_UNITS


def default_margin(metric: str) -> dict[str, Any]:
    """One accuracy point for fractions; 5 % for steps, times and everything else."""
    from normbench.metrics import METRICS

    info = METRICS.get(metric.split(".")[0])
    if info is not None and info.unit == "fraction":
        return {"kind": "abs", "value": DEFAULT_FRACTION_MARGIN}
    return {"kind": "rel", "value": DEFAULT_RELATIVE_MARGIN}


def margin_text(margin: dict[str, Any]) -> str:
    """``±0.01`` or ``±5 %``."""
    if margin["kind"] == "rel":
        return f"±{margin['value'] * 100:g} %"
    return f"±{margin['value']:g}"


def contrast(
    a: Sequence[float], b: Sequence[float], *, higher: bool, log: bool, margin: dict[str, Any]
) -> dict[str, Any]:
    """Effect of side ``a`` against side ``b`` with its interval and the tests' p-values.

    ``direction`` is +1 when ``a`` looks better in the metric's direction, −1 when worse.
    """
    a, b = [float(v) for v in a], [float(v) for v in b]
    log = log and bool(a) and bool(b) and min(a + b) > 0
    out: dict[str, Any] = {
        "scale": "log" if log else "linear",
        "kind": "ratio" if log else "difference",
        "n": [len(a), len(b)],
        "effect": None,
        "ci_low": None,
        "ci_high": None,
        "margin": margin_text(margin),
        "delta": None,
        "method": "too few seeds",
        "exact": False,
        "direction": 0,
        "p_dir": None,
        "p_equiv": None,
    }
    if not a or not b:
        out["method"] = "no values"
        return out
    xa = [math.log(v) for v in a] if log else a
    xb = [math.log(v) for v in b] if log else b
    ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
    d = ma - mb
    mean_b = abs(sum(b) / len(b))
    if margin["kind"] == "rel":
        delta = math.log1p(margin["value"]) if log else margin["value"] * mean_b
    else:  # absolute, in the metric's units: relative to side b's mean on a log scale
        delta = math.log1p(margin["value"] / mean_b) if log else margin["value"]
    sign = 1 if higher else -1
    out.update(
        effect=math.exp(d) if log else d,
        means=[sum(a) / len(a), sum(b) / len(b)],
        delta=[math.exp(-delta), math.exp(delta)] if log else [-delta, delta],
        direction=int(math.copysign(1, sign * d)) if d else 0,
    )
    if len(a) < 2 or len(b) < 2:
        return out
    if no_spread(xa) and no_spread(xb):
        scale = max(abs(ma), abs(mb), 1e-300)
        out.update(method="exact", exact=True, ci_low=out["effect"], ci_high=out["effect"])
        if abs(d) <= 1e-12 * scale:
            out["direction"] = 0
            return out
        oa, ob = ([v * sign for v in xa], [v * sign for v in xb])
        out["p_dir"] = min(1.0, 2 * min(mann_whitney_greater(oa, ob), mann_whitney_greater(ob, oa)))
        return out
    se, df = welch_se_df(xa, xb)
    lo, hi = t_interval(d, se, df, LEVEL)
    t_or = sign * d / se
    p_better, p_worse = 1 - t_cdf(t_or, df), t_cdf(t_or, df)
    p_equiv = tost_p(d, delta, se, df)
    out.update(
        method="welch-log" if log else "welch",
        df=df,
        se=se,
        sd=[math.sqrt(mean_var(xa)[1]), math.sqrt(mean_var(xb)[1])],  # to plan more seeds
        ci_low=math.exp(lo) if log else lo,
        ci_high=math.exp(hi) if log else hi,
        p_dir=min(1.0, 2 * min(p_better, p_worse)),
        p_equiv=min(1.0, p_equiv),
    )
    return out


def one_sample(values: Sequence[float], published: float, tolerance: float) -> dict[str, Any]:
    """The mean over seeds against a published number ± ``tolerance`` (one-sample t).

    ``direction`` +1 means above the published band, −1 below; ``p_dir`` tests leaving the
    band, ``p_equiv`` (TOST) staying inside it.
    """
    x = [float(v) for v in values]
    out: dict[str, Any] = {
        "scale": "linear",
        "kind": "difference",
        "n": [len(x)],
        "effect": None,
        "ci_low": None,
        "ci_high": None,
        "margin": f"±{tolerance:g}",
        "delta": [-tolerance, tolerance],
        "method": "too few seeds",
        "exact": False,
        "direction": 0,
        "p_dir": None,
        "p_equiv": None,
    }
    if not x:
        out["method"] = "no values"
        return out
    m = sum(x) / len(x)
    d = m - published
    out.update(effect=d, means=[m], direction=1 if d > tolerance else -1 if d < -tolerance else 0)
    if len(x) < 2:
        return out
    if no_spread(x):  # every seed the same number: it is where it is, exactly
        out.update(method="exact", exact=True, ci_low=d, ci_high=d)
        return out
    _, var = mean_var(x)
    se, df = math.sqrt(var / len(x)), len(x) - 1
    lo, hi = t_interval(d, se, df, LEVEL)
    p_above = 1 - t_cdf((d - tolerance) / se, df)
    p_below = t_cdf((d + tolerance) / se, df)
    p_equiv = tost_p(d, tolerance, se, df)
    out.update(
        method="t",
        df=df,
        se=se,
        sd=[math.sqrt(var)],  # to plan more seeds
        ci_low=lo,
        ci_high=hi,
        direction=1 if p_above < p_below else -1,
        p_dir=min(1.0, 2 * min(p_above, p_below)),
        p_equiv=min(1.0, p_equiv),
    )
    return out


def _exact_verdict(c: dict[str, Any]) -> str | None:
    """An exact difference inside the margin is equivalent; identical values always are."""
    if not c.get("exact"):
        return None
    if c["direction"] == 0:
        return "equivalent"
    lo, hi = c["delta"]
    return "equivalent" if lo <= c["effect"] <= hi else None


def decide(
    contrasts: list[dict[str, Any]],
    alpha: float = ALPHA,
    labels: tuple[str, str] = ("better", "worse"),
) -> None:
    """Set ``verdict`` (and the Holm-adjusted p-values) on every contrast of one family.

    Each contrast's interval is then the one that decided it (``settle_interval``), so no
    printed interval can disagree with its verdict. A contrast that already has
    ``frozen: true`` (decided at an earlier look) keeps its verdict and interval and takes
    part with its stored p-values.
    """
    p_dir = [c.get("p_dir") for c in contrasts]
    adj_dir, held_dir = holm_adjust(p_dir), holm_thresholds(p_dir, alpha)
    for c, p in zip(contrasts, adj_dir, strict=True):
        c["p_dir_adj"] = p
        if c.get("frozen"):
            continue
        c["verdict"] = "undecided"
        if p is not None and p <= alpha and c["direction"]:
            c["verdict"] = labels[0] if c["direction"] > 0 else labels[1]
    rest = [
        None if c.get("frozen") or c["verdict"] != "undecided" else c.get("p_equiv")
        for c in contrasts
    ]
    held_equiv = holm_thresholds(rest, alpha)
    for c, p in zip(contrasts, holm_adjust(rest), strict=True):
        c["p_equiv_adj"] = p
        if c.get("frozen") or c["verdict"] != "undecided":
            continue
        if (p is not None and p <= alpha) or _exact_verdict(c) == "equivalent":
            c["verdict"] = "equivalent"
        elif c.get("exact") and len(c["n"]) == 1:
            # one sample without spread against a published number: it is where it is
            c["verdict"] = labels[0] if c["direction"] > 0 else labels[1]
    for c, a_dir, a_equiv in zip(contrasts, held_dir, held_equiv, strict=True):
        if c.get("frozen"):
            a_dir, a_equiv = _frozen_alphas(c, alpha)
        verdict = {labels[0]: "better", labels[1]: "worse"}.get(c["verdict"], c["verdict"])
        settle_interval(c, decisive_alpha(verdict, a_dir, a_equiv))


def look_decisions(manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], float]:
    """The decisions a ``run --until-decided`` froze (each with its look's α) and the α now."""
    seq = (manifest or {}).get("until_decided") or {}
    per_look = seq.get("alpha_per_look") or []
    frozen = {
        key: {**d, "alpha_look": per_look[d["look"] - 1]}
        if "alpha_look" not in d
        and isinstance(d.get("look"), int)
        and 0 < d["look"] <= len(per_look)
        else d
        for key, d in (seq.get("decisions") or {}).items()
    }
    return frozen, float(seq.get("alpha_now", ALPHA))


def _frozen_alphas(c: dict[str, Any], alpha: float) -> tuple[float | None, float | None]:
    """The thresholds a decision of an earlier look was held to: α of its look × p ÷ adjusted p.

    (Holm rejects exactly when p ≤ α · p / p_adjusted, so this is the level it passed.)
    """
    look_alpha = float(c.get("alpha_look") or alpha)

    def held(raw: Any, adj: Any) -> float | None:
        return None if raw is None or not adj else look_alpha * float(raw) / float(adj)

    return held(c.get("p_dir"), c.get("p_dir_adj")), held(c.get("p_equiv"), c.get("p_equiv_adj"))


def settle_interval(c: dict[str, Any], a: float | None) -> None:
    """Replace the 95 % interval of ``c`` by the (1 − ``a``) one that decided its verdict."""
    if c.get("ci_level") is not None and c.get("frozen"):
        return  # decided at an earlier look: it keeps the interval it was decided with
    if a is None or c.get("exact") or c.get("df") is None or c.get("ci_low") is None:
        return
    log = c["kind"] == "ratio"
    to = (lambda x: math.log(x)) if log else (lambda x: x)
    d = to(c["effect"])
    # A decision stored before intervals were settled has only its 95 % interval (its ``se``,
    # if any, is today's, from more seeds): that interval gives its standard error back.
    se = None if c.get("frozen") else c.get("se")
    if se is None:
        se = se_from_interval(to(c["ci_low"]), to(c["ci_high"]), c["df"], LEVEL)
    lo, hi = t_interval(d, se, c["df"], 1 - a)
    if log:  # a ratio's interval on 2 seeds at a strict level can leave float range
        lo, hi = math.exp(max(lo, -700.0)), math.exp(min(hi, 700.0))
    c.update(ci_low=lo, ci_high=hi, ci_level=1 - a)


def overall(verdicts: list[str]) -> str:
    """A claim's verdict from its pairs': the common one, else ``mixed (2 better, 1 undecided)``."""
    if not verdicts:
        return "no matching variants"
    if len(set(verdicts)) == 1:
        return verdicts[0]
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    return "mixed (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")"


def fmt_number(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def level_text(level: float) -> str:
    """``99.7 % CI``: the level with as many digits as it takes to differ from 100 %."""
    pct = level * 100
    for digits in range(3, 8):
        text = f"{pct:.{digits}g}"
        if float(text) < 100:
            return f"{text} % CI"
    return f"{pct:.7g} % CI"


def describe_effect(c: dict[str, Any]) -> str:
    """``+0.034 [0.012, 0.056] (99.7 % CI)`` or ``×0.62 [0.55, 0.70] (95 % CI)``.

    The interval is the one that decided the verdict (``settle_interval``), its level beside
    it; ``exact`` when there is no spread.
    """
    if c.get("effect") is None:
        return "no values"
    if c["kind"] == "ratio":
        text = f"×{c['effect']:.3g}"
        ci = (
            f" [{c['ci_low']:.3g}, {c['ci_high']:.3g}]"
            if c.get("ci_low") is not None and not c.get("exact")
            else ""
        )
    else:
        text = f"{c['effect']:+.3g}"
        ci = (
            f" [{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]"
            if c.get("ci_low") is not None and not c.get("exact")
            else ""
        )
    if c.get("exact"):
        why = ""
        if c.get("verdict") == "undecided" and c.get("p_dir") is not None:
            why = f"; rank test p {c['p_dir']:.2g}, adjusted {c['p_dir_adj']:.2g}: too few seeds"
        return text + f" (exact: no spread over seeds{why})"
    if c["method"] == "too few seeds":
        return text + " (no interval: fewer than 2 seeds a side)"
    if ci:
        ci += f" ({level_text(c.get('ci_level') or LEVEL)})"
    return text + ci
