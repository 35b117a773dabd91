"""Claims: a suite states what a paper found; normbench checks it against the seeds it measured.

A claim names a metric and two sets of variants (``better`` and ``than``, each a mapping of
swept keys to values, plus an optional ``where`` that restricts both). Variants of the two sets
are paired on every other swept key, and for each pair the per-seed values are compared with a
one-sided exact Mann-Whitney U test. A pair *agrees* when the claimed side is better at
α = 0.05, *disagrees* when the other side is, and is *inconclusive* otherwise. A target that
was never reached counts as worse than any reached one (it ranks last), never as a number.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from normbench.analysis.metrics import METRICS
from normbench.errors import OptionError, unknown
from normbench.naming import format_value

ALPHA = 0.05
TARGET_METRICS = {"steps_to_target", "seconds_to_target"}


def _ranks(values: Sequence[float]) -> list[float]:
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
    ranks = _ranks([*a, *b])
    observed = sum(ranks[:n])
    splits = math.comb(n + m, n)
    if splits <= 50_000:
        hits = sum(1 for combo in itertools.combinations(ranks, n) if sum(combo) >= observed - 1e-9)
        return hits / splits
    u = observed - n * (n + 1) / 2
    mean, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
    z = (u - mean - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


def check_claims(claims: list[dict[str, Any]], grid_keys: list[str]) -> None:
    """Torch-free validation of ``claims:`` (for ``normbench validate``); OptionError with a path."""
    import normbench.train.diag_catalog  # noqa: F401  (diagnostics register their metrics)

    for i, claim in enumerate(claims):
        if claim.get("metric") not in METRICS:
            raise OptionError(unknown("metric", claim.get("metric"), sorted(METRICS)), (i, "metric"))
        for side in ("better", "than", "where"):
            for key in claim.get(side) or {}:
                if key not in grid_keys:
                    raise OptionError(unknown("grid key", key, grid_keys) if grid_keys
                                      else "the suite has no grid to compare variants over", (i, side, key))
        if claim.get("published") is not None:
            if claim.get("better") or claim.get("than"):
                raise OptionError("a claim compares either two sides (better:, than:) or a "
                                  "published value (published:, where:), not both", (i,))
        elif not claim.get("better") or not claim.get("than"):
            raise OptionError("a claim needs better: and than: (mappings of grid keys to values), "
                              "or published: with where:", (i,))


def _matches(params: dict[str, Any], selector: dict[str, Any]) -> bool:
    from normbench.analysis.aggregate import label

    return all(key in params and label(params[key]) == label(value) for key, value in selector.items())


def _values(variant: dict[str, Any], metric: str, higher: bool) -> list[float]:
    """Per-seed values oriented so that larger is better; unreached targets rank worst."""
    stats = variant.get("metrics", {}).get(metric) or {}
    out = []
    for v in stats.get("values") or []:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            if metric in TARGET_METRICS:
                out.append(-math.inf)  # never reached: worse than any reached value
            continue
        out.append(float(v) if higher else -float(v))
    return out


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def evaluate_published(claim: dict[str, Any], variants: list[dict[str, Any]]) -> dict[str, Any]:
    """A published number: each ``where`` variant agrees when its 95 % CI over seeds comes
    within ``tolerance`` of it, and disagrees (too high or too low) otherwise."""
    value, tol = float(claim["published"]), float(claim.get("tolerance") or 0.0)
    rows = []
    for v in variants:
        if not _matches(v["params"], claim.get("where") or {}):
            continue
        stats = v.get("metrics", {}).get(claim["metric"]) or {}
        mean, low, high = stats.get("mean"), stats.get("ci_low"), stats.get("ci_high")
        if mean is None:
            verdict = "no value"
        else:
            low, high = (mean if low is None else low), (mean if high is None else high)
            verdict = ("agrees" if low <= value + tol and high >= value - tol
                       else "above" if low > value + tol else "below")
        rows.append({"variant": v["variant_name"], "mean": mean, "ci_low": low, "ci_high": high,
                     "verdict": verdict})
    verdicts = {r["verdict"] for r in rows}
    overall = ("no matching variants" if not rows else "agrees" if verdicts == {"agrees"}
               else "partly agrees" if "agrees" in verdicts else "disagrees")
    return {"text": claim.get("text", ""), "source": claim.get("source", ""), "metric": claim["metric"],
            "published": value, "tolerance": tol, "verdict": overall, "pairs": [], "rows": rows,
            "counts": {"agrees": sum(r["verdict"] == "agrees" for r in rows),
                       "disagrees": sum(r["verdict"] in ("above", "below") for r in rows),
                       "inconclusive": sum(r["verdict"] == "no value" for r in rows)}}


def evaluate_claim(claim: dict[str, Any], variants: list[dict[str, Any]]) -> dict[str, Any]:
    """Evaluate one claim against a summary's variants (see the module docstring)."""
    if claim.get("published") is not None:
        return evaluate_published(claim, variants)
    metric = claim["metric"]
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    where = claim.get("where") or {}
    side_keys = set(claim["better"]) | set(claim["than"])
    better = [v for v in variants if _matches(v["params"], {**where, **claim["better"]})]
    than = [v for v in variants if _matches(v["params"], {**where, **claim["than"]})]
    pairs = []
    for a in better:
        context = {k: val for k, val in a["params"].items() if k not in side_keys}
        for b in than:
            if _matches(b["params"], context):
                va, vb = _values(a, metric, higher), _values(b, metric, higher)
                p_better = mann_whitney_greater(va, vb)
                p_worse = mann_whitney_greater(vb, va)
                verdict = ("agrees" if p_better <= ALPHA else "disagrees" if p_worse <= ALPHA
                           else "inconclusive")
                sign = 1 if higher else -1
                ma, mb = _mean(va), _mean(vb)
                pairs.append({
                    "better": a["variant_name"], "than": b["variant_name"], "context": context,
                    "mean_better": None if ma is None else sign * ma,
                    "mean_than": None if mb is None else sign * mb,
                    "reached_better": sum(math.isfinite(x) for x in va), "reached_than": sum(math.isfinite(x) for x in vb),
                    "n_better": len(va), "n_than": len(vb), "p_value": p_better, "verdict": verdict,
                })
    verdicts = {p["verdict"] for p in pairs}
    overall = ("no matching variants" if not pairs else verdicts.pop() if len(verdicts) == 1
               else "partly agrees" if "agrees" in verdicts else "mixed")
    return {"text": claim.get("text", ""), "source": claim.get("source", ""), "metric": metric,
            "verdict": overall, "pairs": pairs,
            "counts": {v: sum(p["verdict"] == v for p in pairs) for v in ("agrees", "disagrees", "inconclusive")}}


