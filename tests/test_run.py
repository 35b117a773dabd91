"""End to end: `normbench run` on tiny suites → run directory, table, exit codes, determinism."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import suite_text
from typer.testing import CliRunner

from normbench.cli import app

runner = CliRunner()

# The shared tiny suite, two norms and a target (so times to target are recorded).
TINY = suite_text(
    overrides={"norm: [none, batch, layer]\n": "norm: [none, batch]\ntargets:\n  test_acc: 0.5\n"}
)


def run_suite(tmp_path: Path, text: str, *args: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    result = runner.invoke(
        app, ["run", str(path), "--out", str(tmp_path / "runs"), "--format", "json", *args]
    )
    return result


def run_dirs(tmp_path: Path, suite: str = "tiny") -> list[Path]:
    return sorted((tmp_path / "runs" / suite).iterdir())


def test_run_writes_the_run_directory(tmp_path: Path) -> None:
    result = run_suite(tmp_path, TINY, "--no-report")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    for name in ("suite.yaml", "resolved.json", "manifest.json", "summary.json"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["schema_version"] == 1
    assert {"python", "torch", "device", "cpu", "threads", "platform"} <= set(
        manifest["environment"]
    )
    results = sorted((run / "results").glob("*.json"))
    assert len(results) == 4
    record = json.loads(results[0].read_text())
    assert record["status"] == "ok"
    assert record["curves"]["step"] == [20, 40]
    for key in (
        "train_loss",
        "test_loss",
        "test_acc",
        "train_probe_loss",
        "train_probe_acc",
        "train_seconds",
    ):
        assert len(record["curves"][key]) == 2, key
    for metric in (
        "final_test_acc",
        "best_test_acc",
        "final_test_loss",
        "final_train_loss",
        "steps_to_target",
        "seconds_to_target",
        "samples_per_sec",
        "ms_per_step",
        "train_seconds",
    ):
        assert metric in record["metrics"], metric
    assert 0.0 <= record["metrics"]["final_test_acc"] <= 1.0
    # stdout carries the machine-readable table only
    rows = json.loads(result.stdout)
    assert len(rows) == 2


def test_same_suite_twice_gives_identical_metrics(tmp_path: Path) -> None:
    assert run_suite(tmp_path, TINY, "--no-report").exit_code == 0
    assert run_suite(tmp_path, TINY, "--no-report").exit_code == 0
    first, second = run_dirs(tmp_path)

    def metrics(run: Path) -> dict:
        out = {}
        for path in sorted((run / "results").glob("*.json")):
            rec = json.loads(path.read_text())
            out[path.name] = (
                rec["curves"]["train_loss"],
                rec["curves"]["test_acc"],
                rec["metrics"]["final_test_acc"],
                rec["metrics"]["final_train_loss"],
            )
        return out

    assert metrics(first) == metrics(second)


def test_failed_variant_exit_3_and_suite_goes_on(tmp_path: Path) -> None:
    text = TINY.replace(
        "norm: [none, batch]", "norm: [none, {kind: custom, target: 'custom_norms:Raising'}]"
    )
    result = run_suite(tmp_path, text, "--no-report")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.stderr
    (run,) = run_dirs(tmp_path)
    records = [json.loads(p.read_text()) for p in (run / "results").glob("*.json")]
    statuses = sorted(r["status"] for r in records)
    assert statuses == ["failed", "failed", "ok", "ok"]
    failed = next(r for r in records if r["status"] == "failed")
    assert "broken on purpose" in failed["error"]
    assert json.loads((run / "manifest.json").read_text())["status"] == "failed"


def test_divergence_is_a_result_not_a_failure(tmp_path: Path) -> None:
    text = TINY.replace("optimizer: adam", "optimizer: sgd").replace("lr: 0.01", "lr: 1.0e+6")
    text = text.replace("norm: [none, batch]", "norm: [none]")
    result = run_suite(tmp_path, text, "--no-report")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    records = [json.loads(p.read_text()) for p in (run / "results").glob("*.json")]
    assert {r["status"] for r in records} == {"diverged"}
    assert all(
        isinstance(r["diverged_at_step"], int) and r["diverged_at_step"] >= 1 for r in records
    )
    assert all(r["metrics"]["final_test_acc"] is None for r in records)


def test_unavailable_device_is_input_error(tmp_path: Path) -> None:
    result = run_suite(tmp_path, TINY.replace("device: cpu", "device: cuda:3"), "--no-report")
    assert result.exit_code == 2
    assert "cuda:3" in result.stderr and "Traceback" not in result.stderr


def test_python_api(tmp_path: Path) -> None:
    import normbench

    path = tmp_path / "s.yaml"
    path.write_text(TINY)
    suite = normbench.load_suite(path, ["training.steps=20", "training.seeds=1"])
    outcome = normbench.run_suite(suite, tmp_path / "runs")
    assert outcome.exit_code == 0 and len(outcome.records) == 2
    run = normbench.load_run(outcome.run_dir.path)
    assert len(list(run.iter_results())) == 2


def test_the_library_runs_a_request_as_the_command_does(tmp_path: Path) -> None:
    # A script gets `normbench run` without the command line: the request, the table, the
    # resume line and the exit code come from normbench.api.
    import pytest

    from normbench import api
    from normbench.errors import InputError

    path = tmp_path / "s.yaml"
    path.write_text(TINY)
    with pytest.raises(InputError, match="add --until-decided"):
        api.train(api.RunRequest(path, max_seeds=3))
    notes: list[str] = []
    request = api.RunRequest(path, out=tmp_path / "runs", quiet=True, rel_cost=False)
    session = api.train(request, note=notes.append)
    assert session.exit_code(None) == 0 and session.closing() == (None, None)
    rows = json.loads(session.table("json", write_report=False))
    assert [r["variant_name"] for r in rows] == ["norm=none", "norm=batch"]
    again = api.train(
        api.RunRequest(path, out=tmp_path / "runs", resume="latest", quiet=True), note=notes.append
    )
    assert again.run_dir == session.run_dir
    assert notes == [f"resuming {session.run_dir}: 4 of 4 results complete, 0 to run"]
