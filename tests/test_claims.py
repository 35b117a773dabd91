"""Claims: the exact Mann-Whitney test, pairing of variants, verdicts and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import PermutationMethod, mannwhitneyu
from typer.testing import CliRunner

from normbench.analysis.claims import describe_claim, evaluate_claim
from normbench.analysis.stats import mann_whitney_greater
from normbench.cli import app


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([3, 4, 5], [1, 2, 0]),
        ([1, 2, 3], [2, 3, 4]),
        ([1, 1, 2, 5, 7], [1, 3, 3, 4, 0]),
        ([0.9, 0.91], [0.5, 0.6]),
    ],
)
def test_exact_mann_whitney_matches_scipy(a: list[float], b: list[float]) -> None:
    tied = len(set(a + b)) != len(a + b)
    method = PermutationMethod(n_resamples=100_000) if tied else "exact"
    expected = mannwhitneyu(a, b, alternative="greater", method=method).pvalue
    assert mann_whitney_greater(a, b) == pytest.approx(expected, rel=1e-6)


def variant(name: str, params: dict, values: list) -> dict:
    return {
        "variant_name": name,
        "params": params,
        "metrics": {"final_test_acc": {"values": values}, "steps_to_target": {"values": values}},
    }


def test_pairs_and_verdicts() -> None:
    variants = [
        variant("a", {"norm": "batch", "lr_mult": 1}, [0.9, 0.91, 0.92]),
        variant("b", {"norm": "none", "lr_mult": 1}, [0.5, 0.52, 0.51]),
        variant("c", {"norm": "batch", "lr_mult": 5}, [0.5, 0.52, 0.51]),
        variant("d", {"norm": "none", "lr_mult": 5}, [0.9, 0.91, 0.92]),
    ]
    claim = {
        "text": "BN is better",
        "metric": "final_test_acc",
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
    }
    result = evaluate_claim(claim, variants)
    assert [p["verdict"] for p in result["pairs"]] == ["better", "worse"]
    assert result["verdict"] == "mixed (1 better, 1 worse)"
    first = result["pairs"][0]
    assert first["effect"] == pytest.approx(0.4) and first["ci_low"] < 0.4 < first["ci_high"]
    only = evaluate_claim({**claim, "where": {"lr_mult": 1}}, variants)
    assert only["verdict"] == "better" and len(only["pairs"]) == 1


def test_unreached_target_ranks_worst() -> None:
    variants = [
        variant("a", {"norm": "batch"}, [100, 200, 100]),
        variant("b", {"norm": "none"}, [None, None, None]),
    ]
    claim = {
        "text": "",
        "metric": "steps_to_target",
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
    }
    variants[1]["curves"] = {"step": [0, 500, 1000]}  # censored at the run's span
    result = evaluate_claim(claim, variants)
    pair = result["pairs"][0]
    assert pair["mean_than"] is None and pair["reached_than"] == 0 and pair["n_than"] == 3
    assert pair["kind"] == "ratio" and pair["ci_high"] < 1  # fewer steps, as a ratio
    assert result["verdict"] == "better"


def test_claim_validation(tmp_path: Path) -> None:
    text = """\
name: c
dataset: {name: synthetic-blobs}
model: {kind: mlp, hidden: [8]}
training: {steps: 10, eval_every: 5}
grid: {norm: [none, batch]}
claims:
  - text: BN helps
    metric: final_test_acc
    better: {norm: batch}
    than: {nrom: none}
