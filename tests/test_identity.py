"""One variant, one answer: identical numbers whatever the execution; kernels pinned and checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_cli, subprocess_env, write_suite
from test_execute import SLEEPY, cli, manifest, start_run, the_run, wait_for_results

from normbench import api, arith
from normbench.execute.plan import usable_cores
from normbench.spec import load_suite, variant_id


def finals(run: Path) -> dict[str, tuple]:
    """(final_test_acc, final_train_loss, train-loss curve) per result file."""
    out = {}
    for path in sorted((run / "results").glob("*.json")):
        rec = json.loads(path.read_text())
        assert rec["status"] == "ok", rec.get("error")
        m = rec["metrics"]
        out[path.name] = (m["final_test_acc"], m["final_train_loss"], rec["curves"]["train_loss"])
    return out


def records(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "results").glob("*.json"))]


def test_threads_are_not_part_of_the_variant_id_and_old_ids_stay(
    tiny_suite: Callable[..., Path],
) -> None:
    suite = load_suite(tiny_suite())
    config = suite.variants[0].config
    assert config["training"]["threads"] is None  # planning fills it in, not loading
    planned = {**config, "training": {**config["training"], "threads": 2, "reproducible": True}}
    assert variant_id(planned) == variant_id(config) == suite.variants[0].id
    # The committed baseline's ids were made before threads were recorded: they still match.
    committed = json.loads((ROOT / "reports/baselines/ci-smoke/resolved.json").read_text())
    for variant in committed["variants"]:
        assert variant_id(variant["config"]) == variant["id"]


def test_planning_decides_threads_from_the_configuration(
    tmp_path: Path, tiny_suite: Callable[..., Path]
) -> None:
    suite = load_suite(tiny_suite())
    plan = api.plan_run(suite, tmp_path / "runs", api.make_options(workers=2))
    assert plan.threads == 1 and plan.workers == 2 and not plan.in_process
    assert {t.variant.config["training"]["threads"] for t in plan.tasks} == {1}
    assert {t.variant.config["training"]["reproducible"] for t in plan.tasks} == {False}
    # More than the cores: capped, with a sentence (this machine has at least one core).
    many = api.plan_run(
        suite, tmp_path / "runs", api.make_options(workers=64, threads_per_worker=64)
    )
    assert many.workers * many.threads <= os.cpu_count()
    assert any("oversubscribe" in w for w in many.warnings)
    assert any("would exceed" in w for w in many.warnings) or many.workers == 64
    # A large model's default (4 threads) is fitted to the cores without a word: nobody asked.
    big = load_suite(tiny_suite({"hidden: [16, 16]": "hidden: [2048, 2048]"}))
    chosen = api.plan_run(big, tmp_path / "runs", api.make_options())
    assert chosen.threads == min(arith.LARGE_MODEL_THREADS, usable_cores())
    assert chosen.warnings == []


def test_fit_to_cores_and_signatures() -> None:
    assert arith.fit_to_cores(4, 1, 2)[:2] == (2, 1)
    assert arith.fit_to_cores(1, 8, 2)[:2] == (1, 2)
    assert arith.fit_to_cores(2, 1, 2) == (2, 1, [])
    a = {"threads": 1, "cpu_capability": "AVX512", "reproducible": False, "torch": "2.13.0"}
    b = {**a, "threads": 2, "cpu_capability": "AVX2"}
    assert arith.not_bit_comparable(a, b) == "not bit-comparable: threads 1 vs 2; AVX512 vs AVX2"
    assert arith.not_bit_comparable(a, dict(a)) is None
    assert (
        arith.not_bit_comparable(a, {"threads": None}) is None
    )  # an old run: unknown, not different
    intel = {**a, "cpu_vendor": "GenuineIntel", "cpu_family": 6}
    amd = {**a, "cpu_vendor": "AuthenticAMD", "cpu_family": 25}
    assert (
        arith.not_bit_comparable(intel, amd) == "not bit-comparable: GenuineIntel vs AuthenticAMD"
    )
    assert arith.not_bit_comparable(amd, {**amd, "cpu_family": 23}) == (
        "not bit-comparable: AuthenticAMD family 25 vs 23"
    )
    # MKL's pinned branch holds across Intel models; an unrecorded vendor is not a difference.
    assert arith.not_bit_comparable(intel, {**intel, "cpu_family": 15}) is None
    assert arith.not_bit_comparable(intel, {**intel, "cpu_vendor": None}) is None
    # Runs recorded before the vendor was: inferred from the CPU's model name.
    old = {"arith": {"threads": 1}, "environment": {"cpu": "Intel(R) Xeon(R) Processor"}}
    assert arith.signature(old)["cpu_vendor"] == "GenuineIntel"
    assert arith.vendor_of_name("AMD EPYC 7763 64-Core Processor") == "AuthenticAMD"
    assert arith.vendor_of_name("Apple M2") is None
    assert arith.pinned_env("x86_64")["ATEN_CPU_CAPABILITY"] == "avx2"
    assert arith.pinned_capability("aarch64") == "DEFAULT"


@pytest.mark.slow
def test_one_suite_five_ways_gives_identical_numbers(tmp_path: Path) -> None:
    """In-process, --workers 2, two shards + merge, SIGKILL + resume, Dask: the same numbers."""
    import torch

    pytest.importorskip("distributed")
    suite = write_suite(tmp_path, SLEEPY)  # its custom norm sleeps only when NB_SLEEP_MS is set
    runs: dict[str, Path] = {}

    # 1. In-process, with torch left at 2 threads: planning pins the task to its recorded 1.
    # Custom-norm variants always train in a worker (their code may end the interpreter), so
    # the in-process run takes the built-in variant alone (`norm=none` keeps its id).
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        outcome = api.run_suite(
            load_suite(suite, ["norm=none"]), tmp_path / "inproc", command=["test"]
        )
    finally:
        torch.set_num_threads(before)
    runs["in-process"] = outcome.run_dir.path
    assert manifest(runs["in-process"])["execution"]["in_process"] is True

    # 2. Two worker processes (threads not given: the configuration decides).
    assert (
        cli(
            "run", suite, "--out", tmp_path / "pool", "--workers", "2", "--no-report", "-q"
        ).exit_code
        == 0
    )
    runs["workers 2"] = the_run(tmp_path / "pool")

    # 3. Two shards, merged.
    for i in (1, 2):
        result = cli(
            "run", suite, "--out", tmp_path / f"shard{i}", "--shard", f"{i}/2", "--no-report", "-q"
        )
        assert result.exit_code == 0, result.output
    result = cli(
        "merge",
        the_run(tmp_path / "shard1"),
        the_run(tmp_path / "shard2"),
        "--out",
        tmp_path / "merged",
        "--no-report",
    )
    assert result.exit_code == 0, result.output
    runs["shards + merge"] = the_run(tmp_path / "merged")

    # 4. SIGKILL of the parent mid-run (workers), then --resume in-process.
    out = tmp_path / "killed"
    proc = start_run(suite, out, "--workers", "2", NB_SLEEP_MS="20")
    wait_for_results(out, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    killed = the_run(out)
    assert 1 <= len(list((killed / "results").glob("*.json"))) < 4
    result = cli("run", suite, "--resume", killed, "--workers", "1", "--no-report", "-q")
    assert result.exit_code == 0, result.output
    runs["SIGKILL + resume"] = killed

    # 5. Dask on a LocalCluster of worker processes.
    result = cli(
        "run",
        suite,
        "--out",
        tmp_path / "dask",
        "--executor",
        "dask",
        "--workers",
        "1",
        "--no-report",
        "-q",
    )
    assert result.exit_code == 0, result.output
    runs["dask"] = the_run(tmp_path / "dask")

    expected = finals(runs["workers 2"])
    assert len(expected) == 4
    in_process = finals(runs["in-process"])
    assert len(in_process) == 2
    assert in_process == {k: expected[k] for k in in_process}, "in-process differs from workers"
    for way, run in runs.items():
        if way != "in-process":
            assert finals(run) == expected, f"{way} differs from the --workers 2 run"
        for rec in records(run):
            assert rec["config"]["training"]["threads"] == 1, way
            assert rec["arith"]["threads"] == 1, way  # what torch really used
        assert manifest(run)["arith"]["threads"] == 1, way


def test_compare_says_not_bit_comparable_across_threads(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path,
        TINY.replace("steps: 40", "steps: 10")
        .replace("seeds: 2", "seeds: 1")
        .replace("norm: [none, batch, layer]", "norm: [none]"),
    )
    one = api.run_suite(load_suite(suite), tmp_path / "a", command=["t"]).run_dir.path
    two = api.run_suite(
        load_suite(suite),
        tmp_path / "b",
        command=["t"],
        options=api.make_options(threads_per_worker=2),
    ).run_dir.path
    if manifest(two)["arith"]["threads"] != 2:
        pytest.skip("this machine has a single usable core")
    cmp = api.compare_runs(one, two, stats=False)
    assert any(w.startswith("not bit-comparable: threads 1 vs 2") for w in cmp.warnings)
    assert cmp.by_status("matched")  # still paired by id
    same = api.compare_runs(one, one, stats=False)
    assert not any("bit-comparable" in w for w in same.warnings)
    # Merging runs planned with other threads is refused, with the reason.
    result = cli("merge", one, two, "--out", tmp_path / "merged", "--no-report")
    assert result.exit_code == 2 and "not bit-comparable: threads 1 vs 2" in result.output
    # Resuming with other threads than recorded is refused.
    result = cli("run", suite, "--resume", one, "--threads-per-worker", "2", "--no-report", "-q")
    assert result.exit_code == 2 and "contradicts the resumed run" in result.output


def _cli_run(*args: object, **env: str) -> subprocess.CompletedProcess:
    return run_cli(
        "run",
        *args,
        "--no-report",
        "--quiet",
        "--format",
        "json",
        env=subprocess_env(**env),
        timeout=180,
        check=False,
    )


def test_another_cpu_vendor_is_named_by_compare_merge_and_resume(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path,
        TINY.replace("steps: 40", "steps: 10").replace(
            "norm: [none, batch, layer]", "norm: [none]"
        ),
    )
    here = api.run_suite(load_suite(suite), tmp_path / "a", command=["t"]).run_dir.path
    vendor = manifest(here)["arith"]["cpu_vendor"]
    if vendor is None:
        pytest.skip("this machine does not say its CPU vendor")
    other = "GenuineIntel" if vendor != "GenuineIntel" else "AuthenticAMD"
    there = tmp_path / "there"
    shutil.copytree(here, there)
    made = manifest(there)
    made["arith"]["cpu_vendor"] = other
    (there / "manifest.json").write_text(json.dumps(made))
    sentence = f"not bit-comparable: {other} vs {vendor}"
    cmp = api.compare_runs(there, here, stats=False)
    assert any(w.startswith(sentence) and "last digits" in w for w in cmp.warnings)
    merged = cli("merge", there, here, "--out", tmp_path / "merged", "--no-report")
    assert merged.exit_code == 2 and sentence in merged.output
    next((there / "results").glob("*.json")).unlink()
    resumed = cli("run", suite, "--resume", there, "--no-report", "-q")
    assert resumed.exit_code == 2 and sentence in resumed.output, resumed.output


@pytest.mark.slow
def test_reproducible_mode_pins_the_kernels_and_resume_checks_them(tmp_path: Path) -> None:
    import torch

    text = TINY.replace("seeds: 2", "seeds: 1").replace(
        "norm: [none, batch, layer]", "norm: [batch, layer]"
    )
    suite = write_suite(tmp_path, text)
    native = torch.backends.cpu.get_cpu_capability()
    free = _cli_run(suite, "--out", tmp_path / "free")
    pinned = _cli_run(suite, "--out", tmp_path / "pinned", "--reproducible")
    assert free.returncode == 0 and pinned.returncode == 0, free.stderr + pinned.stderr
    free_run, pinned_run = the_run(tmp_path / "free"), the_run(tmp_path / "pinned")
    assert manifest(pinned_run)["arith"]["reproducible"] is True
    assert manifest(pinned_run)["environment"]["kernels"]["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    for rec in records(pinned_run):
        assert rec["arith"]["cpu_capability"] == arith.pinned_capability()
        assert rec["config"]["training"]["reproducible"] is True
    assert {r["arith"]["cpu_capability"] for r in records(free_run)} == {native}
    if native == arith.pinned_capability():
        print(f"this CPU's native level is {native}, the pinned one: results must be equal")
        assert finals(free_run) == finals(pinned_run)
    else:
        # Other kernels ran: their numbers may differ or, by luck of the rounding, not (an
        # AMD Zen 4 gave identical ones at AVX512 and AVX2), so only the record is checked.
        print(f"native {native} vs pinned {arith.pinned_capability()}: other kernels ran")
        cmp = api.compare_runs(free_run, pinned_run, stats=False)
        assert any(f"{native} vs {arith.pinned_capability()}" in w for w in cmp.warnings)

    # In-process (torch already initialised here, unpinned): tasks train in a fresh process.
    again = api.run_suite(
        load_suite(suite),
        tmp_path / "again",
        command=["t"],
        options=api.make_options(reproducible=True),
    )
    assert finals(again.run_dir.path) == finals(pinned_run)

    # Resume where the kernels differ from the run's: refused with one sentence.
    first = next((free_run / "results").glob("*.json"))
    first.unlink()
    if native != arith.pinned_capability():
        refused = _cli_run(suite, "--resume", free_run, ATEN_CPU_CAPABILITY="avx2")
        assert refused.returncode == 2, refused.stderr
        assert f"not bit-comparable: {native} vs AVX2" in refused.stderr
        assert "Traceback" not in refused.stderr
    resumed = _cli_run(suite, "--resume", free_run)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list((free_run / "results").glob("*.json"))) == 2


def test_threads_cannot_be_swept(tmp_path: Path) -> None:
    text = TINY.replace("norm: [none, batch, layer]", "training.threads: [1, 2]")
    result = cli("validate", write_suite(tmp_path, text))
    assert result.exit_code == 2
    assert "s.yaml:" in result.output and "selects the arithmetic" in result.output


# ATen's CPU kernel levels on x86-64, lowest first: a CPU runs its own and every one below it.
ATEN_LEVELS = ("DEFAULT", "AVX2", "AVX512")
# The tests whose numbers once depended on which kernels the tester's CPU ran.
KERNEL_SENSITIVE = (
    "tests/test_identity.py::test_reproducible_mode_pins_the_kernels_and_resume_checks_them",
    "tests/test_batched.py::test_a_diverging_member_does_not_stop_the_others",
)


def levels_below(native: str) -> list[str]:
    """The ATen levels this CPU runs (its native one and those below), or just the native one."""
    return list(ATEN_LEVELS[: ATEN_LEVELS.index(native) + 1]) if native in ATEN_LEVELS else [native]


@pytest.mark.slow
def test_kernel_sensitive_tests_pass_at_every_kernel_level_this_cpu_runs() -> None:
    import torch

    native = torch.backends.cpu.get_cpu_capability()
    assert levels_below("AVX2") == ["DEFAULT", "AVX2"] and levels_below("SVE256") == ["SVE256"]
    for level in levels_below(native):
        # Another machine's kernels, as far as this CPU can run them: a test that asserts what
        # only some kernels give fails here, not on the next person's laptop.
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_SENSITIVE],
            cwd=ROOT,
            env=subprocess_env(ATEN_CPU_CAPABILITY=level.lower()),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"ATEN_CPU_CAPABILITY={level.lower()}:\n{done.stdout}"


@pytest.mark.slow
def test_the_committed_ci_baseline_is_matched_bit_for_bit_or_said_not_to_be(tmp_path: Path) -> None:
    # The README's CI recipe on whatever CPU this is: identical numbers, or a sentence that
    # names why not (the baseline's CPU vendor, say) and differences of the size it explains.
    baseline = ROOT / "reports/baselines/ci-smoke"
    done = _cli_run(ROOT / "suites/ci-smoke.yaml", "--out", tmp_path, "--reproducible")
    assert done.returncode == 0, done.stderr
    fresh = the_run(tmp_path, "ci-smoke")
    shown = run_cli("compare", baseline, fresh, timeout=120)
    assert shown.returncode == 0, shown.stderr
    expected = arith.not_bit_comparable(
        arith.signature(manifest(baseline)), arith.signature(manifest(fresh))
    )
    if expected is None:
        assert finals(fresh) == finals(baseline), "same kernels, other numbers"
        assert "not bit-comparable" not in shown.stdout + shown.stderr
        return
    print(expected)
    assert expected in shown.stdout + shown.stderr
    for name, (acc, loss, _) in finals(baseline).items():
        fresh_acc, fresh_loss, _ = finals(fresh)[name]
        assert abs(fresh_acc - acc) <= 0.01 and fresh_loss == pytest.approx(loss, rel=1e-3)
