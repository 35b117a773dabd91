"""The boundary around the user's code: exits, prints, odd arrays, per-process data, RNGs."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, start_cli, subprocess_env

from normbench.data.sources import loaded_array
from normbench.errors import InputError

SUITE = """\
name: user
dataset: {{name: custom, target: "hostile_code:{loader}"{loader_options}}}
model: {{kind: custom, target: "hostile_code:{factory}"{norm}}}
training: {{optimizer: adam, lr: 0.01, batch_size: 16, steps: 4, eval_every: 2, seeds: {seeds},
           device: cpu, profile_steps: 0}}
"""


def suite(
    tmp_path: Path,
    loader: str = "loader",
    factory: str = "small_net",
    *,
    norm: str = "",
    seeds: int = 1,
    loader_options: str = "",
) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        SUITE.format(
            loader=loader,
            factory=factory,
            norm=f", norm: {norm}" if norm else "",
            seeds=seeds,
            loader_options=f", options: {loader_options}" if loader_options else "",
        )
    )
    return path


def run(tmp_path: Path, path: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_cli(
        "run", path, "--out", tmp_path / "runs", "--no-report", "--no-rel-cost", "-q", *args,
        **kwargs,
    )  # fmt: skip


def records(tmp_path: Path) -> list[dict]:
    (run_dir,) = (tmp_path / "runs" / "user").iterdir()
    return [json.loads(p.read_text()) for p in sorted((run_dir / "results").glob("*.json"))]


# --- exits and interrupts become one sentence naming the target -----------------------------------


@pytest.mark.parametrize(
    "loader,factory,code,words",
    [
        ("exiting_loader", "small_net", 2, "custom dataset loader 'hostile_code:exiting_loader' "
         "called sys.exit(0)"),
        ("loader", "exiting_factory", 2, "model.target: custom model factory "
         "'hostile_code:exiting_factory' called sys.exit(0)"),
        ("loader", "exit_in_forward", 2, "fails on one batch of shape (16, 4): called sys.exit(0)"),
        ("loader", "hard_exit_in_forward", 2, "fails on one batch of shape (16, 4): called "
         "os._exit(0)"),
        ("loader", "interrupting_factory", 130, "interrupted while custom model factory "
         "'hostile_code:interrupting_factory' ran"),
    ],
)  # fmt: skip
def test_user_code_that_exits_is_one_sentence_not_a_silent_exit_0(
    tmp_path: Path, loader: str, factory: str, code: int, words: str
) -> None:
    proc = run(tmp_path, suite(tmp_path, loader, factory))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("normbench: error: ") and words in proc.stderr, proc.stderr
    assert not (tmp_path / "runs" / "user").exists()  # refused before a run directory


@pytest.mark.parametrize("workers", ["1", "2"])
def test_os_exit_during_training_fails_the_variant_and_keeps_the_run(
    tmp_path: Path, workers: str
) -> None:
    # In-process, os._exit would end normbench at once with the user's status 0 and no output;
    # it is trapped and becomes a failed variant, as in a worker process (whose exit is seen).
    proc = run(tmp_path, suite(tmp_path, factory="hard_exit_later", seeds=2), "--workers", workers)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    recs = records(tmp_path)
    assert len(recs) == 2 and all(r["status"] == "failed" for r in recs)
    if workers == "1":
        assert all("called os._exit(0)" in r["error"] for r in recs), recs[0]["error"]


def test_a_factory_that_changes_directory_leaves_the_run_where_asked(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = suite(tmp_path, factory="wandering_factory")
    proc = run_cli(
        "run", path, "--out", "runs", "--no-report", "--no-rel-cost", "-q", "--workers", "1",
        cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (work / "runs" / "user").is_dir() and not (tmp_path / "runs").exists()


def test_a_factory_cannot_take_the_signals_over(tmp_path: Path) -> None:
    # The factory sets SIGTERM to "ignore": the handlers are restored after it, so SIGTERM
    # still stops the run (exit 130, resumable) instead of being swallowed.
    path = suite(tmp_path, factory="deaf_factory")
    text = path.read_text().replace("steps: 4", "steps: 200000")
    path.write_text(text.replace("seeds: 1", "seeds: 2"))
    proc = start_cli(
        "run", path, "--out", tmp_path / "runs", "--no-report", "--no-rel-cost", "-q",
        "--workers", "1", stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("user/*/manifest.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    time.sleep(3)  # the factory has run (the pre-flight's batch) and training is under way
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a swallowed SIGTERM would leave it training
    assert proc.returncode == 130, err
    assert "interrupted: finished results are saved (0)" in err and "Traceback" not in err
    assert "could not be written" not in err  # no result yet: no table, no failed report


def test_a_factory_cannot_change_torch_for_what_follows(tmp_path: Path) -> None:
    # Grad off, float64 by default, another thread count: restored after the factory, so the
    # variant trains and gives the numbers of the same net built by a well-behaved factory.
    for factory in ("state_changing_factory", "small_net"):
        out = tmp_path / factory
        out.mkdir()
        proc = run(out, suite(out, factory=factory, seeds=2), "--workers", "1")
        assert proc.returncode == 0, proc.stderr
    changed, plain = (records(tmp_path / f) for f in ("state_changing_factory", "small_net"))
    assert [r["metrics"]["final_train_loss"] for r in changed] == [
        r["metrics"]["final_train_loss"] for r in plain
    ]


@pytest.mark.parametrize(
    "factory,words",
    [
        ("unprintable_factory", "raised Unprintable: <its text could not be shown: RuntimeError>"),
        ("multiline_factory", "raised ValueError: first line second line third xxx"),
    ],
)
def test_an_exception_that_cannot_print_itself_is_still_one_line(
    tmp_path: Path, factory: str, words: str
) -> None:
    proc = run(tmp_path, suite(tmp_path, factory=factory))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and len(proc.stderr) < 700


def test_an_unprintable_exception_in_training_fails_its_variant(tmp_path: Path) -> None:
    proc = run(tmp_path, suite(tmp_path, factory="unprintable_later"), "--workers", "1")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    (rec,) = records(tmp_path)
    assert rec["status"] == "failed"
    assert rec["error"] == "Unprintable: <its text could not be shown: RuntimeError>"


def test_a_module_that_exits_while_imported(tmp_path: Path) -> None:
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(0)\n")
    path = suite(tmp_path)
    path.write_text(path.read_text().replace("hostile_code:small_net", "quits:net"))
    proc = run_cli("validate", path)
    assert proc.returncode == 2, proc.stderr
    assert "importing 'quits' called sys.exit(0)" in proc.stderr and "model.target" in proc.stderr


# --- stdout is the table alone --------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_prints_in_user_code_never_reach_json_stdout(tmp_path: Path, workers: str) -> None:
    path = suite(
        tmp_path,
        "printing_loader",
        "printing_factory",
        norm="{kind: custom, target: 'hostile_code:PrintingNorm'}",
        seeds=2,
    )
    env = subprocess_env(NB_PRINT_ON_IMPORT="1")
    proc = run(tmp_path, path, "--format", "json", "--workers", workers, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)  # nothing but the table
    assert rows[0]["ok"] == 2
    for word in ("an import", "a loader", "a factory", "a norm"):
        assert f"hello from {word}" in proc.stderr, word


# --- what a loader returns ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bfloat16", "float16", "sparse", "noncontiguous"])
def test_loader_tensors_are_converted_exactly(kind: str) -> None:
    from hostile_code import _arrays, tensor_loader

    x = loaded_array(tensor_loader(kind)[0], "x_train")
    assert x.flags.c_contiguous and x.shape == (64, 4)
    want = _arrays()[0]
    if kind == "bfloat16":
        want = torch.from_numpy(want).bfloat16().float().numpy()
    elif kind == "float16":
        want = want.astype(np.float16).astype(np.float32)
    assert np.array_equal(x.astype(np.float32), want)


@pytest.mark.parametrize(
    "kind,words",
    [
        ("meta", "x_train is a meta tensor of shape (64, 4): it has a shape but no data"),
        ("complex", "x_train has dtype torch.complex64; expected real numbers"),
        ("object", "x_train has dtype object; expected real numbers"),
        ("huge", "x_train has shape (10000000000000, 4): it needs 149,011.6 GiB as float32, "
         "more than this machine's memory"),
        ("ragged", "x_train is not an array"),
    ],
)  # fmt: skip
def test_loader_arrays_without_usable_data_are_one_sentence(
    tmp_path: Path, kind: str, words: str
) -> None:
    path = suite(tmp_path, "tensor_loader", loader_options=f"{{kind: {kind}}}")
    proc = run_cli("validate", "--data", path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr, proc.stderr


def test_loaded_array_refuses_before_allocating() -> None:
    with pytest.raises(InputError, match="more than this machine's memory"):
        loaded_array(np.broadcast_to(np.float32(0), (2**40, 2**10)), "x_train")


# --- the data are fingerprinted where they are trained on -----------------------------------------


def test_a_loader_giving_each_process_other_data_is_refused_in_workers(tmp_path: Path) -> None:
    proc = run(tmp_path, suite(tmp_path, "per_process_loader", seeds=2), "--workers", "2")
    assert proc.returncode == 3, proc.stderr
    found = records(tmp_path)
    assert len(found) == 2
    for record in found:  # never trained on data other than those pre-flight checked
        assert record["status"] == "failed"
        assert "gave this process other data than pre-flight checked" in record["error"]


# --- every RNG the user's code may draw from is seeded per task -----------------------------------


def test_numpy_and_random_initialisation_is_reproducible(tmp_path: Path) -> None:
    from normbench.models.custom import build_custom
    from normbench.usercode import seed_everything

    cfg = {"target": "hostile_code:numpy_init", "options": {}, "swap": None,
           "norm": {"kind": "keep"}}  # fmt: skip
    weights = []
    for _ in range(2):
        seed_everything(3)
        np.random.rand(5)  # state moved by someone else: the next seeding resets it
        seed_everything(3)
        weights.append(build_custom(cfg, (4,), 2)[0].weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
    seed_everything(4)
    assert not torch.equal(build_custom(cfg, (4,), 2)[0].weight, weights[0])

    finals = []
    for workers, out in (("1", "a"), ("2", "b"), ("1", "c")):
        path = suite(tmp_path, factory="numpy_init", seeds=2)
        proc = run_cli(
            "run", path, "--out", tmp_path / out, "--no-report", "--no-rel-cost", "-q",
            "--format", "json", "--workers", workers,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (run_dir,) = (tmp_path / out / "user").iterdir()
        finals.append(
            [json.loads(p.read_text())["metrics"]["final_train_loss"]
             for p in sorted((run_dir / "results").glob("*.json"))]
        )  # fmt: skip
    assert finals[0] == finals[1] == finals[2]  # in-process, in workers, again
    assert finals[0][0] != finals[0][1]  # and the seeds differ


# --- a model that cannot train --------------------------------------------------------------------


def test_a_model_without_parameters_fails_pre_flight(tmp_path: Path) -> None:
    proc = run(tmp_path, suite(tmp_path, factory="NoParams"))
    assert proc.returncode == 2, proc.stderr
    assert "model.target" in proc.stderr and "has no trainable parameters" in proc.stderr


def test_a_variant_without_an_ok_seed_is_never_best() -> None:
    from normbench.analysis.answer import best_sentence

    def variant(name: str, ok: int, value: float) -> dict:
        counts = {"ok": ok, "diverged": 0, "failed": 2 - ok, "missing": 0}
        stats = {"mean": value, "n": 2, "min": value, "max": value, "ci_low": None}
        return {"variant_name": name, "counts": counts, "metrics": {"train_seconds": stats}}

    summary = {"variants": [variant("broken", 0, 0.0), variant("fine", 2, 5.0)],
               "metric_info": {"train_seconds": {"higher_is_better": False}}}  # fmt: skip
    assert "fine" in best_sentence(summary, "train_seconds")
    summary["variants"].pop()
    assert best_sentence(summary, "train_seconds") is None
