"""Claims: a suite states what a paper found; normbench checks it against the seeds it measured.

A claim names a metric and two sets of variants (``better`` and ``than``, each a mapping of
swept keys to values, plus an optional ``where`` that restricts both). Variants of the two sets
are paired on every other swept key (``tune:`` keys excepted: each side first takes its own
best value of them, e.g. its best learning rate); each pair gets the effect of ``better``
against ``than`` (a difference, or a ratio for steps and times) with the interval that
decided it and a verdict: *better*, *worse*, *equivalent* within the claim's ``margin:``, or
*undecided* (method and defaults: ``analysis.verdicts``). A published-value claim compares each
``where`` variant's mean with ``published`` ± ``tolerance``: *above*, *below*, *equivalent*
or *undecided*. Every test of a suite's claims is one Holm family at α = 0.05.
"""

from __future__ import annotations

import math
from typing import Any

from normbench.analysis.censor import TIME_METRICS, censored_values
from normbench.analysis.power import describe_plan, plan_undecided
from normbench.analysis.verdicts import (
    ALPHA,
    contrast,
    decide,
    default_margin,
    describe_effect,
    on_log_scale,
    one_sample,
    overall,
)
from normbench.claim_rules import parse_margin
from normbench.metrics import METRICS
from normbench.naming import format_value


def _matches(params: dict[str, Any], selector: dict[str, Any]) -> bool:
    # Compared as labelled (``aggregate.label`` is ``format_value``), so 0.1 matches "0.1".
    return all(
        key in params and format_value(params[key]) == format_value(value)
        for key, value in selector.items()
    )


def _margin(claim: dict[str, Any]) -> dict[str, Any]:
    return parse_margin(claim.get("margin")) or default_margin(claim["metric"])


