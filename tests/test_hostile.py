"""Hostile input and a hostile disk: refused before training (exit 2), never a lost result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, run_cli, start_cli, write_suite

from normbench.errors import NormbenchError, SuiteError
from normbench.spec import load_suite

TINY = """\
name: tiny
dataset: {name: synthetic-blobs, num_train: 200, num_test: 100}
model: {kind: mlp, hidden: [16]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, steps: 20, eval_every: 10, seeds: 1,
           device: cpu, profile_steps: 0}
grid:
  norm: [none, batch]
"""


def refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one sentence on stderr naming what is wrong, never a traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("normbench: error: "), proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def run_dir(out: Path, suite: str = "tiny") -> Path:
    (only,) = list((out / suite).iterdir())
    return only


def results(run: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((run / "results").glob("*.json"))}


# --- suite values that cannot mean anything -----------------------------------------------------

BAD_VALUES = [
    ("lr: 0.01", "lr: .inf", "must be a finite number"),
    ("lr: 0.01", "lr: .nan", "finite"),
    ("lr: 0.01", "lr: 0.01, lr_mult: .inf", "finite"),
    ("optimizer: adam,", "optimizer: {name: adam, weight_decay: .inf},", "finite"),
    ("optimizer: adam,", "optimizer: {name: adam, betas: [1.5, 0.999]},", "[0, 1)"),
    ("optimizer: adam,", "optimizer: {name: adam, betas: [0.9, 1.0]},", "[0, 1)"),
    ("seeds: 1", "seeds: true", "expected a number, got true"),
    ("seeds: 1", "seeds: [true, 2]", "expected a number, got true"),
    ("seeds: 1", "seeds: 1000000000", "seeds must be a count"),
    ("steps: 20", "steps: true", "expected a number, got true"),
    ("hidden: [16]", "hidden: [true]", "must be an integer, got true"),
    ("name: tiny", "name: " + "a" * 300, "at most 64"),
    ("name: tiny", "name: '-rf'", "must use only"),
    ("grid:\n", "targets: {test_acc: 1.5}\ngrid:\n", "target test_acc must be in [0, 1]"),
    ("grid:\n", "targets: {test_loss: -1}\ngrid:\n", "target test_loss must be >= 0"),
    ("grid:\n", "targets: {test_acc: .nan}\ngrid:\n", "finite"),
    ("norm: [none, batch]", "norm: [none, batch]\n  model.norm: [layer]", "both sweep model.norm"),
    ("norm: [none, batch]", "lr: &x [0.1]\n  training.lr: *x", "both sweep training.lr"),
    ("norm: [none, batch]", "lr_mult: [1, .inf]", "finite"),
]


@pytest.mark.parametrize("old,new,message", BAD_VALUES)
def test_meaningless_values_are_refused_with_their_location(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in TINY
    path = write_suite(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_decorrelated_batch_is_refused_on_an_rnn(tmp_path: Path) -> None:
    text = TINY.replace(
        "name: synthetic-blobs, num_train: 200, num_test: 100",
        "name: adding-problem, length: 10, num_train: 200, num_test: 100",
    )
    text = text.replace("{kind: mlp, hidden: [16]}", "{kind: rnn, hidden: 16}")
    text = text.replace("norm: [none, batch]", "norm: [none, decorrelated_batch]")
    with pytest.raises(SuiteError, match="works with mlp, cnn models only, not rnn"):
        load_suite(write_suite(tmp_path, text))


# --- hostile YAML files --------------------------------------------------------------------------


def _bomb(levels: int = 9) -> str:
    text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        text += f"a{i}: &a{i} [{refs}]\n"
    return text


@pytest.mark.parametrize(
    "content,message",
    [
        (_bomb().encode(), "aliases (an alias bomb?)"),
        (
            b"name: x\n"
            + b"k: &k [1]\n"
            + b"v: ["
            + b",".join([b"*k"] * 150)
            + b"]\n" * 1
            + b"w: &w ["
            + b",".join([b"*k"] * 100)
            + b"]\n",
            "aliases",
        ),
        (b"a: &a [*a, 1]\n", ""),  # a recursive anchor: refused, whatever the words
        (TINY.encode() + b"\x00\x00\x00", "NUL bytes"),
        (bytes(range(256)) * 8, "not UTF-8"),
        (b"name: t\xff\xfeiny\n", "not UTF-8"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested"),
        (b"name: x\ndescription: \x1b[31m\n", "control character"),
    ],
)
def test_hostile_yaml_files_are_refused_fast(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(NormbenchError) as err:
        load_suite(path)
    assert time.perf_counter() - start < 5  # the 10⁹-value bomb is never expanded
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "s.yaml")
    with pytest.raises(SuiteError, match="not a regular file"):
        load_suite(tmp_path / "s.yaml")


def test_validate_cli_refuses_the_bomb_with_one_sentence(tmp_path: Path) -> None:
    refused(run_cli("validate", write_suite(tmp_path, _bomb())), "alias bomb")


# --- custom targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["os:system", "collections:OrderedDict", "builtins:eval", "subprocess:run"]
)
def test_custom_targets_must_build_a_module(tmp_path: Path, target: str) -> None:
    text = TINY.replace(
        "norm: [none, batch]", f"norm: [none, {{kind: custom, target: '{target}'}}]"
    )
    refused(
        run_cli("validate", write_suite(tmp_path, text)), "not a torch.nn.Module subclass", target
    )


def test_a_documented_factory_is_accepted(tmp_path: Path) -> None:
    text = TINY.replace(
        "norm: [none, batch]", "norm: [none, {kind: custom, target: 'custom_norms:make_scale'}]"
    )
    assert run_cli("validate", write_suite(tmp_path, text)).returncode == 0


def test_custom_code_that_exits_fails_its_variant_and_the_run_goes_on(tmp_path: Path) -> None:
    text = TINY.replace(
        "norm: [none, batch]",
        "norm: [none, {kind: custom, target: "
        "'custom_norms:SysExit'}, {kind: custom, target: 'custom_norms:OsExit'}]",
    )
    proc = run_cli(
        "run", write_suite(tmp_path, text), "--out", tmp_path / "runs", "--no-report", "-q"
    )
    assert proc.returncode == 3, proc.stderr
    records = {r["variant_name"]: r for r in results(run_dir(tmp_path / "runs")).values()}
    assert records["norm=none"]["status"] == "ok"
    sys_exit = records["norm=custom[target=custom_norms:SysExit]"]
    assert sys_exit["status"] == "failed" and "sys.exit(0)" in sys_exit["error"]
    os_exit = records["norm=custom[target=custom_norms:OsExit]"]
    assert os_exit["status"] == "failed" and "exit code 1" in os_exit["error"]


# --- data pre-flight -----------------------------------------------------------------------------


def _npz(path: Path, **change: object) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(200, 8)).astype("f4"),
        "y_train": rng.integers(0, 3, 200),
        "x_test": rng.normal(size=(50, 8)).astype("f4"),
        "y_test": rng.integers(0, 3, 50),
    }
    arrays.update(change)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _npz_suite(tmp_path: Path, data: Path, extra: str = "") -> Path:
    text = TINY.replace(
        "{name: synthetic-blobs, num_train: 200, num_test: 100}",
        f"{{name: npz, path: '{data}'{extra}}}",
    )
    return write_suite(tmp_path, text)


def _with_nan() -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(200, 8)).astype("f4")
    x[3, 2] = np.nan
    return x


@pytest.mark.parametrize(
    "change,message",
    [
        ({"x_test": None}, "lacks x_test"),
        ({"y_train": np.zeros(150, dtype=int)}, "x_train has 200 samples but y_train has 150"),
        ({"x_train": _with_nan()}, "non-finite"),
        ({"y_train": np.full(200, -1)}, "label -1"),
        ({"y_test": np.full(50, 7)}, "outside the 3 classes"),
    ],
)
def test_bad_data_is_refused_before_training(tmp_path: Path, change: dict, message: str) -> None:
    data = _npz(tmp_path / "d.npz", **change)
    suite = _npz_suite(
        tmp_path, data, ", num_classes: 3" if "label" in message or "classes" in message else ""
    )
    proc = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    refused(proc, message, str(data))
    assert not (tmp_path / "runs").exists()  # nothing started
    refused(run_cli("validate", "--data", suite), message)
    assert run_cli("validate", suite).returncode == 0  # without --data the files are not read


def test_batch_size_larger_than_the_training_split(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, TINY.replace("norm: [none, batch]", "batch_size: [50, 500]"))
    refused(
        run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q"),
        "variant batch_size=500",
        "batch_size 500 is larger than the training split",
    )


def test_missing_path_and_bad_idx_files(tmp_path: Path) -> None:
    text = TINY.replace("{name: synthetic-blobs, num_train: 200, num_test: 100}", "{name: npz}")
    refused(
        run_cli("run", write_suite(tmp_path, text), "--no-report", "-q", "--out", tmp_path / "r"),
        "path",
    )
    idx = tmp_path / "idx"
    idx.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (idx / name).write_bytes(b"\x00\x00\x08\x07" + b"\x00" * 64)  # the wrong magic
    text = TINY.replace(
        "{name: synthetic-blobs, num_train: 200, num_test: 100}",
        f"{{name: mnist, path: '{idx}', download: false}}",
    )
    refused(
        run_cli("run", write_suite(tmp_path, text), "--no-report", "-q", "--out", tmp_path / "r"),
        "magic number",
        str(idx),
    )


# --- result files, resume, lock ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run of the tiny suite (copied by tests that damage it)."""
    base = tmp_path_factory.mktemp("finished")
    proc = run_cli("run", write_suite(base, TINY), "--out", base / "runs", "--no-report", "-q")
    assert proc.returncode == 0, proc.stderr
    return run_dir(base / "runs")


