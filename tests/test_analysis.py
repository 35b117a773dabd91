"""Seed statistics, convergence metrics, reference matching, lr robustness, pivots and the store."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from normbench.analysis.aggregate import RunData, label, load_run, summarize
from normbench.analysis.convergence import (
    area_under,
    derived_metrics,
    first_reach,
    reach,
    seed_metrics,
)
from normbench.analysis.pivot import pivot
from normbench.analysis.query import family_keys, resolve_metric
from normbench.analysis.relative import (
    lr_robustness,
    match_reference,
    parse_reference,
    relative_rows,
    split_pairs,
)
from normbench.analysis.stats import band, bootstrap_ci, describe
from normbench.errors import InputError
from normbench.report.synthetic import make_run
from normbench.report.tables import fmt_stats, pivot_table, render, summary_table
from normbench.results.store import (
    CORE_METRICS,
    RunDir,
    atomic_write_json,
    create_run_dir,
    latest_run_dir,
    open_run_dir,
)


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("an") / "run",
        steps=1000,
        eval_every=100,
        fail=[("norm=batch,placement=post,lr_mult=1", 2)],
        diagnostics=(),
    )


@pytest.fixture(scope="module")
def summary(run_path: Path) -> dict:
    return summarize(load_run(run_path))


def variant(summary: dict, name: str) -> dict:
    return next(v for v in summary["variants"] if v["variant_name"] == name)


# --- statistics -----------------------------------------------------------------------------


def test_describe_matches_numpy_and_keeps_every_seed() -> None:
    d = describe([0.9, None, 0.8, float("nan"), 0.7])
    assert d["n"] == 3 and d["values"] == [0.9, None, 0.8, None, 0.7]
    assert d["mean"] == pytest.approx(0.8) and d["median"] == pytest.approx(0.8)
    assert d["std"] == pytest.approx(np.std([0.9, 0.8, 0.7], ddof=1))
    assert (d["min"], d["max"]) == (0.7, 0.9)
    assert d["min"] <= d["ci_low"] <= d["mean"] <= d["ci_high"] <= d["max"]


def test_describe_edge_cases() -> None:
    empty = describe([None, None])
    assert empty["mean"] is None and empty["n"] == 0 and empty["values"] == [None, None]
    one = describe([3.0])
    assert one["std"] is None and one["ci_low"] == one["ci_high"] == 3.0


def test_bootstrap_is_seeded_and_order_independent() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    first = bootstrap_ci(x)
    bootstrap_ci(np.array([5.0, 1.0, 0.0]))  # another interval in between changes nothing
    assert bootstrap_ci(x) == first
    lo, hi = first
    assert lo < x.mean() < hi


def test_band_ignores_missing_points() -> None:
    m = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 4.0, np.nan]])
    b = band(m)
    assert b["mean"][:2] == [3.0, 3.0] and b["mean"][2] is None
    assert b["n"] == [3, 2, 0]
    assert b["ci_low"][0] <= 3.0 <= b["ci_high"][0]
    assert b["ci_low"][2] is None


# --- convergence ----------------------------------------------------------------------------


def test_first_reach_directions() -> None:
    steps = [0, 100, 200, 300]
    assert first_reach(steps, [0.1, 0.5, 0.92, 0.95], 0.9, higher=True) == 2
    assert first_reach(steps, [2.0, 1.0, 0.4, 0.2], 0.3, higher=False) == 3
    assert first_reach(steps, [0.1, 0.2, None, 0.3], 0.9, higher=True) is None


def test_reach_recomputes_from_curves_or_trusts_the_record() -> None:
    rec = {
        "curves": {
            "step": [0, 100, 200],
            "test_acc": [0.1, 0.95, 0.97],
            "train_seconds": [0.0, 1.5, 3.0],
        }
    }
    assert reach(rec, "test_acc", 0.9) == (100, 1.5)
    assert reach(rec, "test_acc", 0.99) == (None, None)  # not reached is None, never a number
    rec["targets"] = {"test_acc": {"threshold": 0.9, "step": 200, "seconds": 3.0}}
    assert reach(rec, "test_acc", 0.9) == (200, 3.0)


def test_area_under_is_step_averaged() -> None:
    assert area_under([0, 100, 200], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert area_under([0, 100, 300], [2.0, 1.0, 1.0]) == pytest.approx((150 + 200) / 300)
    assert area_under([0, 100], [1.0, None]) is None
    assert area_under([0], [1.0]) is None


def test_derived_metrics_skip_incomplete_curves() -> None:
    curves = {"step": [0, 100], "test_loss": [2.0, 1.0], "train_loss": [2.0, 0.5]}
    ok = derived_metrics({"status": "ok", "curves": curves}, {"test_loss": 1.5})
    assert ok["auc_test_loss"] == pytest.approx(1.5) and ok["best_test_loss"] == 1.0
    assert ok["steps_to_target.test_loss"] == 100 and ok["steps_to_target"] == 100
    diverged = derived_metrics({"status": "diverged", "curves": curves}, {})
    assert diverged["auc_test_loss"] is None and diverged["best_test_loss"] is None


def test_seed_metrics_keep_recorded_values() -> None:
    rec = {
        "status": "ok",
        "metrics": {"steps_to_target": 900, "final_test_loss": float("inf")},
        "curves": {"step": [0, 100], "test_acc": [0.1, 0.95]},
    }
    m = seed_metrics(rec, {"test_acc": 0.9})
    assert m["steps_to_target"] == 900  # the training loop's value wins
    assert m["steps_to_target.test_acc"] == 100
    assert m["final_test_loss"] is None  # non-finite is "no value"


# --- summary --------------------------------------------------------------------------------


def test_summary_schema(summary: dict) -> None:
    json.dumps(summary, allow_nan=False)  # strict JSON: NaN/inf never leak into summary.json
    assert summary["schema_version"] == 1
    assert summary["swept"] == ["norm", "placement", "lr_mult"]
    assert summary["suite"]["targets"] == {"test_acc": 0.9, "test_loss": 0.2}
    assert summary["manifest"]["environment"]["threads"] == 2
    v = variant(summary, "norm=batch,placement=post,lr_mult=1")
    assert v["seeds"] == [0, 1, 2] and v["counts"] == {
        "ok": 2,
        "diverged": 0,
        "failed": 1,
        "missing": 0,
    }
    acc = v["metrics"]["final_test_acc"]
    assert set(acc) == {"mean", "std", "median", "min", "max", "ci_low", "ci_high", "n", "values"}
    assert acc["n"] == 2 and acc["values"][2] is None and len(acc["values"]) == 3
    assert v["errors"] == {"2": "RuntimeError: CUDA out of memory"}
    for name in ("auc_test_loss", "auc_train_loss", "best_test_loss", "steps_to_target.test_loss"):
        assert name in v["metrics"]
    curves = v["curves"]
    assert curves["step"][0] == 0 and len(curves["test_acc"]["mean"]) == len(curves["step"])
    assert set(curves["test_acc"]) == {"mean", "ci_low", "ci_high", "n"}


def test_summary_counts_add_up(summary: dict) -> None:
    total = sum(summary["counts"][k] for k in ("ok", "diverged", "failed"))
    assert total == len(summary["variants"]) * 3
    assert summary["counts"]["diverged"] > 0  # lr_mult=30 breaks the unnormalised net


def test_summary_tolerates_minimal_records(tmp_path: Path) -> None:
    # Only the required keys: no params, curves, config, resolved.json or targets.
    records = [
        {"variant_id": "a", "seed": s, "status": "ok", "metrics": {"final_test_acc": 0.5 + s / 10}}
        for s in range(3)
    ] + [{"variant_id": "b", "seed": 0, "status": "failed"}]
    s = summarize(RunData(tmp_path, {}, None, records))
    assert [v["variant_id"] for v in s["variants"]] == ["a", "b"]
    assert (
        s["swept"] == []
        and s["analysis"]["relative"] == []
        and s["analysis"]["lr_robustness"] == []
    )
    assert s["variants"][0]["metrics"]["final_test_acc"]["mean"] == pytest.approx(0.6)
    assert s["variants"][1]["metrics"]["final_test_acc"]["values"] == [None]
    assert "not reached" not in render(summary_table(s), "markdown")


def test_label_matches_variant_names() -> None:
    assert label(5.0) == "5" and label(0.3) == "0.3" and label(True) == "true"
    assert label({"kind": "group", "groups": 8}) == "group[groups=8]"


# --- reference matching and lr robustness ---------------------------------------------------


def test_parse_reference(summary: dict) -> None:
    assert parse_reference("norm=none", summary) == {"norm": "none"}
    assert parse_reference("norm=none, lr_mult=5.0", summary) == {"norm": "none", "lr_mult": "5"}
    assert split_pairs("norm=group[groups=8,eps=0.1],lr_mult=5") == [
        "norm=group[groups=8,eps=0.1]",
        "lr_mult=5",
    ]
    with pytest.raises(InputError, match="was not swept"):
        parse_reference("nrom=none", summary)
    with pytest.raises(InputError, match="no variant has norm=nothing"):
        parse_reference("norm=nothing", summary)
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_reference("norm", summary)
    with pytest.raises(InputError, match="no variant matches"):
        parse_reference("norm=none,placement=post", summary)  # excluded from the grid


def test_match_reference_holds_other_keys_and_relaxes_missing_ones(summary: dict) -> None:
    refs = [v for v in summary["variants"] if v["labels"]["norm"] == "none"]
    keys = ["placement", "lr_mult"]
    ref, relaxed = match_reference(
        variant(summary, "norm=batch,placement=pre,lr_mult=5"), refs, keys
    )
    assert ref["variant_name"] == "norm=none,placement=pre,lr_mult=5" and relaxed == []
    # norm=none,placement=post was excluded: placement is relaxed, lr_mult still held equal.
    ref, relaxed = match_reference(
        variant(summary, "norm=layer,placement=post,lr_mult=30"), refs, keys
    )
    assert ref["variant_name"] == "norm=none,placement=pre,lr_mult=30" and relaxed == ["placement"]


def test_relative_rows_speedup(summary: dict) -> None:
    rows = {r["variant_name"]: r for r in relative_rows(summary, {"norm": "none"})}
    assert not any(name.startswith("norm=none") for name in rows)
    r = rows["norm=batch,placement=pre,lr_mult=1"]
    s = r["speedup"]["steps_to_target"]
    ref_mean = variant(summary, r["reference_name"])["metrics"]["steps_to_target"]["mean"]
    if ref_mean is None:  # the unnormalised net never got there: only a lower bound is honest
        assert s["speedup"] is None and s["speedup_lower_bound"] == pytest.approx(1000 / s["value"])
    else:
        assert s["speedup"] == pytest.approx(ref_mean / s["value"])
    ratio = r["ratio"]["final_test_acc"]
    assert ratio["ratio"] == pytest.approx(ratio["value"] / ratio["reference"])


def test_lr_robustness(summary: dict) -> None:
    rows = {r["name"]: r for r in lr_robustness(summary)}
    assert set(rows) == {
        "norm=none,placement=pre",
        "norm=batch,placement=pre",
        "norm=batch,placement=post",
        "norm=layer,placement=pre",
        "norm=layer,placement=post",
    }
    batch = rows["norm=batch,placement=pre"]
    assert batch["lr_values"] == ["1", "5", "30"] and "30" in batch["converged"]
    assert "30" not in rows["norm=none,placement=pre"]["converged"]  # diverges at lr_mult 30
    best = batch["best"]
    means = {
        lr: variant(summary, f"norm=batch,placement=pre,lr_mult={lr}")["metrics"]["final_test_acc"][
            "mean"
        ]
        for lr in batch["converged"]
    }
    assert best["mean"] == max(means.values()) and best["converged"]


def test_no_lr_sweep_no_robustness_table(tmp_path: Path) -> None:
    s = summarize(load_run(make_run(tmp_path / "r", lr_mults=(1,), steps=300, diagnostics=())))
    assert lr_robustness(s) == []
    assert family_keys(s) == ("norm", "placement")


# --- pivot and rendering --------------------------------------------------------------------


def test_pivot_best_over_nuisance_keys(summary: dict) -> None:
    pv = pivot(summary, ["norm", "placement"], "final_test_acc")
    assert (
        pv["row_keys"] == ["norm"]
        and pv["columns"] == ["pre", "post"]
        and pv["tuned_over"] == ["lr_mult"]
    )
    rows = {r["key"]["norm"]: r["cells"] for r in pv["rows"]}
    assert rows["none"]["post"] is None  # excluded from the grid
    cell = rows["batch"]["pre"]
    candidates = [
        variant(summary, f"norm=batch,placement=pre,lr_mult={lr}") for lr in ("1", "5", "30")
    ]
    assert cell["mean"] == max(v["metrics"]["final_test_acc"]["mean"] for v in candidates)
    assert cell["candidates"] == 3
    low = pivot(summary, ["norm"], "final_test_loss")["rows"]
    assert low[0]["cells"]["final_test_loss"]["mean"] == min(
        v["metrics"]["final_test_loss"]["mean"]
        for v in summary["variants"]
        if v["labels"]["norm"] == "none" and v["metrics"]["final_test_loss"]["mean"] is not None
    )


def test_pivot_errors(summary: dict) -> None:
    with pytest.raises(InputError, match="'activation' was not swept"):
        pivot(summary, ["norm", "activation"], "final_test_acc")
    with pytest.raises(
        InputError, match="unknown metric 'final_tst_acc' — did you mean 'final_test_acc'"
    ):
        pivot(summary, ["norm"], "final_tst_acc")
    with pytest.raises(InputError, match="twice"):
        pivot(summary, ["norm", "norm"], "final_test_acc")


def test_resolve_metric_distinguishes_unrecorded(summary: dict) -> None:
    from normbench.metrics import METRICS, Metric, register

    if "zz_probe_metric" not in METRICS:
        register(Metric("zz_probe_metric", True, "value", "test-only", "tests"))
    with pytest.raises(InputError, match="was not recorded in this run"):
        resolve_metric(summary, "zz_probe_metric")
    assert resolve_metric(summary, "steps_to_target.test_acc") == "steps_to_target.test_acc"


def test_render_formats(summary: dict) -> None:
    table = pivot_table(summary, pivot(summary, ["norm", "placement"], "final_test_acc"))
    md = render(table, "markdown")
    assert md.splitlines()[1].startswith("|") and "placement=pre" in md and "±" in md
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert rows[0]["norm"] == "none" and float(rows[0]["pre"]) > 0 and rows[0]["post"] == ""
    assert json.loads(render(table, "json"))["metric"] == "final_test_acc"
    tex = render(table, "latex")
    assert "\\begin{tabular}" in tex and "$\\pm$" in tex and "lr\\_mult" in tex
    assert "final_test_acc" in render(table, "table")
    data = json.loads(render(summary_table(summary), "json"))
    assert {"variant_id", "norm", "ok", "final_test_acc", "final_test_acc_ci_low"} <= set(data[0])


def test_not_reached_is_never_a_number() -> None:
    stats = {"mean": None, "std": None, "n": 0, "values": [None, None]}
    assert fmt_stats(stats, "steps", target=True) == "not reached"
    partial = {"mean": 1200.0, "std": None, "n": 1, "values": [1200.0, None]}
    assert fmt_stats(partial, "steps", target=True) == "1,200 (1/2)"


# --- store ----------------------------------------------------------------------------------


def test_atomic_write_and_create(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2], "nan": math.nan})
    assert json.loads((tmp_path / "a.json").read_text())["x"] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind
    a, b = create_run_dir(tmp_path / "out", "s"), create_run_dir(tmp_path / "out", "s")
    assert a.path != b.path and a.results_dir.is_dir()
    a.write_manifest({"suite_name": "s"})
    b.write_manifest({"suite_name": "s"})
    assert latest_run_dir(tmp_path / "out", "s").path == max(a.path, b.path)
    rec = {"variant_id": "v", "seed": 0, "status": "ok"}
    assert a.write_result(rec).name == "v-s0.json" and a.has_result("v", 0)
    assert list(open_run_dir(a.path).iter_results()) == [rec]


def test_open_run_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_run_dir(tmp_path / "missing")
    with pytest.raises(InputError, match=r"is not a normbench run directory \(no manifest.json\)"):
        open_run_dir(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a normbench run directory"):
        open_run_dir(tmp_path / "f")


def test_iter_results_skips_bad_files_by_name(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.results_dir.mkdir()
    run.write_result(
        {"variant_id": "good", "seed": 0, "status": "ok", "metrics": dict.fromkeys(CORE_METRICS)}
    )
    (run.results_dir / "trunc-s0.json").write_text('{"variant_id": "trunc", "seed": 0, "sta')
    (run.results_dir / "junk-s0.json").write_text('{"hello": 1}')
    (run.results_dir / "new-s0.json").write_text(
        '{"variant_id": "n", "seed": 0, "status": "ok", "schema_version": 99}'
    )
    (run.results_dir / ".tmp-in-progress.json").write_text("{")
    warnings: list[str] = []
    assert [r["variant_id"] for r in run.iter_results(warn=warnings.append)] == ["good"]
    text = "\n".join(warnings)
    assert "trunc-s0.json is not a valid result file (truncated JSON" in text
    assert "junk-s0.json is not a valid result file (missing variant_id, seed, status)" in text
    assert "newer than this normbench" in text and ".tmp" not in text
    with pytest.raises(InputError, match=r"junk-s0.json .*\(--strict\)"):
        list(run.iter_results(strict=True))