"""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        ":10:" in result.stderr
        and "claims[0].than.nrom" in result.stderr
        and "did you mean 'norm'" in result.stderr
    )
    path.write_text(text.replace("nrom", "norm").replace("final_test_acc", "final_tset_acc"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "claims[0].metric" in result.stderr


def test_tune_compares_each_side_at_its_own_best_value() -> None:
    variants = [  # batch is best at lr 0.1, none at lr 0.01: each side is judged at its best
        variant("bn-lo", {"norm": "batch", "lr": 0.01}, [0.80, 0.81, 0.82]),
        variant("bn-hi", {"norm": "batch", "lr": 0.1}, [0.90, 0.91, 0.92]),
        variant("no-lo", {"norm": "none", "lr": 0.01}, [0.895, 0.905, 0.915]),
        variant("no-hi", {"norm": "none", "lr": 0.1}, [0.20, 0.30, 0.25]),
    ]
    claim = {
        "text": "BN's best equals no norm's best",
        "metric": "final_test_acc",
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
        "margin": 0.05,
    }
    plain = evaluate_claim(claim, variants)
    assert plain["verdict"].startswith("mixed")  # paired at each lr: no common answer
    result = evaluate_claim({**claim, "tune": ["lr"]}, variants)
    (pair,) = result["pairs"]
    assert (pair["better"], pair["than"]) == ("bn-hi", "no-lo")
    assert pair["tuned_better"] == {"lr": 0.1} and pair["tuned_than"] == {"lr": 0.01}
    assert pair["effect"] == pytest.approx(0.005) and result["verdict"] == "equivalent"
    described = describe_claim(result)
    assert "at lr=0.1 vs " in described and " at lr=0.01: +0.005" in described
    # Time to a target: an unreached target counts as the whole run, so a side that never
    # reached it at one lr is tuned to the lr where it did.
    steps = [
        variant("s-lo", {"norm": "none", "lr": 0.01}, [None, None, None]),
        variant("s-hi", {"norm": "none", "lr": 0.1}, [400, 500, 450]),
        variant("b-hi", {"norm": "batch", "lr": 0.1}, [100, 150, 120]),
    ]
    steps[0]["curves"] = {"step": [0, 1000]}
    timed = evaluate_claim({**claim, "metric": "steps_to_target", "tune": ["lr"]}, steps)
    assert [(p["better"], p["than"]) for p in timed["pairs"]] == [("b-hi", "s-hi")]


def test_tune_validation(tmp_path: Path) -> None:
    text = """\
name: c
dataset: {name: synthetic-blobs}
model: {kind: mlp, hidden: [8]}
training: {steps: 10, eval_every: 5}
grid: {norm: [none, batch], training.lr: [0.1, 0.01]}
claims:
  - text: BN helps
    metric: final_test_acc
    better: {norm: batch}
    than: {norm: none}
    tune: [lr]