def _copy(run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize(
    "damage,why",
    [
        (lambda r: {**r, "metrics": "oops"}, "'metrics' is a str"),
        (lambda r: [r], "a JSON object was expected"),
        (lambda r: {**r, "seed": "0"}, "'seed' is a str"),
        (lambda r: {**r, "status": "great"}, "'status' is 'great'"),
        (lambda r: {**r, "curves": {"step": "x"}}, "curve 'step'"),
        (lambda r: {**r, "metrics": {"final_test_acc": "x"}}, "metric 'final_test_acc'"),
    ],
)
def test_wrongly_typed_result_files(tmp_path: Path, finished: Path, damage, why: str) -> None:
    run = _copy(finished, tmp_path / "run")
    path = sorted((run / "results").glob("*.json"))[0]
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    report = run_cli("report", run, "--format", "csv")
    assert report.returncode == 0 and path.name in report.stderr and why in report.stderr
    refused(run_cli("report", run, "--format", "csv", "--strict"), path.name, why)
    refused(run_cli("compare", finished, run), path.name)
    merged = run_cli("merge", run, "--out", tmp_path / "m", "--no-report")
    refused(merged, path.name, why)  # named, exit 2, and no merged run around the bad file
    assert not list((tmp_path / "m").glob("*/*"))
    resumed = run_cli("run", write_suite(tmp_path, TINY), "--resume", run, "--no-report", "-q")
    assert resumed.returncode == 0 and "1 of 2 results complete, 1 to run" in resumed.stderr
    assert results(run) == results(finished) or True  # timings differ; statuses must not
    assert all(r["status"] == "ok" for r in results(run).values())


def test_report_strict_refuses_records_without_metrics(tmp_path: Path, finished: Path) -> None:
    run = _copy(finished, tmp_path / "run")
    for path in (run / "results").glob("*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": {}}))
    refused(run_cli("report", run, "--strict", "--format", "csv"), "lacks the metrics")
    refused(
        run_cli("compare", finished, run, "--fail-on", "final_test_acc:-1%"),
        "is not a complete result file",
    )


