"""What it would take: the seeds a side that would decide each undecided verdict.

For every undecided test of a claim family the observed effect and spread are taken as the
truth, and the test the verdict uses is planned at 80 % power (formulas: ``analysis.stats``):

* **Outside the margin** (|effect| > δ, or outside a published band): the fewest seeds a side
  for Welch's two-sided t-test (the one-sample t for a published number) to call it *better*
  or *worse*. More seeds can never show equivalence there.
* **Inside the margin**: more seeds would show *equivalence*, not a difference; the fewest
  seeds a side for TOST to show it.
* **No spread** (every seed the same value): only the rank permutation test applies, whose
  best p with n seeds a side is 2 / C(2n, n).

The level is the one Holm–Bonferroni would test the item at next: α divided by the number of
the family's tests not yet rejected (α is the run's last look's under ``--until-decided``), so
the estimate assumes the other tests stay as they are.
"""

from __future__ import annotations

import math
from typing import Any

from normbench.analysis.stats import (
    MAX_PLANNED_SEEDS,
    POWER,
    rank_test_seeds,
    seeds_for_power,
    t_test_power,
    tost_power,
    welch_plan,
)

DIRECTION_VERDICTS = ("better", "worse", "above", "below")


def _test_scale(item: dict[str, Any]) -> tuple[float, float]:
    """The observed difference and the half-width of the margin (or band) on the test's
    scale: logs for ratios, the metric's units otherwise."""
    if item["kind"] == "ratio":
        return math.log(item["effect"]), math.log(item["delta"][1])
    return float(item["effect"]), float(item["delta"][1])


def plan(item: dict[str, Any], level_dir: float, level_equiv: float) -> dict[str, Any]:
    """What would decide one undecided item: ``{"need", "seeds", "level"}`` where ``need`` is
    ``difference``, ``equivalence``, ``rank`` or ``spread`` (fewer than 2 seeds a side)."""
    if item.get("effect") is None or item.get("method") in ("too few seeds", "no values"):
        return {"need": "spread", "seeds": 2, "level": None}
    published = len(item["n"]) == 1
    d, delta = _test_scale(item)
    if item.get("exact"):
        return {"need": "rank", "seeds": rank_test_seeds(level_dir), "level": level_dir}
    sds, start = item["sd"], max(2, min(item["n"]))
    if abs(d) > delta:
        shift = delta if published else 0.0
        need, level = "difference", level_dir

        def power_at(n: int) -> float:
            se, df = welch_plan(sds, n)
            return t_test_power(d, se, df, level, shift=shift)
    else:
        need, level = "equivalence", level_equiv

        def power_at(n: int) -> float:
            se, df = welch_plan(sds, n)
            return tost_power(d, delta, se, df, level)

    return {"need": need, "seeds": seeds_for_power(power_at, start), "level": level}


def plan_undecided(items: list[dict[str, Any]], alpha: float) -> None:
    """Set ``to_decide`` (see :func:`plan`) on every undecided item of one Holm family."""
    tested = [c for c in items if c.get("p_dir") is not None]
    left_dir = len(tested) - sum(c["verdict"] in DIRECTION_VERDICTS for c in tested)
    rest = [
        c
        for c in items
        if not c.get("frozen")
        and c["verdict"] not in DIRECTION_VERDICTS
        and c.get("p_equiv") is not None
    ]
    left_equiv = len(rest) - sum(c["verdict"] == "equivalent" for c in rest)
    for c in items:
        if c["verdict"] != "undecided" or c.get("frozen"):
            continue
        joins = c.get("p_dir") is None  # it joins the family once it has a test
        c["to_decide"] = plan(
            c, alpha / max(1, left_dir + joins), alpha / max(1, left_equiv + joins)
        )


def describe_plan(item: dict[str, Any]) -> str:
    """`` — ≈ 24 seeds a side would show a difference (80 % power, α′ = 0.0083)`` or ``""``."""
    p = item.get("to_decide")
    if not p:
        return ""
    if p["need"] == "spread":
        return " — needs ≥ 2 seeds a side to measure a spread"
    level = f"α′ = {p['level']:.2g}"
    if p["need"] == "rank":
        return (
            f" — no spread, so only the rank test applies: {p['seeds']} seeds a side if every "
            f"seed keeps its side ({level})"
        )
    power = f"{POWER * 100:.0f} % power, {level}"
    if p["need"] == "equivalence":
        seeds = (
            f"≈ {p['seeds']:,} seeds a side"
            if p["seeds"] is not None
            else f"more than {MAX_PLANNED_SEEDS:,} seeds a side"
        )
        return (
            " — the effect is inside the margin: more seeds would show equivalence, not a "
            f"difference ({seeds}, {power})"
        )
    if p["seeds"] is None:
        return (
            f" — more than {MAX_PLANNED_SEEDS:,} seeds a side would be needed at this effect "
            "and spread"
        )
    return f" — ≈ {p['seeds']:,} seeds a side would show a difference ({power})"