def published_rows(claim: dict[str, Any], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ``where`` variant: its mean against the published number (no verdict yet)."""
    value, tol = float(claim["published"]), float(claim.get("tolerance") or 0.0)
    rows = []
    for v in variants:
        if not _matches(v["params"], claim.get("where") or {}):
            continue
        values, _ = censored_values(v, claim["metric"])
        stats = v.get("metrics", {}).get(claim["metric"]) or {}
        rows.append(
            {
                "variant": v["variant_name"],
                "variant_id": v.get("variant_id"),
                "mean": stats.get("mean"),
                "ci_low": stats.get("ci_low"),
                "ci_high": stats.get("ci_high"),
                **one_sample(values, value, tol),
            }
        )
    return rows


def tuned(
    side: list[dict[str, Any]], keys: list[str], metric: str, higher: bool
) -> list[dict[str, Any]]:
    """Of variants that differ only in the ``keys`` (e.g. lr), the one with the best mean.

    The best is chosen on the seeds it is then judged on, for each side alike: optimistic for
    both, as a per-norm learning-rate search is, not for one of them. An unreached target counts
    as the whole run; a variant with no value (every seed failed) is chosen only when no other
    has one.
    """
    if not keys:
        return side
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for v in side:
        rest = tuple(sorted((k, format_value(x)) for k, x in v["params"].items() if k not in keys))
        groups.setdefault(rest, []).append(v)
    sign = 1.0 if higher else -1.0

    def score(v: dict[str, Any]) -> float:
        values, _ = censored_values(v, metric)  # an unreached target counts as the full run
        return sign * sum(values) / len(values) if values else -math.inf

    return [max(group, key=score) for group in groups.values()]


def claim_pairs(claim: dict[str, Any], variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``better`` × ``than`` pairs that share every other swept value, with their effect.

    ``tune:`` keys are not shared: each side takes its own best value of them first.
    """
    metric = claim["metric"]
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    where = claim.get("where") or {}
    tune = list(claim.get("tune") or [])
    side_keys = set(claim["better"]) | set(claim["than"]) | set(tune)
    better = [v for v in variants if _matches(v["params"], {**where, **claim["better"]})]
    than = [v for v in variants if _matches(v["params"], {**where, **claim["than"]})]
    better, than = (tuned(side, tune, metric, higher) for side in (better, than))
    margin, log = _margin(claim), on_log_scale(metric)
    pairs = []
    for a in better:
        context = {k: val for k, val in a["params"].items() if k not in side_keys}
        for b in than:
            if not _matches(b["params"], context):
                continue
            va, ra = censored_values(a, metric)
            vb, rb = censored_values(b, metric)
            ma, mb = (a["metrics"].get(metric) or {}), (b["metrics"].get(metric) or {})
            pairs.append(
                {
                    "better": a["variant_name"],
                    "than": b["variant_name"],
                    "context": context,
                    "better_id": a.get("variant_id"),
                    "than_id": b.get("variant_id"),
                    "mean_better": ma.get("mean"),
                    "mean_than": mb.get("mean"),
                    "reached_better": ra,
                    "reached_than": rb,
                    "n_better": len(va),
                    "n_than": len(vb),
                    **_tuned_values(a, b, tune),
                    **contrast(va, vb, higher=higher, log=log, margin=margin),
                }
            )
    return pairs


def _tuned_values(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The values each side of a pair took for the ``tune:`` keys (none when nothing is tuned)."""
    if not keys:
        return {}
    sides = (("better", a), ("than", b))
    return {f"tuned_{side}": {k: v["params"].get(k) for k in keys} for side, v in sides}


def pair_key(index: int, pair: dict[str, Any]) -> str:
    """Stable name of one test of a suite's claims (claim index and variant ids)."""
    if "better_id" in pair:
        return f"claim{index}:{pair['better_id']}>{pair['than_id']}"
    return f"claim{index}:{pair['variant_id']}"


def evaluate_claims(
    claims: list[dict[str, Any]],
    variants: list[dict[str, Any]],
    *,
    alpha: float = ALPHA,
    frozen: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every claim of a suite as one Holm family (see the module docstring).

    ``frozen`` maps a pair key to a decision taken at an earlier look of
    ``run --until-decided``; such a pair keeps it (and its effect as measured then).
    """
    results, tests, published = [], [], []
    for i, claim in enumerate(claims):
        if claim.get("published") is not None:
            rows = published_rows(claim, variants)
            result = {
                "text": claim.get("text", ""),
                "source": claim.get("source", ""),
                "metric": claim["metric"],
                "published": float(claim["published"]),
                "tolerance": float(claim.get("tolerance") or 0.0),
                "pairs": [],
                "rows": rows,
            }
            items = rows
        else:
            items = claim_pairs(claim, variants)
            result = {
                "text": claim.get("text", ""),
                "source": claim.get("source", ""),
                "metric": claim["metric"],
                "margin": _margin(claim),
                "pairs": items,
            }
        for item in items:
            item["key"] = pair_key(i, item)
            if frozen and item["key"] in frozen:
                item.update(frozen[item["key"]], frozen=True)
            (published if "published" in result else tests).append(item)
        results.append(result)
    # One family: a published-value row's "better/worse" is "above/below" its band.
    decide(tests + published, alpha)
    for row in published:
        row["verdict"] = {"better": "above", "worse": "below"}.get(row["verdict"], row["verdict"])
    plan_undecided(tests + published, alpha)
    for r in results:
        items = r["rows"] if "published" in r else r["pairs"]
        r["verdict"] = overall([p["verdict"] for p in items])
        r["counts"] = {
            v: sum(p["verdict"] == v for p in items)
            for v in dict.fromkeys(p["verdict"] for p in items)
        }
    return results


def evaluate_claim(claim: dict[str, Any], variants: list[dict[str, Any]]) -> dict[str, Any]:
    """One claim evaluated on its own (a family of one claim)."""
    return evaluate_claims([claim], variants)[0]


def _context(pair: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in pair["context"].items()) or "all"


def _side(pair: dict[str, Any], side: str, target: bool) -> str:
    """One side's mean over seeds, with how many seeds reached a target."""
    mean = pair[f"mean_{side}"]
    text = "not reached" if mean is None else f"{mean:.4g}"
    if pair.get(f"tuned_{side}"):  # the side's own best value of a tuned key, e.g. its best lr
        text += " at " + ", ".join(
            f"{k}={format_value(v)}" for k, v in pair[f"tuned_{side}"].items()
        )
    return text + (f" (reached {pair[f'reached_{side}']}/{pair[f'n_{side}']})" if target else "")


def _seeds_note(item: dict[str, Any]) -> str:
    if item.get("look") is not None:
        return f", decided at look {item['look']} with {item.get('seeds_at_decision')} seeds"
    return ""


def describe_pair(pair: dict[str, Any], metric: str) -> str:
    """``[lr_mult=1] 0.91 vs 0.52: +0.39 [0.35, 0.43] → better`` for one tested pair."""
    target = metric.split(".")[0] in TIME_METRICS
    return (
        f"[{_context(pair)}] {_side(pair, 'better', target)} vs {_side(pair, 'than', target)}: "
        f"{describe_effect(pair)} → {pair['verdict']}{_seeds_note(pair)}{describe_plan(pair)}"
    )


def describe_row(row: dict[str, Any], result: dict[str, Any]) -> str:
    """One variant of a published-value claim against the published band."""
    if row["mean"] is None:
        return f"{row['variant']}: no value"
    return (
        f"{row['variant']}: {row['mean']:.4g} vs published {result['published']:.4g} "
        f"± {result['tolerance']:.4g}: {describe_effect(row)} → {row['verdict']}"
        f"{_seeds_note(row)}{describe_plan(row)}"
    )


def describe_claim(result: dict[str, Any]) -> str:
    """What was measured for one claim, pair by pair (or variant by variant), in one line."""
    if "published" in result:
        return "; ".join(describe_row(r, result) for r in result["rows"])
    return "; ".join(describe_pair(p, result["metric"]) for p in result["pairs"])


METHOD_NOTE = (
    "Each pair (other swept keys equal) gets the effect of the claimed-better side against the "
    "other — a difference of means, or for steps, times and rates a ratio of geometric means — "
    "with the Welch t interval that decided its verdict (its level beside it: Holm's threshold "
    "for that test), and a verdict: better or worse (Welch's t-test), "
    "equivalent (TOST: the difference is inside ±margin; default 1 point for accuracies, 5 % "
    "otherwise) or undecided. All tests of the suite's claims are Holm-corrected together at "
    f"α = {ALPHA}. When no side has any spread the difference is exact and only a rank "
    "permutation test applies; an unreached target counts as the run's full length. An "
    "undecided verdict says what would decide it: at the observed effect and spread, the seeds "
    "a side that give its test 80 % power at the level Holm would test it at next (α′), or "
    "that the effect is inside the margin, so more seeds would show equivalence, not a "
    "difference."
)


def claims_markdown(results: list[dict[str, Any]]) -> str:
    """The claims as a markdown list: the claim, the verdict and what was measured."""
    if not results:
        return ""
    lines = ["## Claims checked", "", METHOD_NOTE, ""]
    for r in results:
        src = f" ({r['source']})" if r["source"] else ""
        lines.append(
            f"- **{r['text']}**{src} — `{r['metric']}`: **{r['verdict']}**. {describe_claim(r)}"
        )
    return "\n".join(lines) + "\n"
