"""Timings that mean something: the relative cost ``rel_ms_per_step`` and the ``(noisy)`` flag.

Real runs of a tiny suite whose variants are a plain MLP (the reference), layer norm and the
``Sleepy`` custom norm (sleeps ``NB_SLEEP_MS`` per call, so its cost is known to be large).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli, start_cli
from typer.testing import CliRunner

from normbench.analysis.aggregate import NOISY_SPREAD, interval_spread, summarize_run
from normbench.cli import app

runner = CliRunner()

SLEEPY = "norm=custom[target=custom_norms:Sleepy]"
SUITE = """\
name: rel-tiny
dataset: {name: synthetic-blobs, input_norm: zscore}
model: {kind: mlp, hidden: [16, 16], activation: relu}
training: {optimizer: adam, lr: 0.01, batch_size: 32, steps: 40, eval_every: 10, seeds: 3,
           device: cpu, threads: 1}
grid:
  norm: [none, layer, {kind: custom, target: 'custom_norms:Sleepy'}]
targets:
  test_acc: 0.999
"""


def records(run: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for f in (run / "results").glob("*.json"):
        r = json.loads(f.read_text())
        out[(r["variant_name"], r["seed"])] = r
    return out


def run_suite(work: Path, name: str, *args: str, sleep_ms: str = "1") -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NB_SLEEP_MS", sleep_ms)
        result = runner.invoke(
            app,
            [
                "run",
                str(work / "suite.yaml"),
                "--out",
                str(work / name),
                "--no-report",
                "-q",
                "--workers",
                "1",
                *args,
            ],
        )
    assert result.exit_code == 0, result.output
    (run,) = sorted((work / name / "rel-tiny").glob("*"))[-1:]
    return run


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timing")
    (root / "suite.yaml").write_text(SUITE)
    return root


@pytest.fixture(scope="module")
def base(work: Path) -> Path:
    return run_suite(work, "base")


def test_every_result_has_its_relative_cost(base: Path) -> None:
    recs = records(base)
    assert len(recs) == 9
    ref_id = recs[("norm=none", 0)]["variant_id"]
    for (name, _), r in recs.items():
        cost = r["timing"]["rel_cost"]
        assert cost["reference_id"] == ref_id and cost["reference_name"] == "norm=none"
        assert r["metrics"]["rel_ms_per_step"] == pytest.approx(cost["median"], rel=1e-4)
        if name == "norm=none":
            assert r["metrics"]["rel_ms_per_step"] == 1.0  # the reference, by definition
        else:
            assert len(cost["ratios"]) == cost["rounds"] and cost["ms_per_step"] > 0
    # 1 ms of sleep per norm call, 2 calls a step, against a sub-millisecond plain step.
    assert all(
        recs[(SLEEPY, s)]["metrics"]["rel_ms_per_step"] > 2 for s in (0, 1, 2)
    )  # sleeps: far above layer (1.3)


def test_relative_cost_in_tables_and_summary(base: Path) -> None:
    result = runner.invoke(app, ["report", str(base), "--format", "csv", "--no-plots"])
    assert result.exit_code == 0, result.output
    header = result.stdout.strip().splitlines()[0]
    assert "rel_ms_per_step" in header.split(",")
    summary = summarize_run(base)
    info = summary["metric_info"]["rel_ms_per_step"]
    assert info["higher_is_better"] is False and info["unit"] == "ratio"
    sleepy = next(v for v in summary["variants"] if v["variant_name"] == SLEEPY)
    rel = sleepy["rel_cost"]
    assert rel["q1"] <= rel["median"] <= rel["q3"] and rel["n"] == 21


def test_the_relative_gate_sees_a_slowdown_and_not_a_rerun(work: Path, base: Path) -> None:
    # 16 ms against the base's 1 ms per norm call: a slowdown of about 10x, which stays
    # significant after Holm's correction over every variant x metric even when one seed's
    # timing is off (with 4 ms, one seed at 6.1 against 10.6 and 11.6 gave p 0.018 -> 0.28).
    slower = run_suite(work, "slower", sleep_ms="16")
    result = runner.invoke(
        app,
        [
            "compare",
            str(base),
            str(slower),
            "--fail-on",
            "rel_ms_per_step:+10%",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    failed = {g["variant"] for g in doc["gates"] if g["status"] == "fail"}
    assert failed == {SLEEPY}  # the reference is 1 → 1 on every seed: an exact non-change


def test_resume_measures_only_the_missing_results(work: Path, base: Path) -> None:
    import shutil

    run = work / "resumed" / "rel-tiny" / base.name
    shutil.copytree(base, run)
    before = records(run)
    gone = before[("norm=layer", 1)]
    (run / "results" / f"{gone['variant_id']}-s1.json").unlink()
    result = runner.invoke(
        app,
        [
            "run",
            str(work / "suite.yaml"),
            "--out",
            str(work / "resumed"),
            "--resume",
            str(run),
            "--no-report",
            "-q",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    after = records(run)
    assert after[("norm=layer", 1)]["metrics"]["rel_ms_per_step"] > 0
    for key, r in before.items():
        if key != ("norm=layer", 1):
            assert after[key]["timing"]["rel_cost"] == r["timing"]["rel_cost"]  # untouched


def test_shards_measure_against_the_reference_and_merge_keeps_it(work: Path, base: Path) -> None:
    dirs = [run_suite(work, f"shard{i}", "--shard", f"{i}/2") for i in (1, 2)]
    ref_id = records(base)[("norm=none", 0)]["variant_id"]
    result = runner.invoke(app, ["merge", *map(str, dirs), "--out", str(work / "merged")])
    assert result.exit_code == 0, result.output
    (merged,) = (work / "merged" / "rel-tiny").glob("*")
    recs = records(merged)
    assert len(recs) == 9
    assert all(r["timing"]["rel_cost"]["reference_id"] == ref_id for r in recs.values())
    assert all(
        recs[(SLEEPY, s)]["metrics"]["rel_ms_per_step"] > 2 for s in (0, 1, 2)
    )  # sleeps: far above layer (1.3)


def test_reference_option(work: Path) -> None:
    run = run_suite(work, "ref-layer", "--reference", "norm=layer")
    recs = records(run)
    assert recs[("norm=layer", 0)]["metrics"]["rel_ms_per_step"] == 1.0
    assert recs[("norm=none", 0)]["timing"]["rel_cost"]["reference_name"] == "norm=layer"
    for bad, needle in (
        ("norm=group", "no variant of the suite has norm=group"),
        ("lr=1", "'lr' is not swept"),
        ("norm", "expects KEY=VALUE"),
    ):
        result = runner.invoke(
            app, ["run", str(work / "suite.yaml"), "--out", str(work / "never"), "--reference", bad]
        )
        assert result.exit_code == 2 and needle in result.stderr, result.output
    assert not (work / "never").exists()


def test_workers_measure_as_variants_finish_and_train_the_same(work: Path, base: Path) -> None:
    # Two workers: each result's cost is measured by whichever worker is free, while the
    # other may still train. The training numbers are those of the one-worker run.
    run = run_suite(work, "two-workers", "--workers", "2")
    one, two = records(base), records(run)
    assert one.keys() == two.keys()
    for key, r in two.items():
        assert r["metrics"]["final_test_acc"] == one[key]["metrics"]["final_test_acc"]
        assert r["curves"]["test_loss"] == one[key]["curves"]["test_loss"]
        assert r["timing"]["rel_cost"]["reference_name"] == "norm=none"
    assert all(
        two[(SLEEPY, s)]["metrics"]["rel_ms_per_step"] > 2 for s in (0, 1, 2)
    )  # sleeps: far above layer (1.3)
    assert all(two[("norm=none", s)]["metrics"]["rel_ms_per_step"] == 1.0 for s in (0, 1, 2))


def test_a_worker_that_dies_measuring_loses_only_that_cost(work: Path) -> None:
    suite = work / "dies.yaml"
    suite.write_text(SUITE.replace("custom_norms:Sleepy", "custom_norms:DiesWhenTimed"))
    result = runner.invoke(
        app,
        ["run", str(suite), "--out", str(work / "dies"), "--no-report", "-q", "--workers", "2"],
    )
    assert result.exit_code == 0, result.output
    (run,) = (work / "dies" / "rel-tiny").glob("*")
    recs = records(run)
    assert len(recs) == 9 and all(r["status"] == "ok" for r in recs.values())
    doomed = "norm=custom[target=custom_norms:DiesWhenTimed]"
    for seed in (0, 1, 2):
        assert "rel_ms_per_step" not in recs[(doomed, seed)]["metrics"]
        assert recs[(doomed, seed)]["metrics"]["final_test_acc"] > 0  # its training is kept
        assert recs[("norm=layer", seed)]["metrics"]["rel_ms_per_step"] > 0
        assert (
            f"relative cost not measured for {recs[(doomed, seed)]['variant_id']} seed {seed}: "
            "worker process died (exit code 3)"
        ) in result.stderr
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_stop_while_workers_measure_keeps_every_result(work: Path) -> None:
    suite = work / "slow-timed.yaml"
    suite.write_text(
        SUITE.replace("custom_norms:Sleepy", "custom_norms:SlowWhenTimed").replace(
            "seeds: 3", "seeds: 1"
        )
    )
    out = work / "slow-timed"
    proc = start_cli(
        "run", suite, "--out", out, "--no-report", "-q", "--workers", "2",
        start_new_session=True, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("rel-tiny/*/results/*.json"))) < 3:
        time.sleep(0.05)
    time.sleep(0.5)  # every variant trained: the workers are measuring (a slow one among them)
    assert proc.poll() is None, "the run ended before its costs were measured"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "relative cost not measured" not in err  # a stop, not a failure to measure
    (run,) = out.glob("rel-tiny/*")
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    recs = records(run)
    assert len(recs) == 3 and all(r["status"] == "ok" for r in recs.values())
    slow = "norm=custom[target=custom_norms:SlowWhenTimed]"
    assert "rel_ms_per_step" not in recs[(slow, 0)]["metrics"]
    resumed = run_cli("run", suite, "--resume", run, "--no-report", "-q", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert records(run)[(slow, 0)]["metrics"]["rel_ms_per_step"] > 1
    assert not list(run.rglob("*.tmp"))


def test_no_rel_cost(work: Path) -> None:
    run = run_suite(work, "none", "--no-rel-cost")
    assert all("rel_ms_per_step" not in r["metrics"] for r in records(run).values())


# --- (noisy) ----------------------------------------------------------------------------------


def curves(ms: list[float], every: int = 10) -> dict:
    """A record whose eval intervals took ``ms`` per step each."""
    steps, secs, t = [], [], 0.0
    for i, m in enumerate(ms):
        t += m * every / 1000
        steps.append((i + 1) * every)
        secs.append(t)
    return {"curves": {"step": steps, "train_seconds": secs}}


def test_interval_spread_pools_seeds_and_needs_enough_intervals() -> None:
    steady = [1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97, 1.0]
    assert not interval_spread([curves(steady), curves(steady)])["noisy"]
    # One seed stalled for 3 of its 8 intervals: the pooled median stands, not noisy.
    stalled = [1.0, 1.0, 3.0, 1.01, 3.0, 0.99, 3.0, 1.0]
    spread = interval_spread([curves(steady), curves(stalled), curves(steady)])
    assert spread["intervals"] == 21 and not spread["noisy"]
    halves = [1.0, 2.0] * 5
    assert interval_spread([curves(halves)])["iqr_over_median"] > NOISY_SPREAD
    assert interval_spread([curves(halves)])["noisy"]
    short = interval_spread([curves([1.0, 5.0, 1.0, 5.0])])  # 3 intervals: no verdict
    assert short == {"intervals": 3, "iqr_over_median": None, "noisy": False}


def test_noisy_marks_measured_spread_and_never_a_missing_value(work: Path) -> None:
    suite = work / "jitter.yaml"
    suite.write_text(
        SUITE.replace("custom_norms:Sleepy", "custom_norms:Jittery")
        .replace("steps: 40, eval_every: 10", "steps: 60, eval_every: 5")
        .replace("test_acc: 0.999", "test_acc: 0.5")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NB_JITTER_MS", "5")
        result = runner.invoke(
            app,
            [
                "run",
                str(suite),
                "--out",
                str(work / "jitter"),
                "--no-report",
                "-q",
                "--workers",
                "1",
                "--no-rel-cost",
                "--format",
                "markdown",
            ],
        )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("|")]
    jittery = next(ln for ln in lines if "Jittery" in ln)
    cells = [c.strip() for c in jittery.strip("|").split("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[header.index("samples_per_sec")].endswith("(noisy)")
    assert cells[header.index("steps_to_target")] == "not reached"  # never "not reached (noisy)"
    assert "not reached (noisy)" not in result.stdout