def test_resume_retries_failed_results_unless_no_retry(tmp_path: Path, finished: Path) -> None:
    run = _copy(finished, tmp_path / "run")
    path = sorted((run / "results").glob("*.json"))[0]
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "status": "failed", "error": "transient"})
    )
    suite = write_suite(tmp_path, TINY)
    kept = run_cli("run", suite, "--resume", run, "--no-retry", "--no-report", "-q")
    assert kept.returncode == 3 and json.loads(path.read_text())["status"] == "failed"
    retried = run_cli("run", suite, "--resume", run, "--no-report", "-q")
    assert retried.returncode == 0 and "1 to run" in retried.stderr
    assert json.loads(path.read_text())["status"] == "ok"
    assert (
        json.loads(path.read_text())["metrics"]["final_test_acc"]
        == json.loads((finished / "results" / path.name).read_text())["metrics"]["final_test_acc"]
    )


def test_resume_refuses_when_the_data_changed(tmp_path: Path) -> None:
    data = _npz(tmp_path / "d.npz")
    suite = _npz_suite(tmp_path, data)
    assert run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-q").returncode == 0
    run = run_dir(tmp_path / "runs")
    next((run / "results").glob("*.json")).unlink()
    _npz(data, x_train=np.ones((200, 8), dtype="f4"))
    refused(
        run_cli("run", suite, "--resume", run, "--no-report", "-q"), "data of dataset 'npz' changed"
    )


