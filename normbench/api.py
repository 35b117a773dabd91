"""The Python API behind every command: load a suite, run it into a run directory, load runs.

A thin facade, as the CLI's one door to the library: planning and execution live in
``normbench.execute`` (``run_plan``, ``run``, ``run_dir``, ``model_check``, and ``session``: one
``normbench run`` from a ``RunRequest`` to its table and exit code), comparison in
``normbench.analysis``; the names here are the ones the CLI, the tests and users call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
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
from normbench.report.width import DEFAULT_WIDTH, table_width
from normbench.results.store import RunDir, check_output_dir, open_run_dir, resolve_run_path
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


def terminal_width(wide: bool) -> AbstractContextManager[None]:
    """The width terminal tables fit inside the block (``--wide``: one line each)."""
    return table_width(None if wide else DEFAULT_WIDTH)


# The commands' library halves, imported when called: ``--help``, ``validate`` and ``list``
# stay free of what ``report``, ``compare`` and ``bench`` load.


def report_command(run_dir: Path, **options: Any) -> Any:
    """``normbench report`` (see ``normbench.report.api.report_command``): a ``ReportOutput``."""
    from normbench.report.api import report_command as command

    return command(run_dir, **options)


def tidy_export(run_dir: Path, fmt: str | None, curves: bool, strict: bool, **options: Any) -> Any:
    """``report --curves`` / ``--format parquet`` rows (``normbench.report.api.tidy_export``)."""
    from normbench.report.api import tidy_export as export

    return export(run_dir, fmt, curves, strict, **options)


def compare_command(baseline: Path, candidate: Path | None, **options: Any) -> Any:
    """``normbench compare`` (see ``normbench.report.api.compare_command``): a
    ``CompareOutput``; the options of ``compare_runs`` pass through."""
    from normbench.report.api import compare_command as command

    return command(baseline, candidate, **options)


def render_listing(what: str, fmt: str) -> str:
    """``normbench list``: one registry (or all) in ``fmt``."""
    from normbench.listing import render_listing as render

    return render(what, fmt)


def suite_schema() -> dict[str, Any]:
    """``normbench schema``: the JSON schema of a suite file, from the registries."""
    from normbench.spec import schema

    return schema()


def render_checks(variants: list[Any], checks: dict[str, Any]) -> str:
    """``validate --show-model``: the layers each variant's custom model replaces."""
    from normbench.models.custom import render_checks as render

    return render(variants, checks)


def bench(
    norms: list[str] | None,
    shapes: list[str] | None,
    dtypes: list[str],
    device: str,
    *,
    mode: str,
    pass_: str,
    compile_: str,
    progress: Callable[[str], None],
    **options: Any,
) -> list[dict[str, Any]]:
    """``normbench bench``: time norm layers; ``mode``/``pass_``/``compile_`` are the flags'
    words (``both`` = each), the other options those of ``normbench.bench.run_bench``."""
    from normbench.bench import run_bench
    from normbench.bench.parse import COMPILE_CHOICES, MODE_CHOICES, PASS_CHOICES, parse_choice

    return run_bench(
        norms,
        shapes,
        dtypes,
        device,
        modes=parse_choice(mode, MODE_CHOICES, "mode"),
        passes=parse_choice(pass_, PASS_CHOICES, "pass"),
        compiles=parse_choice(compile_, COMPILE_CHOICES, "compile"),
        progress=progress,
        **options,
    )


def render_bench(records: list[dict[str, Any]], fmt: str) -> str:
    """``normbench bench``'s table in ``fmt``."""
    from normbench.bench import render_bench as render

    return render(records, fmt)


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
    "bench",
    "check_models",
    "check_output_dir",
    "compare_command",
    "compare_runs",
    "execute_plan",
    "finish_run",
    "load_run",
    "load_suite",
    "make_options",
    "merge_runs",
    "pick_reference",
    "plan_run",
    "render_bench",
    "render_checks",
    "render_listing",
    "report_command",
    "resolve_run_path",
    "resume_command",
    "run_suite",
    "run_table",
    "start_run",
    "suite_schema",
    "tasks_of",
    "terminal_width",
    "tidy_export",
    "train",
    "validate_files",
]
