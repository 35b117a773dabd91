"""Run directories and files that are not what they seem: copies, links, FIFOs, tampering."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_cli, start_cli, suite_text, write_suite

from normbench.report.synthetic import make_run, write_raw
from normbench.results.store import latest_run_dir


def _run(path: Path, started: str, **kw: object) -> Path:
    """A synthetic run whose manifest records its own name and start time."""
    run = make_run(path, seeds=2, steps=200, eval_every=100, **kw)  # type: ignore[arg-type]
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(run_id=run.name, started=started, finished=started)
    write_raw(run / "manifest.json", manifest)
    return run


def _first_result(run: Path) -> Path:
    return sorted((run / "results").glob("*.json"))[0]


# --- latest ---------------------------------------------------------------------------------


def test_latest_is_the_newest_by_its_manifest_and_never_a_copy(tmp_path: Path) -> None:
    base = tmp_path / "reports" / "runs" / "synthetic"
    old = _run(base / "20260101-000000-ffff", "2026-01-01T00:00:00+00:00")
    new = _run(base / "20260102-000000-0000", "2026-01-02T00:00:00+00:00")
    # A name sorts last but the run is older; a copy of the old run under a name that sorts last.
    shutil.copytree(old, base / "20261231-235959-ffff")
    shutil.copytree(old, base / "zzz copy of the old run")
    assert latest_run_dir(base.parent, "synthetic").path == new
    # The CLI writes its report into the run 'latest' names, never into a copy.
    out = run_cli("report", "latest", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (new / "report.html").is_file()
    assert not (base / "20261231-235959-ffff" / "report.html").exists()
    assert not (base / "zzz copy of the old run" / "report.html").exists()


def test_a_resumed_run_is_newer_than_one_started_after_it(tmp_path: Path) -> None:
    base = tmp_path / "synthetic"
    first = _run(base / "20260101-000000-aaaa", "2026-01-01T00:00:00+00:00")
    _run(base / "20260102-000000-bbbb", "2026-01-02T00:00:00+00:00")
    manifest = json.loads((first / "manifest.json").read_text())
    manifest["resumes"] = [{"started": "2026-01-03T00:00:00+00:00"}]
    write_raw(first / "manifest.json", manifest)
    assert latest_run_dir(tmp_path, "synthetic").path == first


def test_only_copies_is_one_sentence(tmp_path: Path) -> None:
    run = _run(tmp_path / "synthetic" / "20260101-000000-aaaa", "2026-01-01T00:00:00+00:00")
    run.rename(tmp_path / "synthetic" / "renamed")
    from normbench.errors import InputError

    with pytest.raises(InputError, match="copied or renamed run"):
        latest_run_dir(tmp_path, "synthetic")


def test_run_records_its_own_name(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path, suite_text(TINY, {"seeds: 2": "seeds: 1", "steps: 40": "steps: 4"})
    )
    out = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((run / "manifest.json").read_text())["run_id"] == run.name


# --- names that cannot collide --------------------------------------------------------------


def test_a_file_manager_copy_is_not_an_extra_seed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", norms=("none",), placements=("pre",), lr_mults=(1,), seeds=2)
    original = _first_result(run)
    record = json.loads(original.read_text())
    record["metrics"]["final_test_acc"] = 0.0  # would move the mean if it counted
    for name in (f"{original.stem} (1).json", f"{original.stem}.json.json", "copy.json"):
        write_raw(run / "results" / name, record)
    before = run_cli("report", run, "--format", "json", "--no-plots")
    assert before.returncode == 0, before.stderr
    (variant,) = json.loads(before.stdout)
    assert variant["ok"] == 2 and variant["final_test_acc_n"] == 2
    assert variant["final_test_acc"] > 0.5  # the copies' 0.0 never entered the mean
    assert f"{original.stem} (1).json holds the result {original.name}" in before.stderr
    assert before.stderr.count("is ignored") == 3
    cmp = run_cli("compare", run, run)
    assert cmp.returncode == 0, cmp.stderr
    assert "(1).json holds the result" in cmp.stderr


# --- bounded reads, non-regular files ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge", "directory"])
@pytest.mark.parametrize("command", ["report", "compare", "merge"])
def test_a_result_that_is_no_regular_file_is_refused(
    tmp_path: Path, kind: str, command: str
) -> None:
    run = make_run(tmp_path / "run", norms=("none",), placements=("pre",), lr_mults=(1,), seeds=2)
    victim = _first_result(run)
    victim.unlink()
    if kind == "dev-zero":
        victim.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(victim)
    elif kind == "huge":
        with open(victim, "wb") as fh:  # sparse: 300 MiB on paper, nothing on disk
            fh.truncate(300 * 2**20)
    else:
        victim.mkdir()
    args = {
        "report": ["report", run, "--no-plots"],
        "compare": ["compare", run, run],
        "merge": ["merge", run, "--out", tmp_path / "merged"],
    }[command]
    start = time.monotonic()
    out = run_cli(*args, timeout=60)
    assert time.monotonic() - start < 60
    assert out.returncode == 2, out.stderr
    assert str(victim) in out.stderr and "refused" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert not list((tmp_path / "merged").glob("*/*"))  # no merged run, not even a half one


def test_resume_replaces_a_linked_device_with_a_computed_result(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path, suite_text(TINY, {"seeds: 2": "seeds: 1", "steps: 40": "steps: 4"})
    )
    out = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    victim = _first_result(run)
    victim.unlink()
    victim.symlink_to("/dev/zero")
    out = run_cli("run", suite, "--resume", run, "--no-report", "-q", timeout=120)
    assert out.returncode == 0, out.stderr
    assert victim.is_file() and not victim.is_symlink()
    assert json.loads(victim.read_text())["metrics"]["final_test_acc"] is not None


# --- results with no metrics, merge ----------------------------------------------------------


def test_a_result_without_metrics_is_recomputed_by_resume_and_refused_by_compare(
    tmp_path: Path,
) -> None:
    suite = write_suite(
        tmp_path, suite_text(TINY, {"seeds: 2": "seeds: 1", "steps: 40": "steps: 4"})
    )
    out = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    victim = _first_result(run)
    full = json.loads(victim.read_text())
    write_raw(victim, {"variant_id": full["variant_id"], "seed": full["seed"], "status": "ok"})
    cmp = run_cli("compare", run, run)
    assert cmp.returncode == 2
    assert f"{victim} is not a complete result file" in cmp.stderr
    merged = run_cli("merge", run, "--out", tmp_path / "merged")
    assert merged.returncode == 2 and str(victim) in merged.stderr
    out = run_cli("run", suite, "--resume", run, "--no-report", "-q")
    assert out.returncode == 0, out.stderr
    again = json.loads(victim.read_text())
    assert again["metrics"]["final_test_acc"] == full["metrics"]["final_test_acc"]


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("future", "schema_version 99, newer than this normbench understands"),
        ("truncated", "truncated JSON"),
        ("typed", "'seed' is a str, expected an integer"),
    ],
)
def test_merge_names_a_damaged_result_and_writes_nothing(
    tmp_path: Path, damage: str, words: str
) -> None:
    run = make_run(tmp_path / "run", norms=("none",), placements=("pre",), lr_mults=(1,), seeds=2)
    victim = _first_result(run)
    record = json.loads(victim.read_text())
    if damage == "future":
        write_raw(victim, {**record, "schema_version": 99})
    elif damage == "truncated":
        victim.write_text(victim.read_text()[:200])
    else:
        write_raw(victim, {**record, "seed": str(record["seed"])})
    out = run_cli("merge", run, "--out", tmp_path / "merged")
    assert out.returncode == 2, out.stderr
    assert str(victim) in out.stderr and words in out.stderr
    assert not list((tmp_path / "merged").glob("*/*"))


def test_merge_keeps_each_source_version(tmp_path: Path) -> None:
    a = _run(tmp_path / "a" / "20260101-000000-aaaa", "2026-01-01T00:00:00+00:00")
    manifest = json.loads((a / "manifest.json").read_text())
    write_raw(a / "manifest.json", {**manifest, "normbench_version": "0.9.0"})
    out = run_cli("merge", a, "--out", tmp_path / "merged")
    assert out.returncode == 0, out.stderr
    (merged,) = (tmp_path / "merged" / "synthetic").iterdir()
    m = json.loads((merged / "manifest.json").read_text())
    assert m["merged_from"][0]["normbench_version"] == "0.9.0"
    assert m["run_id"] == merged.name and m["merged_by"]


def test_sigterm_during_merge_leaves_no_half_merged_run(tmp_path: Path) -> None:
    shards = [
        make_run(tmp_path / f"shard{k}", seeds=3, steps=2000, eval_every=10, diagnostics=())
        for k in range(2)
    ]
    out = tmp_path / "merged"
    # Several delays: early (before anything), mid-copy, late; each must leave all or nothing.
    outcomes = set()
    for delay in (0.6, 0.9, 1.2, 1.5, 1.8, 2.2, 3.0):
        proc = start_cli("merge", *shards, "--out", out, "--no-report", text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        outcomes.add(proc.returncode)
        for run in (out / "synthetic").glob("*") if (out / "synthetic").exists() else []:
            assert (run / "manifest.json").is_file(), f"half-merged {run} after {delay} s"
            assert len(list((run / "results").glob("*.json"))) == len(
                list((shards[0] / "results").glob("*.json"))
            )
    assert 130 in outcomes  # at least one signal landed while merging


# --- compare when nothing finished -----------------------------------------------------------


def test_compare_of_runs_where_every_seed_diverged_says_so(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        run = make_run(tmp_path / f"r{k}", norms=("none",), placements=("pre",), lr_mults=(1,))
        for path in (run / "results").glob("*.json"):
            record = json.loads(path.read_text())
            record["status"] = "diverged"
            record["diverged_at_step"] = 100
            record["metrics"] = {m: None for m in record["metrics"]}
            write_raw(path, record)
        runs.append(run)
    out = run_cli("compare", *runs, "--fail-on", "final_test_acc:-0.5")
    assert out.returncode == 2
    assert "every seed diverged or failed" in out.stderr and "3 diverged" in out.stderr
    assert "not recorded" not in out.stderr
    plain = run_cli("compare", *runs)  # no gate: not an empty table that reads as a pass
    assert plain.returncode == 2 and "nothing to compare" in plain.stderr


# --- the dataset cache -----------------------------------------------------------------------


def test_a_tampered_dataset_cache_is_detected_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from normbench.data.cache import CHECKSUM
    from normbench.data.registry import build_counts, clear_memo, load_dataset

    monkeypatch.setenv("NORMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NORMBENCH_OFFLINE", "1")
    clear_memo()
    cfg = {"name": "mnist1d", "num_samples": 120}
    expected = load_dataset(cfg).y_train
    (cached,) = (tmp_path / "cache" / "datasets").glob("*.npz")
    with np.load(cached) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert CHECKSUM in arrays
    arrays["y_train"] = (arrays["y_train"] + 1) % 10  # every label moved, the checksum kept
    np.savez(cached, **arrays)
    clear_memo()
    builds = build_counts()["mnist1d"]
    with pytest.warns(UserWarning, match="does not match its checksum"):
        again = load_dataset(cfg).y_train
    np.testing.assert_array_equal(again, expected)
    assert build_counts()["mnist1d"] == builds + 1
    clear_memo()


# --- beyond the list: lock files, planted links, JSON that is valid but hostile ----------------


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_planted_lock_file_is_one_sentence_not_a_hang(tmp_path: Path, kind: str) -> None:
    suite = write_suite(
        tmp_path, suite_text(TINY, {"seeds: 2": "seeds: 1", "steps: 40": "steps: 4"})
    )
    out = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    lock = run / ".normbench.lock"
    lock.unlink(missing_ok=True)
    os.mkfifo(lock) if kind == "fifo" else lock.symlink_to("/dev/zero")
    out = run_cli("run", suite, "--resume", run, "--no-report", "-q", timeout=60)
    assert out.returncode == 2
    assert f"{lock} is a" in out.stderr and "remove it" in out.stderr


def test_report_replaces_planted_links_instead_of_writing_through_them(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", norms=("none", "batch"), placements=("pre",), lr_mults=(1,))
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (run / "plots").mkdir()
    for name in ("report.md", "report.html", "plots/curves_step.png"):
        (run / name).symlink_to(victim)
    out = run_cli("report", run)
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "keep me"
    assert not (run / "report.md").is_symlink() and (run / "report.md").stat().st_size > 100


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"seed": ' + "9" * 5000 + "}", "digits"),
    ],
    ids=["deep", "bigint"],  # short ids: the test id goes into the CLI's environment
)
def test_valid_but_hostile_json_is_one_sentence(tmp_path: Path, text: str, words: str) -> None:
    run = make_run(tmp_path / "run", norms=("none",), placements=("pre",), lr_mults=(1,), seeds=2)
    victim = _first_result(run)
    victim.write_text(text)
    out = run_cli("compare", run, run)
    assert out.returncode == 2 and str(victim) in out.stderr and words in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("where", ["resolved", "record"])
def test_a_variant_id_that_is_a_path_never_reaches_the_file_system(
    tmp_path: Path, where: str
) -> None:
    run = make_run(tmp_path / "run", norms=("none",), placements=("pre",), lr_mults=(1,), seeds=1)
    escape = "../../escaped"
    resolved = json.loads((run / "resolved.json").read_text())
    victim = _first_result(run)
    if where == "resolved":
        resolved["variants"][0]["id"] = escape
        write_raw(run / "resolved.json", resolved)
    else:
        write_raw(victim, {**json.loads(victim.read_text()), "variant_id": escape})
    out = run_cli("merge", run, "--out", tmp_path / "merged")
    assert out.returncode == 2, out.stderr
    assert "not a plain name" in out.stderr
    assert not list(tmp_path.rglob("escaped*"))
