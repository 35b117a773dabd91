"""The answer first: a few generated sentences that open every report (pure, torch-free).

``answer(summary)`` says which variant is best (value and 95 % CI), how each norm compares
with no norm at the same settings (effect, interval, verdicts), at which learning rates each
norm trains, and what a training step costs relative to no norm at the same settings (or,
without one, to the named timing reference).
"""

from __future__ import annotations

import statistics
from typing import Any

from normbench.analysis.query import LR_KEY, headline_metric, higher_is_better, mean
from normbench.analysis.stats import CI_MIN_SEEDS
from normbench.analysis.verdicts import describe_effect


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def best_sentence(summary: dict[str, Any], metric: str) -> str | None:
    """``Best final_test_acc: norm=batch (0.912, 95 % CI 0.905–0.918, 3 seeds).``

    Only a variant with a seed that finished ``ok`` can be best: a failed seed may still
    carry timings (the seconds before it failed), which say nothing about the variant.
    """
    scored = [
        (mean(v, metric), v)
        for v in summary["variants"]
        if mean(v, metric) is not None and (v.get("counts") or {}).get("ok", 0) > 0
    ]
    if not scored:
        return None
    pick = max if higher_is_better(summary, metric) else min
    value, v = pick(scored, key=lambda item: item[0])
    stats = v["metrics"][metric]
    ci = ""
    if stats.get("ci_low") is not None and stats["n"] >= CI_MIN_SEEDS:
        ci = f", 95 % CI {_fmt(stats['ci_low'])}–{_fmt(stats['ci_high'])}"
    elif stats.get("min") is not None and stats["n"] > 1:  # too few seeds to call it a CI
        ci = f", min–max {_fmt(stats['min'])}–{_fmt(stats['max'])}"
    runner = [s for s in scored if s[1] is not v]
    return (
        f"Best {metric}: {v['variant_name']} ({_fmt(value)}{ci}, {stats['n']} seeds"
        f"{f'; {len(runner) + 1} variants' if runner else ''})."
    )


def _norm_label(v: dict[str, Any]) -> str:
    """The variant's norm, or its whole name where the suite does not sweep the norm."""
    return str(v["labels"].get("norm", v["variant_name"]))


def norm_sentences(summary: dict[str, Any], metric: str) -> list[str]:
    """Each norm against no norm where every other swept value is the same."""
    analysis = summary.get("analysis") or {}
    if (analysis.get("reference") or {}) != {"norm": "none"}:
        return []
    by_id = {v["variant_id"]: v for v in summary["variants"]}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in analysis.get("relative") or []:
        c = (row.get("contrasts") or {}).get(metric)
        if row["relaxed"] or c is None or c.get("effect") is None:
            continue
        groups.setdefault(_norm_label(by_id[row["variant_id"]]), []).append(c)
    out = []
    for norm, items in groups.items():
        if len(items) == 1:
            c = items[0]
            out.append(f"{norm} vs no norm on {metric}: {describe_effect(c)} → {c['verdict']}.")
            continue
        verdicts = [c["verdict"] for c in items]
        tally = ", ".join(f"{verdicts.count(k)} {k}" for k in dict.fromkeys(verdicts))
        effects = [c["effect"] for c in items]
        kind = "×" if items[0]["kind"] == "ratio" else ""
        sign = "" if kind else "+"
        out.append(
            f"{norm} vs no norm on {metric} over {len(items)} settings: {tally}; median "
            f"effect {kind}{statistics.median(effects):{sign}.3g} (from "
            f"{kind}{min(effects):{sign}.3g} to {kind}{max(effects):{sign}.3g})."
        )
    return out


