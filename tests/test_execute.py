"""Execution at scale: worker processes, crash isolation, resume after kills, shards, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from conftest import TINY, subprocess_env, suite_text, write_suite
from typer.testing import CliRunner

from normbench import api
from normbench.cli import app
from normbench.execute.plan import (
    WORKER_START_SECONDS,
    default_workers,
    make_options,
    parse_shard,
    predicted_wall,
    shard_of,
    suite_difference,
)
from normbench.execute.pool import death_cause
from normbench.spec import load_suite

runner = CliRunner()
# Two fast variants first, then two that sleep in every forward (NB_SLEEP_MS), so that a
# subprocess can be stopped after the first results exist and before the last.
SLEEPY = TINY.replace(
    "norm: [none, batch, layer]", "norm: [none, {kind: custom, target: 'custom_norms:Sleepy'}]"
).replace("steps: 40", "steps: 60")
KILLER = TINY.replace(
    "norm: [none, batch, layer]", "norm: [none, {kind: custom, target: 'custom_norms:Killer'}]"
).replace("seeds: 2", "seeds: 1")
PINNED = ["--workers", "2", "--threads-per-worker", "1"]


def cli(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def the_run(out: Path, suite: str = "tiny") -> Path:
    (run,) = sorted((out / suite).iterdir())
    return run


def metrics_of(run: Path) -> dict[str, tuple]:
    """Accuracy/loss metrics and curves per result file name (timings excluded)."""
    out = {}
    for path in sorted((run / "results").glob("*.json")):
        rec = json.loads(path.read_text())
        c, m = rec["curves"], rec["metrics"]
        out[path.name] = (
            rec["status"],
            c["train_loss"],
            c["test_loss"],
            c["test_acc"],
            m["final_test_acc"],
            m["best_test_acc"],
            m["final_test_loss"],
            m["final_train_loss"],
            m["steps_to_target"],
        )
    return out


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def reference(tmp_path: Path, text: str) -> Path:
    """An uninterrupted in-process run (one torch thread, like the pinned workers)."""
    out = tmp_path / "reference"
    api.run_suite(load_suite(write_suite(tmp_path, text, "ref.yaml")), out, command=["test"])
    return the_run(out)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """In-process runs here use one thread: like the workers (bitwise-equal results), and
    immune to OpenMP spin-waiting on a shared 2-core machine (10-30× slower with 2 threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def start_run(suite: Path, out: Path, *args: str, **env: str) -> subprocess.Popen:
    """``python -m normbench run`` as a real subprocess in its own process group."""
    cmd = [
        sys.executable,
        "-m",
        "normbench",
        "run",
        str(suite),
        "--out",
        str(out),
        "--no-report",
        "--quiet",
        "--format",
        "json",
        *args,
    ]
    return subprocess.Popen(
        cmd,
        env=subprocess_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_results(
    out: Path, proc: subprocess.Popen, at_least: int = 1, timeout: float = 60
) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(out.glob("*/*/results/*.json"))
        if len(found) >= at_least:
            return found
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no result file appeared in time")


def all_json_parses(run: Path) -> None:
    for path in run.rglob("*"):
        assert not path.name.endswith(".tmp"), f"temp file left behind: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())  # raises on a truncated or half-written file


# --- pure planning ----------------------------------------------------------------------------


def test_shard_and_option_parsing() -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("4/3", "0/3", "x", "1/0", "1-3"):
        with pytest.raises(api.InputError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(api.InputError, match="at least 1"):
        make_options(workers=0)
    with pytest.raises(api.InputError, match="--executor dask"):
        make_options(scheduler="tcp://127.0.0.1:8786")
    assert make_options(devices="cpu, cpu").devices == ("cpu", "cpu")


def test_shards_are_deterministic_disjoint_and_balanced(tiny_suite: Callable[..., Path]) -> None:
    suite = load_suite(tiny_suite({"seeds: 2": "seeds: 3"}))
    tasks = api.tasks_of(suite)
    shards = [shard_of(tasks, (i, 4)) for i in range(1, 5)]
    keys = [t.key for s in shards for t in s]
    assert sorted(keys) == sorted(t.key for t in tasks)  # nothing lost, nothing twice
    assert sorted(len(s) for s in shards) == [2, 2, 2, 3]  # 9 equal-cost tasks
    assert [t.key for t in shard_of(list(reversed(tasks)), (2, 4))] == [
        t.key for t in reversed(shard_of(tasks, (2, 4)))
    ]  # independent of input order


def test_suite_difference_is_one_sentence(tiny_suite: Callable[..., Path]) -> None:
    old = load_suite(tiny_suite()).resolved()
    new = load_suite(tiny_suite(), ["norm=batch", "training.steps=80"]).resolved()
    why = suite_difference(old, new)
    assert why.startswith("variant 'norm=batch' changed (training.steps 40 → 80)"), why
    assert suite_difference(old, old) is None


def test_default_workers_follow_the_measured_costs_and_overlap() -> None:
    def linear(w: int) -> float:
        return float(w)  # cores that overlap fully

    def one_core(w: int) -> float:
        return 1.0  # two vCPUs that behave like one core

    assert default_workers([0.5] * 6, cores=8, parallel=linear) == 1  # seconds: stay in-process
    assert default_workers([30.0] * 6, cores=8, parallel=linear) == 6  # one worker per core
    assert default_workers([30.0] * 6, cores=8, parallel=one_core) == 1  # nothing to gain
    assert default_workers([30.0] * 6, cores=4, parallel=linear, memory=2**30) == 1  # memory
    assert default_workers([30.0] * 6, cores=8, parallel=linear, gpus=2) == 2  # one per GPU
    # One long task and short ones: more workers than can shorten the longest are not started.
    assert default_workers([100.0, 5.0, 5.0, 5.0], cores=4, parallel=linear) == 2
    assert predicted_wall([10.0, 10.0], 1, 1.0) == 20.0
    assert predicted_wall([10.0, 10.0], 2, 2.0) == pytest.approx(10.0 + WORKER_START_SECONDS)


def test_the_machine_overlap_is_measured_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from normbench.execute import machine as m
    from normbench.results.environment import cpu_model

    monkeypatch.delenv(m.OVERRIDE_VAR, raising=False)
    monkeypatch.setattr(m, "busy", lambda cores: True)  # others' load: measured, not kept
    assert m.machine(2, cache_dir=tmp_path).source == "measured"
    assert not (tmp_path / m.CACHE_FILE).exists()
    monkeypatch.setattr(m, "busy", lambda cores: False)
    first = m.machine(2, cache_dir=tmp_path)
    assert first.source == "measured" and 1.0 <= first.speedup <= 2.0
    cached = json.loads((tmp_path / m.CACHE_FILE).read_text())
    assert m.cpu_key(2) in cached and cpu_model() in m.cpu_key(2)
    again = m.machine(2, cache_dir=tmp_path)
    assert again.source == "cached" and again.speedup == first.speedup
    monkeypatch.setenv(m.OVERRIDE_VAR, "1.9")
    assert m.machine(2, cache_dir=tmp_path).speedup == 1.9
    assert m.Machine(2, 1.9, "x").parallel(2) == 1.9 and m.Machine(4, 4.0, "x").parallel(2) == 2.0
    assert m.Machine(2, 1.0, "x").parallel(8) == 1.0


def test_a_cpu_only_torch_is_known_without_importing_it(tmp_path: Path) -> None:
    import torch

    from normbench.execute.run_plan import _cpu_only_torch, cpu_only_build

    assert _cpu_only_torch() == (torch.version.cuda is None and torch.version.hip is None)
    header = "from typing import Optional\n__version__ = '2.13.0'\n"
    cases = {
        "cuda: Optional[str] = None\nhip: Optional[str] = None\n": True,
        "cuda = None\nhip = None\n": True,
        "cuda: Optional[str] = '12.1'\nhip: Optional[str] = None\n": False,
        "cuda = None\nhip = '6.0'\n": False,
        "cuda = None\n": False,  # a file that does not say: ask torch
        "cuda = (\n": False,
    }
    for k, (body, cpu_only) in enumerate(cases.items()):
        version = tmp_path / f"version{k}.py"
        version.write_text(header + body)
        assert cpu_only_build(version) is cpu_only, body
    assert cpu_only_build(tmp_path / "missing.py") is False
    (tmp_path / "binary.py").write_bytes(b"\xff\xfe\x00")
    assert cpu_only_build(tmp_path / "binary.py") is False


def test_workers_take_the_longest_units_first(tmp_path: Path) -> None:
    from normbench.execute.run_plan import plan_run

    text = suite_text(TINY, {"grid:\n": "grid:\n  steps: [40, 400]\n"})
    suite = load_suite(write_suite(tmp_path, text))
    pooled = plan_run(suite, tmp_path / "runs", make_options(workers=2))
    order = [
        (u.variant.config["training"]["steps"], u.variant.name, u.seed) for u in pooled.units()
    ]
    # Longest first: a norm's 400-step variant before its 40-step one (one timed step serves
    # both; across norms the timed steps decide, and they carry this machine's noise).
    for norm in ("none", "batch", "layer"):
        mine = [b for b, name, _ in order if name.endswith(f"norm={norm}")]
        assert mine == [400, 400, 40, 40], (norm, order)
    # By each variant's measured cost (its timed step), the suite's order among equals.
    costs = [pooled.costs[u.variant.id] for u in pooled.units()]
    assert costs == sorted(costs, reverse=True)
    suite_order = [
        (t.variant.config["training"]["steps"], t.variant.name, t.seed) for t in pooled.pending
    ]
    assert sorted(order) == sorted(suite_order)
    by_cost = sorted(pooled.pending, key=lambda t: -pooled.costs[t.variant.id])
    assert order == [
        (t.variant.config["training"]["steps"], t.variant.name, t.seed) for t in by_cost
    ]
    alone = plan_run(suite, tmp_path / "runs", make_options(workers=1))
    assert alone.units() == alone.pending  # one worker: the suite's order


def test_death_cause_names_the_signal() -> None:
    assert death_cause(-9).startswith("worker process died (signal 9)")
    assert death_cause(1).startswith("worker process died (exit code 1)")


# --- CLI: bad values are one sentence and exit 2 ------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "4/3"], "--shard '4/3' is out of range"),
        (["--shard", "x"], "--shard 'x' must look like I/N"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--resume", "does-not-exist"], "--resume: does-not-exist does not exist"),
        (["--executor", "ray"], "--executor 'ray' is not one of local, dask"),
        (["--devices", "gpu0"], "--devices 'gpu0'"),
    ],
)
def test_bad_execution_options_exit_2(
    tmp_path: Path, tiny_suite: Callable[..., Path], args: list[str], message: str
) -> None:
    result = cli("run", tiny_suite(), "--out", tmp_path / "runs", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_resume_refuses_a_directory_that_is_not_a_run_or_a_different_suite(
    tmp_path: Path, tiny_suite: Callable[..., Path]
) -> None:
    suite = tiny_suite({"norm: [none, batch, layer]": "norm: [none, batch]"})
    out = tmp_path / "runs"
    assert cli("run", suite, "--out", out, "--no-report", "-q").exit_code == 0
    result = cli("run", suite, "--resume", tmp_path)
    assert result.exit_code == 2 and "is not a normbench run directory" in result.stderr
    result = cli("run", suite, "--out", out, "--resume", "latest", "--set", "training.steps=80")
    assert result.exit_code == 2, result.output
    assert (
        "suite differs from the run's: variant 'norm=none' changed (training.steps 40 → 80)"
        in result.stderr
    )
    result = cli("run", suite, "--out", out, "--resume", "latest", "--no-report", "-q")
    assert result.exit_code == 0 and "4 of 4 results complete, 0 to run" in result.stderr


# --- sharding and merge -----------------------------------------------------------------------


def test_three_shards_merged_equal_the_unsharded_run(
    tmp_path: Path, tiny_suite: Callable[..., Path]
) -> None:
    suite = tiny_suite({"steps: 40": "steps: 20"})
    for i in (1, 2, 3):
        result = cli(
            "run", suite, "--out", tmp_path / f"shard{i}", "--shard", f"{i}/3", "--no-report", "-q"
        )
        assert result.exit_code == 0, result.output
        assert manifest(the_run(tmp_path / f"shard{i}"))["shard"] == f"{i}/3"
    assert cli("run", suite, "--out", tmp_path / "whole", "--no-report", "-q").exit_code == 0
    shards = [the_run(tmp_path / f"shard{i}") for i in (1, 2, 3)]
    assert sorted(len(list((s / "results").glob("*.json"))) for s in shards) == [2, 2, 2]

    result = cli("merge", *shards, "--out", tmp_path / "merged", "--no-report", "--format", "json")
    assert result.exit_code == 0, result.output
    merged = the_run(tmp_path / "merged")  # <out>/<suite>/<timestamp>-<id>, like `run --out`
    assert metrics_of(merged) == metrics_of(the_run(tmp_path / "whole"))
    assert manifest(merged)["status"] == "complete" and manifest(merged)["tasks"] == 6

    # A shard missing: merged but incomplete (exit 3), and `--resume latest` completes it.
    result = cli("merge", *shards[:2], "--out", tmp_path / "partial", "--no-report")
    assert result.exit_code == 3 and "2 of 6 results are missing" in result.stderr
    partial = the_run(tmp_path / "partial")
    assert manifest(partial)["status"] == "interrupted"
    result = cli(
        "run", suite, "--out", tmp_path / "partial", "--resume", "latest", "--no-report", "-q"
    )
    assert result.exit_code == 0 and metrics_of(partial) == metrics_of(merged)

    other = tmp_path / "other"  # a shard of a different suite is refused
    assert (
        cli(
            "run", suite, "--out", other, "--shard", "1/3", "--set", "lr=0.02", "--no-report", "-q"
        ).exit_code
        == 0
    )
    result = cli("merge", shards[0], the_run(other), "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "its suite differs" in result.stderr
    assert not (tmp_path / "bad").exists()


# --- worker processes -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_fails_its_variant_and_the_suite_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = cli(
        "run",
        write_suite(tmp_path, KILLER),
        "--out",
        out,
        "--devices",
        "cpu,cpu",
        "--threads-per-worker",
        "1",
        "--no-report",
        "-q",
        "--format",
        "json",
    )
    assert result.exit_code == 3, result.output
    run = the_run(out)
    records = {
        r["variant_name"]: r
        for r in map(json.loads, map(Path.read_text, (run / "results").glob("*.json")))
    }
    assert records["norm=none"]["status"] == "ok" and records["norm=none"]["device"] == "cpu"
    killed = records["norm=custom[target=custom_norms:Killer]"]
    assert killed["status"] == "failed"
    assert killed["error"].startswith("worker process died (signal 9)")
    assert manifest(run)["status"] == "failed"
    assert manifest(run)["execution"] == {
        "executor": "local",
        "in_process": False,
        "workers": 2,
        "threads_per_worker": 1,
        "devices": ["cpu", "cpu"],
        "scheduler": None,
        "batch_seeds": [],
    }


@pytest.mark.slow
def test_sigkill_of_the_parent_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, SLEEPY)
    out = tmp_path / "runs"
    proc = start_run(suite, out, *PINNED, NB_SLEEP_MS="20")
    wait_for_results(out, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    run = the_run(out)
    time.sleep(0.5)  # orphaned workers notice the parent's death and exit
    before = sorted(p.name for p in (run / "results").glob("*.json"))
    assert 1 <= len(before) < 4, before
    assert manifest(run)["status"] == "running"  # what a kill -9 leaves: resumable
    all_json_parses(run)

    proc = start_run(suite, out, "--resume", "latest", *PINNED)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{len(before)} of 4 results complete, {4 - len(before)} to run" in err
    assert [r.name for r in sorted(out.glob("*/*"))] == [run.name]  # no second run directory
    assert manifest(run)["status"] == "complete" and len(manifest(run)["resumes"]) == 1
    all_json_parses(run)
    assert metrics_of(run) == metrics_of(reference(tmp_path, SLEEPY))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm-parent", "sigint-group-in-process"])
def test_a_signal_interrupts_cleanly_and_resume_completes(tmp_path: Path, how: str) -> None:
    suite = write_suite(tmp_path, SLEEPY)
    out = tmp_path / "runs"
    extra = PINNED if how == "sigterm-parent" else ["--workers", "1"]
    proc = start_run(suite, out, *extra, NB_SLEEP_MS="20")
    wait_for_results(out, proc)
    if how == "sigterm-parent":
        os.kill(proc.pid, signal.SIGTERM)
    else:  # Ctrl-C on a terminal: the whole foreground process group gets SIGINT
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: finished results are saved" in err and "Traceback" not in err
    run = the_run(out)
    assert manifest(run)["status"] == "interrupted"
    done = list((run / "results").glob("*.json"))
    assert 1 <= len(done) < 4
    all_json_parses(run)

    result = cli("run", suite, "--resume", run, "--no-report", "-q")  # in-process, no sleeping
    assert result.exit_code == 0, result.output
    assert manifest(run)["status"] == "complete"
    assert len(list((run / "results").glob("*.json"))) == 4


# --- Dask -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dask_cluster_on_loopback_runs_the_suite(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    text = TINY.replace("norm: [none, batch, layer]", "norm: [none, batch]")
    out = tmp_path / "runs"
    # Threads, not processes: one core's worth of work, and no second torch import on 2 cores.
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        host="127.0.0.1",
        protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        result = cli(
            "run",
            write_suite(tmp_path, text),
            "--out",
            out,
            "--executor",
            "dask",
            "--scheduler",
            address,
            "--threads-per-worker",
            "1",
            "--no-report",
            "-q",
        )
    assert result.exit_code == 0, result.output
    run = the_run(out)
    assert manifest(run)["execution"]["executor"] == "dask"
    assert metrics_of(run) == metrics_of(reference(tmp_path, text))


def test_unreachable_dask_scheduler_is_an_input_error(
    tmp_path: Path, tiny_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr("normbench.execute.dask_backend.CONNECT_TIMEOUT", "1s")
    result = cli(
        "run",
        tiny_suite(),
        "--out",
        tmp_path / "runs",
        "--executor",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--no-report",
        "-q",
    )
    assert result.exit_code == 2, result.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
