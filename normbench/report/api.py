"""Python API behind ``normbench report`` and the end of ``normbench run`` (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normbench.analysis.aggregate import load_run, summarize
from normbench.analysis.pivot import pivot as pivot_summary
from normbench.analysis.query import resolve_metric
from normbench.errors import InputError
from normbench.report.render import check_format, render
from normbench.report.tables import pivot_table, relative_table, render_table, summary_table
from normbench.results.store import RunDir, Warn, atomic_write_text, stderr_warn

SUMMARY = "summary.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS = "plots"


@dataclass
class ReportOutput:
    """What ``normbench report`` prints on stdout, and the files it wrote."""

    text: str
    written: list[Path] = field(default_factory=list)


class _Collect:
    """Pass warnings on and keep them, so the report can list what was skipped."""

    def __init__(self, warn: Warn) -> None:
        self.warn, self.messages = warn, []

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self.warn(message)


def _write(
    run_dir: Path,
    summary: dict[str, Any],
    records: dict[str, list[dict[str, Any]]],
    plots: bool,
    warnings: _Collect,
) -> list[Path]:
    from normbench.report.document import build_sections, to_html_doc, to_markdown

    run = RunDir(run_dir)
    written = [run.write_json(SUMMARY, summary)]
    drawn = []
    if plots:
        from normbench.report.plots import write_plots

        drawn = write_plots(summary, records, run_dir / PLOTS, warnings)
        written += [p for d in drawn for p in (d.png, d.svg)]
    sections = build_sections(summary, drawn, warnings.messages)
    for name, text in (
        (REPORT_MD, to_markdown(summary, sections, run_dir)),
        (REPORT_HTML, to_html_doc(summary, sections)),
    ):
        path = run_dir / name
        # Atomic, through a fresh temp name: never half-written, never through a planted link.
        atomic_write_text(path, text)
        written.append(path)
    return written


def build_report(
    run_dir: Path,
    *,
    plots: bool = True,
    reference: str | None = None,
    strict: bool = False,
    warn: Warn | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Aggregate a run and write ``summary.json``, ``report.md``, ``report.html`` and ``plots/``.

    Returns the summary and the written paths.
    """
    warnings = _Collect(warn or stderr_warn)
    run = load_run(Path(run_dir), strict=strict, warn=warnings)
    summary = summarize(run, reference=reference)
    records: dict[str, list[dict[str, Any]]] = {}
    for r in run.records:
        records.setdefault(str(r["variant_id"]), []).append(r)
    return summary, _write(run.path, summary, records, plots, warnings)


def write_report(
    run_dir: Path,
    *,
    plots: bool = True,
    reference: str | None = None,
    strict: bool = False,
    warn: Warn | None = None,
) -> list[Path]:
    """Write the report files of a run directory; what ``normbench run`` calls at the end."""
    return build_report(run_dir, plots=plots, reference=reference, strict=strict, warn=warn)[1]


def report_command(
    run_dir: Path,
    *,
    fmt: str | None = None,
    pivot: str | None = None,
    metric: str | None = None,
    reference: str | None = None,
    strict: bool = False,
    plots: bool = True,
    warn: Warn | None = None,
    force_write: bool = False,
) -> ReportOutput:
    """``normbench report``: without ``--format``/``--pivot`` (re)write the report files and
    return the summary table; with them, only return the requested table (nothing written).

    A run whose report files are committed (tracked by git, as the curated runs under reports/
    are) is only read unless ``force_write`` (``--write``): reading a report never changes a
    committed file. ``--pivot`` wins over ``--reference``, which wins over the summary table,
    for what is printed.
    """
    fmt = None if fmt is None else check_format(fmt)
    if metric is not None and pivot is None and reference is None:
        raise InputError(
            "--metric needs --pivot or --reference (e.g. --pivot norm --metric final_test_acc)"
        )
    write = fmt is None and pivot is None
    if write and not force_write and committed_report(Path(run_dir)):
        (warn or stderr_warn)(
            f"{run_dir} is a committed run (its report files are tracked by git): nothing "
            "written; add --write to rewrite them"
        )
        write = False
    if write:
        summary, written = build_report(
            run_dir, plots=plots, reference=reference, strict=strict, warn=warn
        )
    else:
        run = load_run(Path(run_dir), strict=strict, warn=warn or stderr_warn)
        summary, written = summarize(run, reference=reference), []
    if metric is not None:
        metric = resolve_metric(summary, metric)
    out_fmt = fmt or "table"
    if pivot is not None:
        keys = [k.strip() for k in pivot.split(",") if k.strip()]
        if not keys:
            raise InputError(
                "--pivot expects comma-separated swept keys, e.g. --pivot norm,placement"
            )
        from normbench.analysis.query import headline_metric

        chosen = metric or headline_metric(summary)
        if chosen is None:
            raise InputError("this run recorded no metric values to pivot")
        table = pivot_table(summary, pivot_summary(summary, keys, chosen))
        return ReportOutput(render(table, out_fmt), written)
    if reference is not None:
        from normbench.analysis.relative import decide_reference, relative_rows

        ref = summary["analysis"]["reference"]
        rows = relative_rows(summary, ref, [metric] if metric else None)
        from normbench.analysis.verdicts import look_decisions

        decide_reference(rows, *look_decisions(summary.get("manifest") or {}))
        return ReportOutput(render(relative_table(summary, rows, ref), out_fmt), written)
    return ReportOutput(
        with_answer(summary, render(summary_table(summary), out_fmt), out_fmt), written
    )