def evaluate_claims(claims: list[dict[str, Any]], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate every claim of a suite."""
    return [evaluate_claim(c, variants) for c in claims]


def describe_claim(result: dict[str, Any]) -> str:
    """What was measured for one claim, pair by pair (or variant by variant), in one line."""
    if "published" in result:
        return "; ".join(
            f"{r['variant']}: {r['mean']:.4g} [{r['ci_low']:.4g}, {r['ci_high']:.4g}] vs published "
            f"{result['published']:.4g} ± {result['tolerance']:.4g} ({r['verdict']})"
            if r["mean"] is not None else f"{r['variant']}: no value" for r in result["rows"])
    target = result["metric"] in TARGET_METRICS
    return "; ".join(
        f"[{', '.join(f'{k}={format_value(v)}' for k, v in p['context'].items()) or 'all'}] "
        f"{_fmt_side(p, 'better', target)} vs {_fmt_side(p, 'than', target)} "
        f"(p = {p['p_value']:.3g}, {p['verdict']})" for p in result["pairs"])


def _fmt_side(pair: dict[str, Any], side: str, target: bool) -> str:
    """One side's mean over seeds, with how many seeds reached a target."""
    mean = pair[f"mean_{side}"]
    text = "not reached" if mean is None else f"{mean:.4g}"
    return text + (f" (reached {pair[f'reached_{side}']}/{pair[f'n_{side}']})" if target else "")


def claims_markdown(results: list[dict[str, Any]]) -> str:
    """The claims as a markdown list: the claim, the verdict and what was measured."""
    if not results:
        return ""
    lines = ["## Claims checked", ""]
    for r in results:
        src = f" ({r['source']})" if r["source"] else ""
        lines.append(f"- **{r['text']}**{src} — `{r['metric']}`: **{r['verdict']}**. {describe_claim(r)}")
    return "\n".join(lines) + "\n"
