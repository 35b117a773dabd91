"""Flags and sizes are bounded, and every refusal names the key or flag the user wrote."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY, run_cli, subprocess_env, write_suite

from normbench.errors import InputError, OptionError, SuiteError
from normbench.execute import plan
from normbench.gates import parse_gate
from normbench.spec import load_suite


def refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("normbench: error: ") and "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


# --- shards ---------------------------------------------------------------------------------------


def _reference_shard(tasks: list, shard: tuple[int, int]) -> list:
    """The assignment as first written: a list of N loads, scanned for every task."""
    i, n = shard
    ordered = sorted(tasks, key=lambda t: (t.variant.id, t.seed))
    by_cost = sorted(ordered, key=lambda t: -plan.shard_weight(t.variant.config))
    load, owner = [0.0] * n, {}
    for task in by_cost:
        k = min(range(n), key=lambda j: (load[j], j))
        owner[(task.variant.id, task.seed)] = k
        load[k] += plan.shard_weight(task.variant.config)
    return [t for t in tasks if owner[(t.variant.id, t.seed)] == i - 1]


def _tasks(costs: list[int], seeds: int) -> list:
    variants = [
        SimpleNamespace(id=f"v{j}", config={"model": {"kind": "mlp", "hidden": [8 * c]},
                                            "dataset": {}, "training": {"batch_size": 32,
                                            "steps": 100, "eval_every": 10, "probe_size": 64}})
        for j, c in enumerate(costs)
    ]  # fmt: skip
    return [SimpleNamespace(variant=v, seed=s) for v in variants for s in range(seeds)]


def test_shards_are_assigned_as_before_without_a_list_of_n() -> None:
    rng = random.Random(0)
    for _ in range(40):
        tasks = _tasks([rng.choice([1, 1, 2, 8, 30]) for _ in range(rng.randint(1, 7))], 3)
        n = rng.randint(1, 25)
        for i in range(1, n + 1):
            assert plan.shard_of(tasks, (i, n)) == _reference_shard(tasks, (i, n))
    start = time.perf_counter()
    many = _tasks([1] * 50, 4)
    assert len(plan.shard_of(many, (1, plan.MAX_SHARDS))) == 1
    assert plan.shard_of(many, (plan.MAX_SHARDS, plan.MAX_SHARDS)) == []
    assert time.perf_counter() - start < 1.0  # was: 200 tasks × 10^6 shards scanned


@pytest.mark.parametrize("text", ["1/1000000000", "1/99999999999999999999"])
def test_a_huge_shard_count_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="N must be at most 1,000,000"):
        plan.parse_shard(text)


def test_an_empty_shard_and_a_huge_one_from_the_command_line(tmp_path: Path) -> None:
    path = write_suite(tmp_path)
    refused(
        run_cli("run", path, "--shard", "7/8", "--out", tmp_path / "runs"),
        "--shard 7/8 holds no task: the suite has 6",
    )
    refused(run_cli("run", path, "--shard", "1/99999999999999999999"), "at most 1,000,000")
    assert not (tmp_path / "runs").exists()


# --- bench sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,words",
    [
        (["--shape", "100000000x100000000"], "--shape 100000000x100000000 needs"),
        (["--shape", "99999999999999999999x4"], "more than this machine's memory"),
        (["--shape", "4x4", "--min-time", "inf"], "min-time must be between 0 and 3600"),
        (["--shape", "4x4", "--min-time", "nan"], "got nan"),
        (["--shape", "4x4", "--repeats", "1000000000"], "repeats must be between 1 and 100,000"),
    ],
)
def test_bench_sizes_and_times_are_bounded(args: list[str], words: str) -> None:
    refused(run_cli("bench", "layer", *args, timeout=120), words)


# --- gates and flags that would do nothing --------------------------------------------------------


@pytest.mark.parametrize(
    "text,words",
    [
        ("final_test_acc:-1e400", "must be a finite number"),
        ("final_train_loss:+1e999", "must be a finite number"),
        ("final_test_acc:-200%", "can never fire: final_test_acc is never negative"),
        ("final_test_acc:-1", "can never fire: final_test_acc is a fraction"),
        ("samples_per_sec:-100%", "can never fire"),
    ],
)
def test_a_gate_that_cannot_fire_is_refused(text: str, words: str) -> None:
    with pytest.raises(OptionError, match=words):
        parse_gate(text)


def test_gates_that_can_fire_still_parse() -> None:
    assert parse_gate("final_test_acc:-0.5").threshold == 0.5
    assert parse_gate("final_train_loss:+500%").threshold == 5.0


def test_flags_that_would_be_ignored_or_never_fire(tmp_path: Path) -> None:
    path = write_suite(tmp_path)
    refused(run_cli("run", path, "--max-seeds", "3"), "--max-seeds", "--until-decided")
    refused(
        run_cli("run", path, "--baseline", tmp_path, "--fail-on", "final_test_acc:-1e400"),
        "--fail-on",
        "finite",
    )


# --- --set and model.options errors at the key the user wrote -------------------------------------

CUSTOM = """\
name: own
dataset: {name: custom, target: "hostile_code:loader"}
model: {kind: custom, target: "hostile_code:small_net"}
training: {batch_size: 16, steps: 4, eval_every: 2, device: cpu}
"""


def _error(path: Path, *overrides: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path, list(overrides))
    return str(info.value)


def test_set_errors_name_the_flag_and_the_key(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # hostile_code, as the CLI's path has it
    tiny, own = write_suite(tmp_path, TINY), write_suite(tmp_path, CUSTOM, "own.yaml")
    assert _error(tiny, "model.options.x=1").startswith(
        "--set model.options.x=1: model.options: 'options' does not apply to a mlp model"
    )  # not at grid.norm[0]
    assert _error(own, "model.options.x=1").startswith(
        "--set model.options.x=1: model.options.x: custom model factory"
    )  # not at model.target
    assert _error(own, "model.optons.a=1").startswith(
        "--set model.optons.a=1: model.optons: unknown key 'optons' — did you mean 'options'?"
    )
    assert "gives training.lr no value" in _error(tiny, "training.lr=")
    message = _error(own, "model.target=hostile_code:smal_net")
    assert "model.target" in message and "did you mean 'small_net'?" in message
    message = _error(own, "model.target=hostile_cod:small_net")
    assert "No module named 'hostile_cod' — did you mean 'hostile_code'?" in message


def test_a_long_refused_value_is_not_echoed_whole(tmp_path: Path) -> None:
    values = "[" + ",".join(["1"] * 2999 + ["x"]) + "]"
    for key in ("training.lr", "lr_mult", "training.seeds"):
        message = _error(write_suite(tmp_path), f"{key}={values}")
        assert len(message) < 600 and "characters)" in message, message


def test_batch_size_from_set_is_blamed_on_set(tmp_path: Path) -> None:
    proc = run_cli("run", write_suite(tmp_path), "--set", "training.batch_size=5000",
                   "--out", tmp_path / "runs")  # fmt: skip
    refused(proc, "--set training.batch_size=5000: variant norm=none: batch_size 5000")


# --- the working directory ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["validate"], ["run", "-q"]])
def test_a_deleted_working_directory_is_named(tmp_path: Path, command: list[str]) -> None:
    path = write_suite(tmp_path)
    gone = tmp_path / "gone"
    gone.mkdir()
    code = (
        "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "sys.argv = ['normbench', *sys.argv[2:]]; "
        "runpy.run_module('normbench', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(gone), *command, str(path)],
        env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    refused(proc, f"the working directory {gone} no longer exists")
    assert not os.path.exists(gone)