def committed_report(run_dir: Path) -> bool:
    """Whether git tracks any of the files ``report`` would rewrite in ``run_dir``."""
    from normbench.results.store import tracked_by_git

    return bool(tracked_by_git(run_dir, (SUMMARY, REPORT_MD, REPORT_HTML, PLOTS)))


def with_answer(summary: dict[str, Any], table: str, fmt: str) -> str:
    """The terminal table opens with the answer's sentences (machine formats stay pure)."""
    if fmt != "table":
        return table
    from normbench.analysis.answer import answer
    from normbench.report.width import current_width, wrap_text

    sentences = answer(summary)
    width = current_width()
    if width is not None:  # the sentences fit the terminal like the table under them
        sentences = [line for s in sentences for line in wrap_text(s, width)]
    return "\n".join(sentences) + "\n\n" + table if sentences else table


@dataclass
class CompareOutput:
    """What ``normbench compare`` prints: the table, then a verdict line (machine formats)."""

    text: str
    verdict: str | None
    exit_code: int


def compare_command(
    baseline: Path,
    candidate: Path | None,
    *,
    fmt: str,
    junit_xml: Path | None = None,
    warn: Warn | None = None,
    **options: Any,
) -> CompareOutput:
    """``normbench compare``: resolve the run paths, compare, render, write the JUnit file.

    ``options`` go to ``analysis.compare.compare_runs`` (reference, gates, metrics, alpha,
    stats, match). When the runs cannot be compared the ``InputError`` is raised after the
    markdown error (on stdout) and the JUnit error case are written: a CI step posts the
    markdown and reads the XML whatever the exit code, so both say why.
    """
    import sys

    from normbench.analysis.compare import compare_runs
    from normbench.errors import NormbenchError
    from normbench.report.compare_render import (
        error_markdown,
        render_comparison,
        write_junit,
        write_junit_error,
    )
    from normbench.report.render import HUMAN_FORMATS
    from normbench.results.store import check_output_file, resolve_run_path, suite_of

    warn = warn or stderr_warn
    if junit_xml is not None:  # before comparing: a bad path is known now
        check_output_file(junit_xml, "--junit-xml")
    try:
        baseline = resolve_run_path(baseline)
        if candidate is not None:
            candidate = resolve_run_path(candidate, suite_of(baseline))
        result = compare_runs(baseline, candidate, warn=warn, **options)
    except NormbenchError as exc:
        what = f"`{candidate}` vs baseline `{baseline}`" if candidate else f"`{baseline}`"
        if fmt == "markdown":
            sys.stdout.write(error_markdown(str(exc), what))
        if junit_xml is not None:
            write_junit_error(junit_xml, str(exc))
        raise
    for message in result.warnings:
        warn(message)
    text = render_comparison(result, fmt)
    if junit_xml is not None:
        write_junit(result, junit_xml)
    verdict = None if fmt in HUMAN_FORMATS else result.verdict()
    return CompareOutput(text, verdict, result.exit_code)


def tidy_export(
    run_dir: Path, fmt: str | None, curves: bool, strict: bool, *, to_tty: bool, warn: Warn
) -> str | bytes:
    """``report --curves`` / ``--format parquet``: tidy rows for pandas, R, DuckDB (parquet
    as bytes, csv and json as text)."""
    from normbench.results.store import open_run_dir
    from normbench.results.tidy import rows_for, to_parquet

    if fmt not in ("csv", "json", "parquet"):
        raise InputError(
            "--curves needs --format csv, json or parquet (e.g. --format csv --curves)"
        )
    if fmt == "parquet" and to_tty:
        raise InputError(
            "--format parquet writes binary data: redirect it, e.g. "
            f"normbench report {run_dir} --format parquet > run.parquet"
        )
    rows = rows_for(open_run_dir(run_dir).iter_results(strict=strict, warn=warn), curves)
    if fmt == "parquet":
        return to_parquet(rows)
    # csv or json: the shared renderer writes the rows, every column kept
    from normbench.report.render import Table

    return render(Table("", [], [], data=rows), fmt)


__all__ = [
    "CompareOutput",
    "ReportOutput",
    "build_report",
    "compare_command",
    "render_table",
    "report_command",
    "tidy_export",
    "write_report",
]
