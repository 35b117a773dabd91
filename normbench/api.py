"""The Python API behind every command: load a suite, run it into a run directory, load runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench import __version__
from normbench.errors import InputError
from normbench.execute.local import Task, run_serial
from normbench.results.store import RunDir, create_run_dir
from normbench.spec import Suite, load_suite

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class RunOutcome:
    """What ``run_suite`` produced: the directory, every record, and the exit code to use."""

    run_dir: RunDir
    records: list[dict[str, Any]] = field(default_factory=list)
    status: str = "complete"

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tasks_of(suite: Suite) -> list[Task]:
    """Every (variant, seed) of a suite, variants in grid order, seeds inner."""
    return [Task(v, s) for v in suite.variants for s in v.seeds]


def start_run(suite: Suite, out: Path, command: list[str] | None = None) -> RunDir:
    """Create the run directory and write ``suite.yaml``, ``resolved.json`` and the manifest."""
    from normbench.results.environment import capture

    devices = {v.config["training"]["device"] for v in suite.variants}
    environment = capture(devices.pop() if len(devices) == 1 else "auto")
    run_dir = create_run_dir(Path(out), suite.name)
    (run_dir.path / "suite.yaml").write_text(suite.text, encoding="utf-8")
    run_dir.write_json("resolved.json", suite.resolved())
    run_dir.write_manifest({
        "schema_version": 1, "normbench_version": __version__, "suite_name": suite.name,
        "suite_file": suite.file, "command": command or sys.argv, "started": _now(), "finished": None,
        "status": "running", "environment": environment,
        "tasks": len(tasks_of(suite)),
    })
    return run_dir


def finish_run(run_dir: RunDir, status: str) -> None:
    """Record the final status and end time in the manifest."""
    manifest = run_dir.read_manifest()
    manifest.update(status=status, finished=_now())
    run_dir.write_manifest(manifest)


def run_suite(suite: Suite, out: Path = Path("reports/runs"), *, on_progress: Any = None,
              on_record: Any = None, command: list[str] | None = None) -> RunOutcome:
    """Train every variant × seed of ``suite``; results are stored as each one finishes.

    Ctrl-C stops after the current task is abandoned; everything finished stays on disk
    and the manifest says ``interrupted``.
    """
    run_dir = start_run(suite, out, command)
    outcome = RunOutcome(run_dir)

    def store(record: dict[str, Any]) -> None:
        run_dir.write_result(record)
        outcome.records.append(record)
        if on_record is not None:
            on_record(record)

    try:
        run_serial(tasks_of(suite), store, on_progress)
    except KeyboardInterrupt:
        outcome.status = "interrupted"
    else:
        outcome.status = "failed" if outcome.failed else "complete"
    finish_run(run_dir, outcome.status)
    return outcome


def load_run(path: str | Path) -> RunDir:
    """Open a stored run directory (``InputError`` when it is not one)."""
    from normbench.results.store import open_run_dir

    return open_run_dir(Path(path))


def validate_files(paths: list[Path]) -> list[tuple[Path, Suite | None, str | None]]:
    """Validate several suite files; returns (path, suite or None, error or None) for each."""
    from normbench.errors import NormbenchError

    results = []
    for path in paths:
        try:
            results.append((path, load_suite(path), None))
        except NormbenchError as exc:
            results.append((path, None, str(exc)))
    return results


__all__ = ["EXIT_FAILED", "EXIT_GATE", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "InputError",
           "RunOutcome", "load_run", "load_suite", "run_suite", "validate_files"]
