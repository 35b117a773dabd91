"""run --until-decided on real runs: a real difference is found, identical variants are not,
and a run interrupted by a real signal then resumed ends where an uninterrupted one does."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normbench.cli import app
from normbench.execute.sequential import plan_looks, seed_list

SUITE = """\
name: {name}
dataset: {{name: synthetic-blobs, num_samples: 400, dispersion: 1.0}}
model: {{kind: mlp, hidden: [16]}}
training: {{steps: 40, eval_every: 20, batch_size: 50, seeds: 2, optimizer: momentum, lr: 0.05,
           profile_steps: 0}}
grid: {{{key}: [{a}, {b}]}}
claims:
  - {{text: t, metric: final_test_acc, better: {{{key}: {b}}}, than: {{{key}: {a}}}}}
"""


def _suite(tmp_path: Path, name: str, key: str, a: str, b: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, key=key, a=a, b=b))
    return path


def _state(out: Path, name: str) -> tuple[Path, dict]:
    run_dir = next((out / name).iterdir())
    return run_dir, json.loads((run_dir / "manifest.json").read_text())["until_decided"]


def test_planned_looks_and_seeds() -> None:
    assert plan_looks(3, 10) == [3, 5, 8, 10]
    assert plan_looks(2, 3) == [2, 3] and plan_looks(5, 5) == [5]
    assert seed_list([0, 7], 4) == [0, 7, 8, 9]


def test_injected_difference_is_better_with_few_seeds(tmp_path: Path) -> None:
    """lr × 1e-6 (no training at all) against normal training."""
    suite = _suite(tmp_path, "injected", "lr_mult", "0.000001", "1")
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(suite),
            "--until-decided",
            "--max-seeds",
            "8",
            "--out",
            str(tmp_path / "out"),
            "--no-report",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    run_dir, state = _state(tmp_path / "out", "injected")
    (decision,) = state["decisions"].values()
    assert decision["verdict"] == "better" and decision["seeds_at_decision"] <= 4
    # accuracy points gained, with the interval that decided it (level: its Holm threshold)
    assert decision["ci_low"] > 0 and 0.95 < decision["ci_level"] < 1
    assert len(list((run_dir / "results").glob("*.json"))) == 2 * decision["seeds_at_decision"]
    assert "look 1 (2 seeds" in result.stderr
    # The report keeps the decision of the look that took it, with its seeds.
    pair = json.loads((run_dir / "summary.json").read_text())["analysis"]["claims"][0]["pairs"][0]
    assert pair["verdict"] == "better" and pair["look"] == decision["look"]


def test_until_decided_needs_something_to_decide(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "nothing", "lr_mult", "0.5", "1")
    suite.write_text(suite.read_text().split("claims:")[0])
    result = CliRunner().invoke(
        app, ["run", str(suite), "--until-decided", "--out", str(tmp_path / "out"), "-q"]
    )
    assert result.exit_code == 2 and "needs claims" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_identical_variants_are_never_better(tmp_path: Path) -> None:
    """Two variants that train identically (they differ only in an after-training probe)."""
    suite = _suite(tmp_path, "identical", "training.profile_steps", "0", "1")
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(suite),
            "--until-decided",
            "--max-seeds",
            "6",
            "--out",
            str(tmp_path / "out"),
            "--no-report",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    _, state = _state(tmp_path / "out", "identical")
    verdicts = [d["verdict"] for d in state["decisions"].values()]
    assert verdicts in (["equivalent"], [])  # equivalent, or undecided at the budget
    summary = json.loads(
        (next((tmp_path / "out" / "identical").iterdir()) / "summary.json").read_text()
    )
    assert summary["analysis"]["claims"][0]["verdict"] in ("equivalent", "undecided")


def test_simulated_false_better_rate_is_within_alpha() -> None:
    """Identical distributions: the spending design stays within α, naive re-testing does not."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sequential_error.py"
    spec = importlib.util.spec_from_file_location("sequential_error", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    design = module.simulate(600, 3, 10, sd=0.02)
    naive = module.simulate(600, 3, 10, sd=0.02, naive=True)
    assert design["better"] + design["worse"] <= 0.05
    assert naive["better"] + naive["worse"] > design["better"] + design["worse"]


def _run(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "normbench",
            "run",
            *args,
            "--out",
            str(out),
            "--until-decided",
            "--max-seeds",
            "6",
            "--no-report",
            "-q",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_resumed_until_decided_ends_where_uninterrupted(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "resumed", "dataset.seed", "1", "2")  # undecided at first: adds seeds
    whole = _run([str(suite)], tmp_path / "whole")
    assert whole.wait(timeout=600) == 0
    # Interrupted with a real SIGINT as soon as the first look is taken, then resumed.
    part = _run([str(suite)], tmp_path / "part")
    assert part.stderr is not None
    for line in part.stderr:
        if line.startswith("look 1"):
            part.send_signal(signal.SIGINT)
            break
    code = part.wait(timeout=600)
    run_dir = next((tmp_path / "part" / "resumed").iterdir())
    stopped = json.loads((run_dir / "manifest.json").read_text())
    # Stopped during (or right before) look 2: only look 1 is recorded, the rest is resumed.
    assert code == 130 and stopped["status"] == "interrupted"
    assert len(stopped["until_decided"]["rounds"]) == 1
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "normbench",
            "run",
            str(suite),
            "--out",
            str(tmp_path / "part"),
            "--until-decided",
            "--max-seeds",
            "6",
            "--no-report",
            "-q",
            "--resume",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    (a_dir, a), (b_dir, b) = (
        _state(tmp_path / "whole", "resumed"),
        _state(tmp_path / "part", "resumed"),
    )
    assert a["rounds"] == b["rounds"] and len(a["rounds"]) >= 2
    assert {k: v["verdict"] for k, v in a["decisions"].items()} == {
        k: v["verdict"] for k, v in b["decisions"].items()
    }
    names = sorted(p.name for p in (a_dir / "results").glob("*.json"))
    assert names == sorted(p.name for p in (b_dir / "results").glob("*.json"))
    for name in names:  # same seeds, CPU: the very same numbers
        ra, rb = (json.loads((d / "results" / name).read_text()) for d in (a_dir, b_dir))
        assert ra["metrics"]["final_test_acc"] == rb["metrics"]["final_test_acc"]
