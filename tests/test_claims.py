"""Claims: the exact Mann-Whitney test, pairing of variants, verdicts and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import PermutationMethod, mannwhitneyu
from typer.testing import CliRunner

from normbench.analysis.claims import evaluate_claim, mann_whitney_greater
from normbench.cli import app


@pytest.mark.parametrize(("a", "b"), [([3, 4, 5], [1, 2, 0]), ([1, 2, 3], [2, 3, 4]), ([1, 1, 2, 5, 7], [1, 3, 3, 4, 0]),
                                      ([0.9, 0.91], [0.5, 0.6])])
def test_exact_mann_whitney_matches_scipy(a: list[float], b: list[float]) -> None:
    tied = len(set(a + b)) != len(a + b)
    method = PermutationMethod(n_resamples=100_000) if tied else "exact"
    expected = mannwhitneyu(a, b, alternative="greater", method=method).pvalue
    assert mann_whitney_greater(a, b) == pytest.approx(expected, rel=1e-6)


def variant(name: str, params: dict, values: list) -> dict:
    return {"variant_name": name, "params": params, "metrics": {"final_test_acc": {"values": values},
                                                                "steps_to_target": {"values": values}}}


def test_pairs_and_verdicts() -> None:
    variants = [
        variant("a", {"norm": "batch", "lr_mult": 1}, [0.9, 0.91, 0.92]),
        variant("b", {"norm": "none", "lr_mult": 1}, [0.5, 0.52, 0.51]),
        variant("c", {"norm": "batch", "lr_mult": 5}, [0.5, 0.52, 0.51]),
        variant("d", {"norm": "none", "lr_mult": 5}, [0.9, 0.91, 0.92]),
    ]
    claim = {"text": "BN is better", "metric": "final_test_acc", "better": {"norm": "batch"}, "than": {"norm": "none"}}
    result = evaluate_claim(claim, variants)
    assert [p["verdict"] for p in result["pairs"]] == ["agrees", "disagrees"]
    assert result["verdict"] == "partly agrees"
    only = evaluate_claim({**claim, "where": {"lr_mult": 1}}, variants)
    assert only["verdict"] == "agrees" and len(only["pairs"]) == 1


def test_unreached_target_ranks_worst() -> None:
    variants = [variant("a", {"norm": "batch"}, [100, 200, 100]), variant("b", {"norm": "none"}, [None, None, None])]
    claim = {"text": "", "metric": "steps_to_target", "better": {"norm": "batch"}, "than": {"norm": "none"}}
    result = evaluate_claim(claim, variants)
    assert result["verdict"] == "agrees"
    assert result["pairs"][0]["mean_than"] is None and result["pairs"][0]["reached_than"] == 0


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
    assert ":10:" in result.stderr and "claims[0].than.nrom" in result.stderr and "did you mean 'norm'" in result.stderr
    path.write_text(text.replace("nrom", "norm").replace("final_test_acc", "final_tset_acc"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "claims[0].metric" in result.stderr


def test_published_value_claims() -> None:
    variants = [{"variant_name": "cnn", "params": {"model": "cnn"},
                 "metrics": {"final_test_acc": {"mean": 0.93, "ci_low": 0.92, "ci_high": 0.94}}},
                {"variant_name": "mlp", "params": {"model": "mlp"},
                 "metrics": {"final_test_acc": {"mean": 0.60, "ci_low": 0.58, "ci_high": 0.62}}}]
    claim = {"text": "CNN 94 %", "metric": "final_test_acc", "published": 0.94, "tolerance": 0.02,
             "where": {"model": "cnn"}}
    assert evaluate_claim(claim, variants)["verdict"] == "agrees"
    low = evaluate_claim({**claim, "where": {"model": "mlp"}}, variants)
    assert low["verdict"] == "disagrees" and low["rows"][0]["verdict"] == "below"


def test_diagnostic_metric_directions_known_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from normbench.analysis.metrics import METRICS; "
            "assert METRICS['act_p50_drift'].higher_is_better is False; "
            "assert METRICS['ics_cos_mean'].higher_is_better is True; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