"""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "claims[0].tune[0]" in result.stderr
    assert "unknown grid key 'lr'" in result.stderr
    path.write_text(text.replace("tune: [lr]", "tune: [norm]"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "'norm' is tuned, so it cannot also be fixed" in result.stderr
    path.write_text(text.replace("tune: [lr]", "tune: [training.lr]"))
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


def test_published_value_claims() -> None:
    variants = [
        {
            "variant_name": "cnn",
            "params": {"model": "cnn"},
            "metrics": {"final_test_acc": {"mean": 0.93, "ci_low": 0.92, "ci_high": 0.94}},
        },
        {
            "variant_name": "mlp",
            "params": {"model": "mlp"},
            "metrics": {"final_test_acc": {"mean": 0.60, "ci_low": 0.58, "ci_high": 0.62}},
        },
    ]
    claim = {
        "text": "CNN 94 %",
        "metric": "final_test_acc",
        "published": 0.94,
        "tolerance": 0.02,
        "where": {"model": "cnn"},
    }
    for v, values in zip(
        variants, ([0.935, 0.94, 0.945, 0.94], [0.60, 0.61, 0.59, 0.60]), strict=True
    ):
        v["metrics"]["final_test_acc"]["values"] = values
    assert evaluate_claim(claim, variants)["verdict"] == "equivalent"
    low = evaluate_claim({**claim, "where": {"model": "mlp"}}, variants)
    assert low["verdict"] == "below" and low["rows"][0]["ci_high"] < -0.02


def test_diagnostic_metric_directions_known_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from normbench.metrics import METRICS; "
        "assert METRICS['act_p50_drift'].higher_is_better is False; "
        "assert METRICS['ics_cos_mean'].higher_is_better is True; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_equivalence_exact_and_too_few_seeds() -> None:
    claim = {
        "text": "",
        "metric": "final_test_acc",
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
    }
    same = [
        variant("a", {"norm": "batch"}, [0.900, 0.902, 0.898, 0.901]),
        variant("b", {"norm": "none"}, [0.901, 0.899, 0.900, 0.902]),
    ]
    assert evaluate_claim(claim, same)["verdict"] == "equivalent"  # inside ±1 point (default)
    tight = evaluate_claim({**claim, "margin": 0.0001}, same)
    assert tight["verdict"] == "undecided" and tight["pairs"][0]["margin"] == "±0.0001"
    exact = [
        variant("a", {"norm": "batch"}, [0.9, 0.9, 0.9]),
        variant("b", {"norm": "none"}, [0.9, 0.9, 0.9]),
    ]
    pair = evaluate_claim(claim, exact)["pairs"][0]
    assert pair["exact"] and pair["p_dir"] is None and pair["verdict"] == "equivalent"
    # Exact but different: no variance, so only the rank test (3 vs 3: two-sided p = 0.1).
    apart = [variant("a", {"norm": "batch"}, [0.95] * 3), variant("b", {"norm": "none"}, [0.5] * 3)]
    pair = evaluate_claim(claim, apart)["pairs"][0]
    assert pair["exact"] and pair["p_dir"] == pytest.approx(0.1) and pair["verdict"] == "undecided"
    one = [variant("a", {"norm": "batch"}, [0.95]), variant("b", {"norm": "none"}, [0.5])]
    assert evaluate_claim(claim, one)["pairs"][0]["verdict"] == "undecided"


def test_holm_over_the_suite_claims() -> None:
    """A p that decides one claim alone is not enough when the suite tests several."""
    from normbench.analysis.claims import evaluate_claims

    variants = [
        variant("a", {"norm": "batch"}, [0.53, 0.52, 0.545, 0.53]),
        variant("b", {"norm": "none"}, [0.51, 0.52, 0.515, 0.50]),
    ]
    claim = {
        "text": "",
        "metric": "final_test_acc",
        "better": {"norm": "batch"},
        "than": {"norm": "none"},
        "margin": 0.0,
    }
    alone = evaluate_claim(claim, variants)["pairs"][0]
    assert 0.01 < alone["p_dir"] < 0.05 and alone["verdict"] == "better"
    family = evaluate_claims([claim] * 4, variants)
    assert all(r["verdict"] == "undecided" for r in family)
    assert family[0]["pairs"][0]["p_dir_adj"] == pytest.approx(min(1, 4 * alone["p_dir"]))


def test_welch_interval_matches_scipy() -> None:
    from scipy import stats

    from normbench.analysis.verdicts import contrast

    a, b = [0.91, 0.93, 0.92, 0.95], [0.85, 0.88, 0.84]
    c = contrast(a, b, higher=True, log=False, margin={"kind": "abs", "value": 0.01})
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c["p_dir"] == pytest.approx(ref.pvalue, rel=1e-6)
    lo, hi = ref.confidence_interval(0.95)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((lo, hi), rel=1e-6)


def test_alpha_spending_adds_up() -> None:
    from normbench.analysis.stats import alpha_per_look, spending

    looks = alpha_per_look([3, 5, 8, 10], 0.05)
    assert sum(looks) == pytest.approx(0.05)
    assert looks[0] < 0.001  # O'Brien-Fleming spends almost nothing at the first look
    assert spending(1.0, 0.05, "pocock") == pytest.approx(0.05)


def test_margin_validation(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("""\
name: m
dataset: {name: synthetic-blobs}
model: {kind: mlp, hidden: [8]}
training: {steps: 10, eval_every: 5}
grid: {norm: [none, batch]}
claims:
  - {text: t, metric: final_test_acc, better: {norm: batch}, than: {norm: none}, margin: 5 points}
""")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "claims[0].margin" in result.stderr and "5%" in result.stderr


def test_answer_profile_and_report_order(tmp_path: Path) -> None:
    """On a committed curated run: the answer, the performance profile, and the report order."""
    import shutil

    from normbench.analysis.aggregate import summarize_run
    from normbench.analysis.answer import answer
    from normbench.report.api import build_report

    run = tmp_path / "lr"
    shutil.copytree(Path(__file__).resolve().parent.parent / "reports" / "lr-multipliers", run)
    summary = summarize_run(run)
    prof = summary["analysis"]["profile"]
    assert len(prof["settings"]) == 6 and prof["taus"][0] == 1 and prof["taus"][-1] == 4
    batch, none = prof["profile"]["batch"], prof["profile"]["none"]
    assert all(b >= n for b, n in zip(batch, none, strict=True)) and batch == sorted(batch)
    lines = answer(summary)
    assert lines[0].startswith("Best final_test_acc: norm=batch") and "95 % CI" in lines[0]
    assert any(s.startswith("batch vs no norm on final_test_acc over 6 settings") for s in lines)
    assert any("Step time relative to no norm" in s for s in lines)
    summary, written = build_report(run, plots=True)
    md = (run / "report.md").read_text()
    assert md.index("## Answer") < md.index("## Claims checked") < md.index("## Overview")
    html = (run / "report.html").read_text()
    assert html.index('id="answer"') < html.index('id="claims"') < html.index("Environment")
    assert "Per setting: mean steps_to_target" in md
    assert {p.name for p in written} >= {"performance_profile.png", "cost_benefit.png"}