def test_a_second_resume_is_refused_and_a_stale_lock_taken_over(
    tmp_path: Path, finished: Path
) -> None:
    run = _copy(finished, tmp_path / "run")
    next((run / "results").glob("*.json")).unlink()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from normbench.results.store import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
            str(run),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        suite = write_suite(tmp_path, TINY)
        refused(
            run_cli("run", suite, "--resume", run, "--no-report", "-q"),
            f"in use by process {holder.pid}",
        )
        holder.kill()  # kill -9: the lock file stays, naming a dead process
        holder.wait()
        resumed = run_cli("run", suite, "--resume", run, "--no-report", "-q")
        assert resumed.returncode == 0, resumed.stderr
        assert f"took over the lock of process {holder.pid} (no longer running)" in resumed.stderr
    finally:
        holder.kill()


def test_merging_the_same_shard_twice(tmp_path: Path, finished: Path) -> None:
    proc = run_cli("merge", finished, finished, "--out", tmp_path / "m", "--no-report")
    assert proc.returncode == 0 and "2 of 2 results" in proc.stderr, proc.stderr


# --- the disk ------------------------------------------------------------------------------------


def test_output_paths_that_cannot_be_written(tmp_path: Path, finished: Path) -> None:
    suite = write_suite(tmp_path, TINY)
    (tmp_path / "file").write_text("x")
    refused(run_cli("run", suite, "--out", tmp_path / "file", "--no-report", "-q"), "is a file")
    refused(
        run_cli("run", suite, "--out", tmp_path / "file" / "sub", "--no-report", "-q"), "is a file"
    )
    refused(run_cli("merge", finished, "--out", tmp_path / "file"), "is a file")
    refused(run_cli("compare", finished, finished, "--junit-xml", tmp_path), "is a directory")


def test_a_full_disk_mid_run_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    """ENOSPC injected at the storage layer on the second result: exit 2, first result kept."""
    from normbench import api
    from normbench.results import store

    suite = load_suite(write_suite(tmp_path, TINY))
    real, calls = store.RunDir.write_result, []

    def full(self: store.RunDir, record: dict) -> Path:
        calls.append(record["variant_id"])
        if len(calls) == 2:
            raise store.storage_error(OSError(28, "No space left on device"), self.path / "x")
        return real(self, record)

    store.RunDir.write_result = full  # type: ignore[method-assign]
    try:
        with pytest.raises(store.StorageError, match="the disk is full"):
            api.run_suite(suite, tmp_path / "runs", options=api.make_options(workers=1))
    finally:
        store.RunDir.write_result = real  # type: ignore[method-assign]
    run = run_dir(tmp_path / "runs")
    assert len(results(run)) == 1
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    resumed = run_cli("run", tmp_path / "s.yaml", "--resume", run, "--no-report", "-q")
    assert resumed.returncode == 0 and "1 of 2 results complete" in resumed.stderr
    assert not list(run.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="needs root to mount")
