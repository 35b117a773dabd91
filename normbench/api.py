"""The Python API behind every command: load a suite, run it into a run directory, load runs.

A thin facade, as the CLI's one door to the library: planning and execution live in
``normbench.execute`` (``run_plan``, ``run``, ``run_dir``, ``model_check``, and ``session``: one
``normbench run`` from a ``RunRequest`` to its table and exit code), comparison in
``normbench.analysis``; the names here are the ones the CLI, the tests and users call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from normbench.errors import (
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    InputError,
)
from normbench.execute.merge import MergeOutcome
from normbench.execute.model_check import check_models
from normbench.execute.plan import ExecOptions, make_options
from normbench.execute.run import RunOutcome, execute_plan, run_suite
from normbench.execute.run_dir import finish_run, start_run
from normbench.execute.run_plan import RunPlan, pick_reference, plan_run, preflight, tasks_of
from normbench.execute.session import (
    GateCheck,
    RunRequest,
    RunSession,
    resume_command,
    run_table,
    train,
)
from normbench.results.store import RunDir, open_run_dir, resolve_run_path
from normbench.spec import Suite, load_suite


def merge_runs(
    dirs: list[Path], out: Path, command: list[str] | None = None, report: bool = True
) -> MergeOutcome:
    """Merge shard run directories into a new run under ``out`` and write its report (if any)."""
    from normbench.execute.merge import merge_runs as merge

    outcome = merge(dirs, Path(out), command or ["normbench", *sys.argv[1:]])
    if report:
        # The report writer is optional here: the merged run is complete without it.
        try:
            from normbench.report.api import write_report
        except ImportError:
            return outcome
        write_report(outcome.run_dir.path)
    return outcome


def load_run(path: str | Path) -> RunDir:
    """Open a stored run directory, or ``"latest"`` (the newest under reports/runs), as the
    CLI does (``InputError`` when it is not one)."""
    return open_run_dir(resolve_run_path(path))


def validate_files(
    paths: list[Path], data: bool = False
) -> list[tuple[Path, Suite | None, str | None]]:
    """Validate several suite files; returns (path, suite or None, error or None) for each.

    ``data``: also run the pre-flight data check (loads every dataset the grid uses).
    """
    from normbench.errors import NormbenchError

    results = []
    for path in paths:
        try:
            suite = load_suite(path)
            if data:
                preflight(suite, tasks_of(suite))
            results.append((path, suite, None))
        except NormbenchError as exc:
            results.append((path, None, str(exc)))
    return results


def compare_runs(baseline: str | Path, candidate: str | Path | None = None, **options: Any) -> Any:
    """``normbench compare``: a ``Comparison`` of two runs, or of one run's variants with
    ``reference=``; options: ``gates``, ``metrics``, ``alpha``, ``stats``, ``warn``
    (see ``normbench.analysis.compare.compare_runs``; torch-free)."""
    from normbench.analysis.compare import compare_runs as _compare

    return _compare(baseline, candidate, **options)


__all__ = [
    "EXIT_FAILED",
    "EXIT_GATE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "ExecOptions",
    "GateCheck",
    "InputError",
    "MergeOutcome",
    "RunOutcome",
    "RunPlan",
    "RunRequest",
    "RunSession",
    "check_models",
    "compare_runs",
    "execute_plan",
    "finish_run",
    "load_run",
    "load_suite",
    "make_options",
    "merge_runs",
    "pick_reference",
    "plan_run",
    "resume_command",
    "run_suite",
    "run_table",
    "start_run",
    "tasks_of",
    "train",
    "validate_files",
]
