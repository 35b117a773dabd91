"""What it would take: power of the verdicts' tests and the seeds that would decide them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from normbench.analysis.claims import describe_claim, evaluate_claim, evaluate_claims
from normbench.analysis.stats import rank_test_seeds, t_test_power, tost_power

ACC = "final_test_acc"


def variant(name: str, params: dict, values: list[float]) -> dict:
    return {"variant_name": name, "params": params, "metrics": {ACC: {"values": values}}}


def spread(mean: float, sd: float, n: int = 3) -> list[float]:
    """``n`` values with exactly this mean and sample standard deviation."""
    z = np.linspace(-1.0, 1.0, n)
    return list(mean + sd * z / z.std(ddof=1))


def claim(**extra) -> dict:
    return {
        "text": "BN",
        "metric": ACC,
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
        **extra,
    }


def scipy_t_power(d: float, se: float, df: float, level: float, shift: float = 0.0) -> float:
    tc = stats.t.ppf(1 - level / 2, df)
    return 1 - stats.nct.cdf(tc, df, (d - shift) / se) + stats.nct.cdf(-tc, df, (d + shift) / se)


def scipy_tost_power(d: float, delta: float, se: float, df: float, level: float) -> float:
    """P(−δ + t·S < D < δ − t·S) by integrating over S's scaled χ² directly."""
    tc = stats.t.ppf(1 - level, df)

    def inside(v: float) -> float:
        s = se * math.sqrt(v / df)
        room = delta - tc * s
        if room <= 0:
            return 0.0
        return stats.chi2.pdf(v, df) * (
            stats.norm.cdf((room - d) / se) - stats.norm.cdf((-room - d) / se)
        )

    upper = (delta / (tc * se)) ** 2 * df  # beyond it the band is empty
    return integrate.quad(inside, 0, upper, limit=200)[0]


@pytest.mark.parametrize("df", [1.0, 2.7, 8.0, 37.5, 900.0])
@pytest.mark.parametrize("lam", [0.3, 2.0, 5.0])
@pytest.mark.parametrize("level", [0.05, 0.0043])
def test_t_test_power_is_scipys_noncentral_t(df, lam, level):
    assert t_test_power(lam * 0.2, 0.2, df, level) == pytest.approx(
        scipy_t_power(lam * 0.2, 0.2, df, level), abs=1e-6
    )


@pytest.mark.parametrize(("d", "shift", "df"), [(0.05, 0.02, 4.0), (-0.09, 0.03, 12.0)])
def test_band_power_is_scipys_noncentral_t(d, shift, df):
    assert t_test_power(d, 0.01, df, 0.01, shift=shift) == pytest.approx(
        scipy_t_power(d, 0.01, df, 0.01, shift), abs=1e-6
    )


@pytest.mark.parametrize(
    ("d", "se", "df"), [(0.0, 0.003, 10.0), (0.004, 0.002, 25.3), (0.0, 0.02, 3)]
)
def test_tost_power_is_a_direct_integration(d, se, df):
    assert tost_power(d, 0.01, se, df, 0.025) == pytest.approx(
        scipy_tost_power(d, 0.01, se, df, 0.025),
        abs=1e-5,  # the band's edge is a kink
    )


def _fewest(power_at) -> int:
    n = 2
    while power_at(n) < 0.8:
        n += 1
    return n


def test_seeds_to_show_a_difference_are_the_fewest_with_80_percent_power():
    # 3 seeds a side, 2 points apart with a 2-point spread: Welch cannot tell yet.
    variants = [
        variant("bn", {"norm": "batch"}, spread(0.86, 0.02)),
        variant("plain", {"norm": "none"}, spread(0.84, 0.02)),
    ]
    result = evaluate_claim(claim(), variants)
    pair = result["pairs"][0]
    assert pair["verdict"] == "undecided"
    plan = pair["to_decide"]
    assert plan["need"] == "difference" and plan["level"] == pytest.approx(0.05)

    def scipy_power(n: int) -> float:  # equal spreads: Welch's df is 2(n − 1)
        return scipy_t_power(0.02, 0.02 * math.sqrt(2 / n), 2 * (n - 1), 0.05)

    assert plan["seeds"] == _fewest(scipy_power) == 17
    assert "≈ 17 seeds a side would show a difference (80 % power, α′ = 0.05)" in describe_claim(
        result
    )