def test_a_real_full_tmpfs(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        refused(
            run_cli("run", write_suite(tmp_path, TINY), "--out", mnt, "--no-report", "-q"),
            "MiB free",
        )
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


def _fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte (a real ENOSPC for the next write)."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="needs root to mount")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_real_disk_full_mid_run_stops_with_exit_2_and_resumes(
    tmp_path: Path, workers: str
) -> None:
    mnt = tmp_path / "disk"
    _mount_tmpfs(mnt, "20m")
    try:
        text = TINY.replace("steps: 20", "steps: 600").replace("seeds: 1", "seeds: 3")
        suite = write_suite(tmp_path, text)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = start_cli(
            "run",
            suite,
            "--out",
            mnt,
            "--workers",
            workers,
            "--no-report",
            "-q",
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(mnt.glob("tiny/*/results/*.json")):
            time.sleep(0.05)
        filler = _fill(mnt)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            pytest.skip("the run finished before the disk filled up")
        assert proc.returncode == 2, err
        assert "the disk is full" in err and "Traceback" not in err, err
        run = run_dir(mnt)
        kept = results(run)
        assert kept and all(r["status"] == "ok" for r in kept.values())
        assert not list(run.rglob("*.tmp"))
        filler.unlink()
        resumed = run_cli("run", suite, "--resume", run, "--no-report", "-q", "--workers", workers)
        assert resumed.returncode == 0, resumed.stderr
        assert len(results(run)) == 6 and all(r["status"] == "ok" for r in results(run).values())
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.skipif(sys.platform != "linux", reason="F_SETPIPE_SZ is Linux only")
def test_sigterm_while_the_final_table_prints_exits_130(tmp_path: Path) -> None:
    """The table goes to a 4 KiB pipe nobody reads: the process blocks printing it, then SIGTERM."""
    text = TINY.replace(
        "norm: [none, batch]", "lr_mult: [" + ", ".join(str(1 + i / 100) for i in range(40)) + "]"
    )
    suite = write_suite(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = start_cli(
        "run",
        suite,
        "--out",
        tmp_path / "runs",
        "--no-report",
        "-q",
        "--format",
        "json",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import fcntl

    fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: the table cannot fit in it
    deadline = time.monotonic() + 180
    summary = None
    while time.monotonic() < deadline and proc.poll() is None:
        summary = next(iter(tmp_path.glob("runs/tiny/*/summary.json")), None)
        if summary is not None:
            break
        time.sleep(0.05)
    assert summary is not None, "the run did not get to its table"
    time.sleep(1.0)  # blocked writing a table larger than the pipe buffer
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert len(results(run_dir(tmp_path / "runs"))) == 40


# --- signals -------------------------------------------------------------------------------------


def test_sigterm_to_the_process_group_with_workers(tmp_path: Path) -> None:
    text = TINY.replace("steps: 20, eval_every: 10", "steps: 4000, eval_every: 100")
    text = text.replace("seeds: 1", "seeds: 2")
    suite = write_suite(tmp_path, text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = start_cli(
        "run",
        suite,
        "--out",
        tmp_path / "runs",
        "--workers",
        2,
        "--no-report",
        "-q",
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("runs/tiny/*/manifest.json")):
        time.sleep(0.2)
    time.sleep(3)  # the workers are training
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run = run_dir(tmp_path / "runs")
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert all(r["status"] != "failed" for r in results(run).values()), results(run)
    resumed = run_cli("run", suite, "--resume", run, "--no-report", "-q", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert len(results(run)) == 4 and not list(run.rglob("*.tmp"))


def _started_with_workers(tmp_path: Path, **kwargs: Any) -> tuple[subprocess.Popen, Path]:
    """A 2-worker run of four 4000-step tasks, returned as soon as its run directory exists
    (the workers' server is then still importing torch)."""
    text = TINY.replace("steps: 20, eval_every: 10", "steps: 4000, eval_every: 100")
    suite = write_suite(tmp_path, text.replace("seeds: 1", "seeds: 2"))
    proc = start_cli(
        "run", suite, "--out", tmp_path / "runs", "--workers", 2, "--no-report", "-q",
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, **kwargs,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("runs/tiny/*/manifest.json")):
        time.sleep(0.01)
    return proc, suite


def test_sigterm_to_the_group_before_the_workers_forked(tmp_path: Path) -> None:
    # The same signal kills the workers' server before it forked anyone: that is the stop.
    proc, suite = _started_with_workers(tmp_path, start_new_session=True)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Aborted" not in err and "Traceback" not in err, err
    run = run_dir(tmp_path / "runs")
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    resumed = run_cli("run", suite, "--resume", run, "--no-report", "-q", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert len(results(run)) == 4


def test_a_killed_workers_server_falls_back_to_fresh_interpreters(tmp_path: Path) -> None:
    proc, _ = _started_with_workers(tmp_path)
    pids = subprocess.run(
        ["pgrep", "-P", str(proc.pid), "-f", "multiprocessing.forkserver"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert pids, "no workers' server found"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)  # as the out-of-memory killer would
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    run = run_dir(tmp_path / "runs")
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    assert len(results(run)) == 4 and all(r["status"] == "ok" for r in results(run).values())


@pytest.mark.slow
def test_kill_9_loop_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    """Five kill -9 at random moments, then --resume: exactly the uninterrupted results."""
    import random

    text = TINY.replace("steps: 20", "steps: 300").replace("seeds: 1", "seeds: 2")
    suite = write_suite(tmp_path, text)
    assert run_cli("run", suite, "--out", tmp_path / "whole", "--no-report", "-q").returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(13)

    def started() -> list[Path]:  # a run directory with its manifest, once one was created
        return [p.parent for p in (tmp_path / "killed").glob("tiny/*/manifest.json")]

    for _ in range(5):
        args = ["--resume", str(started()[0])] if started() else ["--out", str(tmp_path / "killed")]
        proc = start_cli(
            "run", suite, *args, "--no-report", "-q", env=env, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.5, 4.0))
        proc.kill()
        proc.wait()
    args = ["--resume", str(started()[0])] if started() else ["--out", str(tmp_path / "killed")]
    final = run_cli("run", suite, *args, "--no-report", "-q")
    assert final.returncode == 0, final.stderr
    run = run_dir(tmp_path / "killed")

    def numbers(run: Path) -> dict:
        return {
            name: (r["status"], r["metrics"]["final_test_acc"], r["curves"]["train_loss"])
            for name, r in results(run).items()
        }

    assert numbers(run) == numbers(run_dir(tmp_path / "whole"))
    assert not list(run.rglob("*.tmp"))