def lr_sentence(summary: dict[str, Any]) -> str | None:
    """``Trains at lr_mult: batch 1–30 (3 of 3); none 1–5 (2 of 3).``"""
    rows = (summary.get("analysis") or {}).get("lr_robustness") or []
    if not rows:
        return None
    parts = []
    for r in rows:
        if r["converged"]:
            span = (
                r["range"][0]
                if r["range"][0] == r["range"][1]
                else f"{r['range'][0]}–{r['range'][1]}"
            )
            parts.append(
                f"{r['name']} {span} ({len(r['converged'])} of {len(r['lr_values'])}"
                f"{'' if r['contiguous'] else ', with gaps'})"
            )
        else:
            parts.append(f"{r['name']} at none of {', '.join(r['lr_values'])}")
    return (
        f"Trains (a majority of seeds finish and reach the target) at {LR_KEY}: "
        + "; ".join(parts)
        + "."
    )


def _median_parts(per_norm: dict[str, list[float]]) -> str:
    return ", ".join(f"{norm} ×{statistics.median(xs):.2f}" for norm, xs in per_norm.items())


def cost_sentence(summary: dict[str, Any]) -> str | None:
    """Step time against no norm at the same settings, else against the timing reference.

    Each norm is divided by the no-norm variant with the same other swept values (its
    ``rel_ms_per_step`` by that variant's, which cancels the shared timing reference; else the
    ms ratio). A variant without such a no-norm variant is given against what its figure is
    relative to, the run's timing reference, named.
    """
    variants = summary["variants"]
    info = summary.get("metric_info") or {}
    metric = "rel_ms_per_step" if "rel_ms_per_step" in info else "ms_per_step"
    if metric not in info:
        return None
    keys = [k for k in summary["swept"] if k != "norm"]
    base = {
        tuple(v["labels"].get(k) for k in keys): mean(v, metric)
        for v in variants
        if _norm_label(v) == "none"
    }
    vs_none: dict[str, list[float]] = {}
    vs_ref: dict[str, list[float]] = {}
    for v in variants:
        x = mean(v, metric)
        if _norm_label(v) == "none" or x is None:
            continue
        ref = base.get(tuple(v["labels"].get(k) for k in keys))
        if ref:
            vs_none.setdefault(_norm_label(v), []).append(x / ref)
        elif metric == "rel_ms_per_step":
            vs_ref.setdefault(_norm_label(v), []).append(x)
    ref_name = _timing_reference(summary)
    if vs_none:
        text = (
            f"Step time relative to no norm at the same settings ({metric} ÷ no norm's, "
            f"median over settings): {_median_parts(vs_none)}"
        )
        if vs_ref:
            text += (
                "; where no no-norm variant shares the other settings, relative to the timing "
                f"reference {ref_name}: {_median_parts(vs_ref)}"
            )
        return text + "."
    if vs_ref:
        return (
            f"Step time relative to the timing reference {ref_name} (rel_ms_per_step; the suite "
            f"has no no-norm variant; median over settings): {_median_parts(vs_ref)}."
        )
    return None


def _timing_reference(summary: dict[str, Any]) -> str:
    """The variant every ``rel_ms_per_step`` of the run is relative to, by name."""
    ref_id = (summary.get("manifest") or {}).get("rel_cost_reference")
    for v in summary["variants"]:
        if v["variant_id"] == ref_id:
            return str(v["variant_name"])
    return "the suite's first variant"


def answer(summary: dict[str, Any]) -> list[str]:
    """The opening sentences of a report (empty when the run has no values at all)."""
    metric = headline_metric(summary)
    if metric is None:
        return []
    out = [best_sentence(summary, metric)]
    contrasted = metric
    if not any(
        (r.get("contrasts") or {}).get(metric)
        for r in (summary.get("analysis") or {}).get("relative") or []
    ):
        contrasted = "final_test_acc"
    out += norm_sentences(summary, contrasted)
    out += [lr_sentence(summary), cost_sentence(summary)]
    claims = (summary.get("analysis") or {}).get("claims") or []
    if claims:
        verdicts = [c["verdict"].split(" (")[0] for c in claims]
        tally = ", ".join(f"{verdicts.count(k)} {k}" for k in dict.fromkeys(verdicts))
        out.append(f"Claims checked: {len(claims)} ({tally}); details under Claims checked.")
    return [s for s in out if s]