def test_the_planned_seeds_give_80_percent_power_in_simulation():
    """Welch's test itself, run on simulated seeds: the planned n rejects at least 80 % of the
    time and n − 1 less (the df approximation of unequal spreads included)."""
    variants = [
        variant("bn", {"norm": "batch"}, spread(0.80, 0.03, 4)),
        variant("plain", {"norm": "none"}, spread(0.77, 0.01, 4)),
    ]
    n = evaluate_claim(claim(), variants)["pairs"][0]["to_decide"]["seeds"]
    rng = np.random.default_rng(0)

    def rejects(k: int) -> float:
        a = rng.normal(0.80, 0.03, (20_000, k))
        b = rng.normal(0.77, 0.01, (20_000, k))
        return float((stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue <= 0.05).mean())

    assert rejects(n) > 0.79 and rejects(n - 1) < 0.81  # ± 3 sd of 20,000 draws


def test_an_effect_inside_the_margin_asks_for_equivalence_not_a_difference():
    variants = [
        variant("bn", {"norm": "batch"}, spread(0.852, 0.01)),
        variant("plain", {"norm": "none"}, spread(0.850, 0.01)),
    ]
    result = evaluate_claim(claim(), variants)
    plan = result["pairs"][0]["to_decide"]
    assert plan["need"] == "equivalence"

    def scipy_power(n: int) -> float:
        return scipy_tost_power(0.002, 0.01, 0.01 * math.sqrt(2 / n), 2 * (n - 1), 0.05)

    n = plan["seeds"]  # the fewest: enough power with n seeds, not with n − 1
    assert scipy_power(n) >= 0.8 > scipy_power(n - 1) and n > 3
    assert "inside the margin: more seeds would show equivalence, not a difference" in (
        describe_claim(result)
    )


def test_published_value_plans_the_one_sample_test():
    variants = [variant("bn", {"norm": "batch"}, spread(0.93, 0.02))]
    result = evaluate_claim({"metric": ACC, "published": 0.9, "tolerance": 0.01}, variants)
    row = result["rows"][0]
    assert row["verdict"] == "undecided" and row["to_decide"]["need"] == "difference"

    def scipy_power(n: int) -> float:
        return scipy_t_power(0.03, 0.02 / math.sqrt(n), n - 1, 0.05, shift=0.01)

    assert row["to_decide"]["seeds"] == _fewest(scipy_power)


def test_no_spread_plans_the_rank_test_and_one_seed_asks_for_two():
    assert [rank_test_seeds(a) for a in (0.1, 0.05, 0.01, 0.001)] == [3, 4, 5, 7]
    steps = {"metric": "steps_to_target"}
    variants = [
        {
            "variant_name": "bn",
            "params": {"norm": "batch"},
            "metrics": {"steps_to_target": {"values": [500, 500, 500]}},
        },
        {
            "variant_name": "plain",
            "params": {"norm": "none"},
            "metrics": {"steps_to_target": {"values": [1500, 1500, 1500]}},
        },
    ]
    result = evaluate_claim(claim(**steps), variants)
    assert result["verdict"] == "undecided"  # 3 vs 3 perfectly separated: p = 0.1
    assert result["pairs"][0]["to_decide"] == {"need": "rank", "seeds": 4, "level": 0.05}
    assert "only the rank test applies: 4 seeds a side" in describe_claim(result)
    lone = [variant("bn", {"norm": "batch"}, [0.9]), variant("plain", {"norm": "none"}, [0.8])]
    assert "needs ≥ 2 seeds a side" in describe_claim(evaluate_claim(claim(), lone))


def test_decided_tests_have_no_plan_and_the_level_is_holms_next():
    variants = [
        variant("bn", {"norm": "batch", "lr": 1}, spread(0.95, 0.001)),
        variant("plain", {"norm": "none", "lr": 1}, spread(0.50, 0.001)),
        variant("bn", {"norm": "batch", "lr": 2}, spread(0.86, 0.02)),
        variant("plain", {"norm": "none", "lr": 2}, spread(0.84, 0.02)),
        variant("bn", {"norm": "batch", "lr": 3}, spread(0.87, 0.02)),
        variant("plain", {"norm": "none", "lr": 3}, spread(0.84, 0.03)),
    ]
    pairs = evaluate_claims([claim()], variants)[0]["pairs"]
    assert [p["verdict"] for p in pairs] == ["better", "undecided", "undecided"]
    assert "to_decide" not in pairs[0]
    # Three tests, one rejected: the next would be tested at 0.05 / 2.
    assert [p["to_decide"]["level"] for p in pairs[1:]] == pytest.approx([0.025, 0.025])
