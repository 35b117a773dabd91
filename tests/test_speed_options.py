"""Speed options of the training loop: precision, channels_last, compile, step breakdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from normbench.execute.local import Task, run_task
from normbench.spec import load_suite

SUITE = """\
name: speed
dataset: {name: synthetic-blobs, num_train: 256, num_test: 64}
model: {kind: mlp, hidden: [16], norm: batch}
training: {optimizer: adam, lr: 0.01, batch_size: 32, steps: 20, eval_every: 10, seeds: 1, device: \
cpu, profile_steps: 5}
"""


def run(tmp_path: Path, *overrides: str, text: str = SUITE) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    variant = load_suite(path, list(overrides)).variants[0]
    return run_task(Task(variant, 0))


def test_step_breakdown_recorded(tmp_path: Path) -> None:
    record = run(tmp_path)
    assert record["status"] == "ok", record["error"]
    breakdown = record["timing"]["breakdown"]
    for phase in ("forward_ms", "backward_ms", "optimizer_ms", "step_ms"):
        assert breakdown[phase]["median"] > 0
        assert breakdown[phase]["iqr"] is not None and isinstance(breakdown[phase]["noisy"], bool)
    assert record["metrics"]["forward_ms"] == breakdown["forward_ms"]["median"]
    # On CPU peak_memory_mb (CUDA max allocated) does not apply; the process RSS is its own
    # metric and the model's own memory is accounted separately (and is far smaller).
    m = record["metrics"]
    assert m["peak_memory_mb"] is None and m["process_rss_mb"] > 0
    assert 0 < m["model_memory_mb"] < m["process_rss_mb"]
    assert record["timing"]["ms_per_step_stats"]["median"] > 0


def test_breakdown_does_not_change_results(tmp_path: Path) -> None:
    with_profile = run(tmp_path)
    without = run(tmp_path, "training.profile_steps=0")
    assert with_profile["curves"]["test_loss"] == without["curves"]["test_loss"]
    assert "breakdown" not in without["timing"] and without["metrics"]["forward_ms"] is None


def test_bf16_autocast_trains(tmp_path: Path) -> None:
    record = run(tmp_path, "training.precision=bf16")
    assert record["status"] == "ok", record["error"]
    assert record["config"]["training"]["precision"] == "bf16"


def test_channels_last_cnn(tmp_path: Path) -> None:
    text = SUITE.replace("{name: synthetic-blobs, num_train: 256, num_test: 64}", "{name: digits}")
    text = text.replace(
        "{kind: mlp, hidden: [16], norm: batch}", "{kind: cnn, channels: [4, 8], norm: batch}"
    )
    record = run(tmp_path, "training.channels_last=true", text=text)
    assert record["status"] == "ok", record["error"]
    plain = run(tmp_path, text=text)
    assert record["curves"]["test_acc"] == pytest.approx(plain["curves"]["test_acc"], abs=0.05)


@pytest.mark.slow
def test_compile_keeps_numbers_and_reports_compile_time(tmp_path: Path) -> None:
    compiled = run(tmp_path, "training.compile=true")
    assert compiled["status"] == "ok", compiled["error"]
    assert compiled["timing"]["compile_seconds"] > 0
    plain = run(tmp_path)
    assert compiled["curves"]["test_loss"] == pytest.approx(plain["curves"]["test_loss"], rel=1e-3)


@pytest.mark.slow
def test_relative_cost_of_a_compiled_variant_times_compiled_steps(tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    from normbench.train.relcost import measure

    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    eager = load_suite(path, []).variants[0]
    compiled = load_suite(path, ["training.compile=true"]).variants[0]
    pairs = [(f"v{i}", compiled.config, 0, 0.1) for i in range(10)]
    before = counters["stats"]["unique_graphs"]
    costs = measure(pairs, ("ref", eager.config), rounds=2)
    # Every one of the ten copies is compiled afresh: the caches are reset before each pair,
    # since one cache shared by many differently built models reaches dynamo's recompile
    # limit (8) and then runs them eager, silently.
    assert counters["stats"]["unique_graphs"] - before >= 10
    assert sorted(costs) == [(f"v{i}", 0) for i in range(10)]
    assert all(c["median"] > 0 and c["ms_per_step"] > 0 for c in costs.values())
