"""Typer app only: parse arguments, call the Python API, render, exit with the right code."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from normbench.errors import EXIT_INPUT, InputError, NormbenchError
from normbench.report.render import HUMAN_FORMATS, Format, ReportFormat
from normbench.streams import guard_standard_streams, stdout_to_stderr, write_binary
from normbench.usercode import HardExit, describe, error_text, hard_exit_trapped, real_exit

app = typer.Typer(
    name="normbench",
    help="Benchmark normalization layers: train every variant of a YAML suite, store, compare.\n\n"
    "Example: normbench run suites/quickstart.yaml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format on stdout.")]
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Terminal tables on one line each, headers unabbreviated (default: fit 100 "
        "columns, split into parts with a legend).",
    ),
]


def run_path(arg: Path, suite: str | None = None) -> Path:
    """A run directory argument: ``latest`` is the newest run under reports/runs (of ``suite``)."""
    from normbench.api import resolve_run_path

    return resolve_run_path(arg, suite)


def _width(wide: bool) -> contextlib.AbstractContextManager[None]:
    from normbench.api import terminal_width

    return terminal_width(wide)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"normbench {version('normbench')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Benchmark normalization layers: train every variant of a YAML suite, store, compare.

    Example: normbench run suites/quickstart.yaml
    """


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one sentence on stderr and return the Exit to raise."""
    from normbench.naming import printable

    # A name or path echoed in the sentence must not drive the terminal (ANSI escapes).
    print(f"normbench: error: {printable(str(message))}", file=sys.stderr)
    return typer.Exit(code)


def note(message: str) -> None:
    """Print a progress line on stderr (as it is: the library words it)."""
    print(message, file=sys.stderr)


def emit(data: str | bytes) -> None:
    """Write text, or binary data (parquet) past the text layer, on stdout."""
    if isinstance(data, str):
        sys.stdout.write(data)
    else:  # through the stdout guard: a full device is one sentence, a closed pipe quiet
        write_binary(data)


def warn(message: str) -> None:
    """Print a warning on stderr (control characters shown as escapes, like ``fail``)."""
    from normbench.naming import printable

    print(f"normbench: warning: {printable(str(message))}", file=sys.stderr)


def handle_errors(func):  # type: ignore[no-untyped-def]
    """Decorator for commands: a ``NormbenchError`` becomes one sentence on stderr and exit 2."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return func(*args, **kwargs)
        except NormbenchError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except OSError as exc:  # a write or read the storage layer did not wrap: still one line
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{exc.strerror or exc}") from None

    return wrapper


# --- commands are added below; each is parse → API call → render → exit code -------------------


@app.command()
@handle_errors
def run(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file.")],
    out: Annotated[
        Path, typer.Option("--out", help="Parent directory for run directories.")
    ] = Path("reports/runs"),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a dotted key: --set training.steps=200 (repeatable)."),
    ] = None,
    fmt: FormatOpt = Format.table,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip report.md/report.html and plots.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            help="Worker processes (default: chosen from the core count and the model size; 1 "
            "trains in this process; with --executor dask and no --scheduler: the "
            "LocalCluster size).",
            show_default=False,
        ),
    ] = None,
    threads_per_worker: Annotated[
        int | None,
        typer.Option(
            "--threads-per-worker",
            help="torch intra-op threads per task, in process or in each worker, for variants "
            "without their own training.threads (default: 1 for small models, 4 for large "
            "ones; capped so workers × threads ≤ cores; recorded, and reused by --resume).",
            show_default=False,
        ),
    ] = None,
    reproducible: Annotated[
        bool | None,
        typer.Option(
            "--reproducible/--no-reproducible",
            help="Pin the CPU kernels to a common level (AVX2 on x86-64: ATen, MKL, oneDNN) so "
            "other machines give the same numbers; default: the suite's "
            "training.reproducible, else off (this CPU's fastest kernels).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Finish an earlier run of this suite: skip its complete results, run the rest and "
            "re-run failed ones (RUN_DIR or 'latest').",
            metavar="RUN_DIR|latest",
        ),
    ] = None,
    no_retry: Annotated[
        bool,
        typer.Option(
            "--no-retry", help="With --resume: keep failed results instead of re-running them."
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Run only shard I of N (balanced, deterministic), e.g. --shard 2/3; combine with "
            "'normbench merge'.",
            metavar="I/N",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local (worker processes here) or dask (a Dask cluster; needs normbench[dask]).",
            metavar="[local|dask]",
        ),
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default with --executor dask: "
            "a LocalCluster on 127.0.0.1).",
            metavar="ADDRESS",
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            "--devices",
            help="Devices assigned to workers round robin, e.g. cuda:0,cuda:1 (a device may repeat "
            "or be shared by several --workers).",
            metavar="LIST",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="After the run, compare with this run directory and check the gates (see "
            "normbench compare).",
            metavar="RUN_DIR",
        ),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Regression gate vs --baseline, METRIC:[+|-]NUMBER[%], e.g. final_test_acc:-1% "
            "(repeatable); exit 1 when one fires.",
            metavar="METRIC:CHANGE",
        ),
    ] = None,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="Add seeds, look by look, only to the variants of undecided claims (and "
            "--reference contrasts) until every verdict is decided or --max-seeds is reached "
            "(alpha spending over the planned looks).",
        ),
    ] = False,
    max_seeds: Annotated[
        int | None,
        typer.Option(
            "--max-seeds",
            help="Seed budget per variant for --until-decided (default 10; only with it).",
            min=1,
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Reference variant, e.g. norm=none: relative costs (rel_ms_per_step) are measured "
            "against it (default: the suite's first variant), the report's relative table "
            "uses it, and --until-decided decides its contrasts.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    rel_cost: Annotated[
        bool,
        typer.Option(
            "--rel-cost/--no-rel-cost",
            help="After training, time every variant against the reference side by side "
            "(rel_ms_per_step).",
        ),
    ] = True,
    wide: WideOpt = False,
) -> None:
    """Train every variant × seed of a suite, store the run, print a comparison table.

    After training, each variant's step time is measured against the reference variant's in
    alternating short bursts (rel_ms_per_step, lower is better): a machine-normalised cost.

    Example: normbench run suites/quickstart.yaml --set training.steps=500 --format markdown

    Example: normbench run suites/quickstart.yaml --workers 2 --threads-per-worker 1 --shard 1/3

    Example: normbench run suites/quickstart.yaml --resume latest

    Example: normbench run suites/ci-smoke.yaml --reproducible --baseline \
reports/baselines/ci-smoke --fail-on final_test_acc:-1%

    Example: normbench run suites/ioffe2015-mlp.yaml --until-decided --max-seeds 10
    """
    from normbench import api

    request = api.RunRequest(
        suite=suite,
        out=out,
        overrides=tuple(set_ or ()),
        workers=workers,
        threads_per_worker=threads_per_worker,
        reproducible=reproducible,
        resume=resume,
        retry_failed=not no_retry,
        shard=shard,
        executor=executor,
        scheduler=scheduler,
        devices=devices,
        baseline=baseline,
        fail_on=tuple(fail_on or ()),
        until_decided=until_decided,
        max_seeds=max_seeds,
        reference=reference,
        rel_cost=rel_cost,
        quiet=quiet,
        command=("normbench", *sys.argv[1:]),
    )
    # stdout carries the run table alone (--format json): whatever the user's code prints
    # while the suite is loaded, checked and trained goes to stderr.
    with stdout_to_stderr():
        session = api.train(request, warn=warn, note=note)
    try:
        with _width(wide):
            table = session.table(fmt.value, not no_report)
        if table is not None:
            print(table)
    except Exception as exc:  # a report bug must not hide a finished run: results are on disk
        warn(
            f"the report could not be written ({error_text(exc)}); every result is "
            f"saved — retry with: normbench report {session.run_dir}"
        )
    note(f"run directory: {session.run_dir}")
    closing_note, closing_warning = session.closing()
    if closing_note:
        note(closing_note)
    if closing_warning:
        warn(closing_warning)
    with _width(wide):
        gate = session.check_gate(fmt.value, fmt.value in HUMAN_FORMATS, warn)
    if gate:
        (sys.stdout if gate.to_stdout else sys.stderr).write(gate.text)
    raise typer.Exit(session.exit_code(gate))


@app.command()
@handle_errors
def merge(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run directories of the shards (same suite).", metavar="RUN_DIR..."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Parent directory of the merged run (it goes to OUT/<suite>/<timestamp>-<id>, "
            "like run --out).",
        ),
    ] = Path("reports/runs"),
    fmt: FormatOpt = Format.table,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip report.md/report.html and plots.")
    ] = False,
    wide: WideOpt = False,
) -> None:
    """Combine shard run directories (normbench run --shard I/N) into one run; refuses \
mismatched suites.

    Exit 3 when a variant failed or a shard's results are missing (then --resume the merged run);
    exit 2, naming it, for a damaged result file (nothing is written). The merged run appears
    whole or not at all, also on Ctrl-C or SIGTERM.

    Example: normbench merge shards/a/quickstart/* shards/b/quickstart/* --out reports/runs
    """
    from normbench import api

    api.check_output_dir(out, "--out")
    outcome = api.merge_runs(run_dirs, out, command=["normbench", *sys.argv[1:]], report=False)
    with _width(wide):
        print(api.run_table(outcome.run_dir.path, fmt.value, not no_report))
    print(
        f"run directory: {outcome.run_dir.path} ({len(outcome.records)} of {outcome.expected} "
        "results "
        f"from {len(run_dirs)} runs)",
        file=sys.stderr,
    )
    if outcome.missing:
        warn(
            f"{outcome.missing} of {outcome.expected} results are missing; "
            f"normbench run SUITE --resume {outcome.run_dir.path} runs them"
        )
    if outcome.failed:
        warn(f"{len(outcome.failed)} of {len(outcome.records)} variant runs failed")
    raise typer.Exit(3 if outcome.missing or outcome.failed else 0)


@app.command()
def validate(
    suites: Annotated[list[Path], typer.Argument(help="Suite YAML files.")],
    show_model: Annotated[
        bool,
        typer.Option(
            "--show-model",
            help="Also build each custom model on one batch (imports torch) and print which norm "
            "layers each variant replaces.",
        ),
    ] = False,
    data: Annotated[
        bool,
        typer.Option(
            "--data",
            help="Also load every dataset the grid uses and check it (shapes, NaN/inf, labels, "
            "sizes vs batch_size), as run does before training.",
        ),
    ] = False,
) -> None:
    """Check suite files without running them (and without importing torch, unless --data).

    A custom norm's target module is imported (and so executed), as run would.

    --show-model runs the pre-flight check of `run` (custom models built on one batch of the
    dataset) and prints every replaced layer: module path, old → new.

    Example: normbench validate suites/*.yaml

    Example: normbench validate --show-model examples/resnet-norms.yaml

    Example: normbench validate --data suites/mnist1d-table.yaml
    """
    from normbench.api import validate_files
    from normbench.errors import NormbenchError

    bad = 0
    for path, loaded, error in validate_files(suites, data=data):
        if error is None and show_model:
            assert loaded is not None
            from normbench.api import check_models

            try:
                checks = check_models(loaded)
            except NormbenchError as exc:
                error = str(exc)
        if error is not None:
            bad += 1
            print(f"normbench: error: {error}", file=sys.stderr)
            continue
        assert loaded is not None
        for message in loaded.warnings:
            warn(message)
        checked = " (data checked)" if data else ""
        print(f"ok: {path}: {len(loaded.variants)} variants × {len(loaded.seeds)} seeds{checked}")
        if show_model:
            from normbench.api import render_checks

            print(render_checks(loaded.variants, checks), end="")
    raise typer.Exit(2 if bad else 0)


class ListWhat(str, Enum):
    """What ``normbench list`` can show."""

    all = "all"
    norms = "norms"
    models = "models"
    datasets = "datasets"
    activations = "activations"
    metrics = "metrics"
    diagnostics = "diagnostics"


@app.command("list")
@handle_errors
def list_(
    what: Annotated[
        str,
        typer.Argument(
            help="Which registry to list: all, norms, models, datasets, activations, metrics, "
            "diagnostics.",
            metavar="[all|norms|models|datasets|activations|metrics|diagnostics]",
        ),
    ] = "all",
    fmt: FormatOpt = Format.table,
    wide: WideOpt = False,
) -> None:
    """List the registries: norms, models, datasets, activations, metrics, diagnostics.

    Example: normbench list norms --format markdown
    """
    from normbench.api import render_listing
    from normbench.errors import unknown

    choices = [w.value for w in ListWhat]
    if what not in choices:
        raise InputError(f"list: {unknown('registry', what, choices)}")
    with _width(wide):
        print(render_listing(what, fmt.value))


@app.command()
def schema() -> None:
    """Print the JSON schema of a suite file (for editors and CI linting).

    Example: normbench schema > suite.schema.json
    """
    import json

    from normbench.api import suite_schema

    print(json.dumps(suite_schema(), indent=2))


@app.command()
@handle_errors
def bench(
    norms: Annotated[
        list[str] | None,
        typer.Argument(
            help="Norms to time: a name, name[option=value,...] or 'all' "
            "(default: batch layer rms, each where it accepts the shape).",
            metavar="NORM",
            show_default=False,
        ),
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            "-s",
            help="Input N×C[×L | ×H×W], e.g. 256x1024 or "
            "32x64x56x56; repeatable (default: 256x1024 and 32x64x56x56).",
            metavar="AxB[xCxD]",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option(
            "--dtype",
            help="float32, bfloat16, float16 (GPU only) or float64; "
            "repeatable.  [default: float32]",
            metavar="DTYPE",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    mode: Annotated[str, typer.Option(help="train, eval or both.")] = "train",
    pass_: Annotated[
        str, typer.Option("--pass", help="forward, backward (forward+backward) or both.")
    ] = "both",
    repeats: Annotated[int, typer.Option(help="Minimum timed samples per measurement.")] = 10,
    min_time: Annotated[
        float,
        typer.Option(help="Minimum seconds of timed samples per measurement (after warm-up)."),
    ] = 1.0,
    fresh_outputs: Annotated[
        bool,
        typer.Option(
            "--fresh-outputs",
            help="CPU: let every large output page-fault in fresh memory, as a "
            "plain process does (default: freed memory is kept, outputs come back warm).",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="torch intra-op threads (default: torch's; 1 gives steadier figures "
            "on a shared machine).",
            show_default=False,
        ),
    ] = None,
    compile_: Annotated[
        str,
        typer.Option(
            "--compile",
            help="off (the layer as written), on (through torch.compile, compiled before "
            "timing) or both.",
        ),
    ] = "off",
    fmt: FormatOpt = Format.table,
    wide: WideOpt = False,
) -> None:
    """Time norm layers (forward, forward+backward): median, IQR, GB/s and fraction of a copy.

    A layer above 100 % of the copy is flagged with the reason (e.g. its working set fits in
    the cache).

    Example: normbench bench layer rms group[groups=8] --shape 8192x1024 --pass forward

    Example: normbench bench dyt derf layer rms --shape 8192x256 --shape 65536x64 --compile both
    """
    from normbench.api import bench as run_bench
    from normbench.api import render_bench

    records = run_bench(
        norms or None,
        shape or None,
        dtype or ["float32"],
        device,
        mode=mode,
        pass_=pass_,
        compile_=compile_,
        repeats=repeats,
        min_time=min_time,
        warm_outputs=not fresh_outputs,
        threads=threads,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    with _width(wide):
        sys.stdout.write(render_bench(records, fmt.value))
    if any(r["status"] != "ok" for r in records):
        raise typer.Exit(3)  # some layers failed while running (exit code 3)


@app.command()
@handle_errors
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A run directory written by normbench run, or 'latest' (the newest under "
            "reports/runs).",
            metavar="RUN_DIR|latest",
        ),
    ],
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Print the table in this format and write no files (parquet: "
            "tidy rows, binary, to redirect into a file).",
        ),
    ] = None,
    curves: Annotated[
        bool,
        typer.Option(
            "--curves",
            help="With --format csv|json|parquet: tidy rows, one per variant × seed × "
            "eval point, swept keys as columns (parquet without --curves: one row per variant × "
            "seed with every metric).",
        ),
    ] = False,
    pivot: Annotated[
        str | None,
        typer.Option(
            "--pivot",
            help="Swept keys, comma-separated: rows, then the last key as columns.",
            metavar="KEYS",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric", "-m", help="Metric for --pivot / --reference (default: final_test_acc)."
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Reference variant for speed-ups, e.g. norm=none or norm=none,placement=pre.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Fail (exit 2) on a corrupt result file instead of skipping it."
        ),
    ] = False,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Draw plots/ (PNG + SVG).")
    ] = True,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Rewrite the report files even when they are committed (tracked by git, "
            "like the runs under reports/); without it a committed run is only read.",
        ),
    ] = False,
    wide: WideOpt = False,
) -> None:
    """Aggregate a run over seeds: summary.json, report.md, self-contained report.html, plots/.

    Without --format or --pivot it (re)writes the report files and prints the summary table
    (the relative table with --reference). With them it only prints. A committed run (its
    report files tracked by git) is only read unless --write.

    Example: normbench report latest

    Example: normbench report reports/quickstart --pivot norm,placement --metric final_test_acc
    """
    from normbench.api import report_command, tidy_export

    run_dir = run_path(run_dir)
    if curves or fmt is ReportFormat.parquet:
        data = tidy_export(
            run_dir,
            fmt.value if fmt else None,
            curves,
            strict,
            to_tty=sys.stdout.isatty(),
            warn=warn,
        )
        emit(data)
        return
    with _width(wide):
        out = report_command(
            run_dir,
            fmt=fmt.value if fmt else None,
            pivot=pivot,
            metric=metric,
            reference=reference,
            strict=strict,
            plots=plots,
            warn=warn,
            force_write=write,
        )
    sys.stdout.write(out.text)
    if out.written:
        print(
            f"report: {run_dir / 'report.html'} ({len(out.written)} files written)", file=sys.stderr
        )


@app.command()
@handle_errors
def compare(
    baseline: Annotated[
        Path,
        typer.Argument(
            help="Baseline run directory (or its summary.json, or 'latest'); with --reference, the "
            "run "
            "to analyse.",
            metavar="BASELINE",
        ),
    ],
    candidate: Annotated[
        Path | None,
        typer.Argument(
            help="Candidate run directory (or its summary.json) of the same suite; 'latest' = the "
            "newest run of the baseline's suite under reports/runs.",
            metavar="CANDIDATE",
            show_default=False,
        ),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Gate METRIC:[+|-]NUMBER[%] (repeatable): fail when the metric got worse "
            "beyond the threshold, significantly; % = relative, else absolute. The suite's gates: "
            "apply too.",
            metavar="METRIC:CHANGE",
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Compare every variant of BASELINE with this reference variant instead: each "
            "row gets the effect with the CI that decided its verdict (better, worse, "
            "equivalent within the margin, undecided); the row's mark and p are the verdict's.",
            metavar="KEY=VALUE",
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="Metric to show (repeatable; 'all' for every recorded one). "
            "Default: the headline metrics plus the gated ones.",
            metavar="METRIC",
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Family-wise significance level: Welch's t-test across seeds, "
            "Holm-Bonferroni adjusted over every variant x metric test of the comparison.",
        ),
    ] = 0.05,
    no_stats: Annotated[
        bool,
        typer.Option(
            "--no-stats", help="Gates fire on the threshold alone, without a significance test."
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
    junit_xml: Annotated[
        Path | None,
        typer.Option(
            "--junit-xml",
            help="Also write JUnit XML: one test case per gated variant × metric (one test "
            "case in error, with the reason, when the runs could not be compared).",
            metavar="PATH",
        ),
    ] = None,
    match: Annotated[
        str,
        typer.Option(
            "--match",
            help="Pair variants by 'id' (the same resolved configuration; a same-named variant "
            "with another id is not comparable) or by 'name' (across a deliberate change of the "
            "suite, e.g. --set training.lr=…; each pair shows the configuration change).",
            metavar="id|name",
        ),
    ] = "id",
    wide: WideOpt = False,
) -> None:
    """Compare two runs of a suite metric by metric (regression gates for CI), or one run's \
variants.

    Marks: + worse, - better (both significant), ~ no significant change, ! newly failing or
    diverged, x not comparable (the suite changed). Significance: Welch's t-test across seeds,
    two-sided, timing metrics on log values; p-values are Holm-Bonferroni adjusted over every
    variant x metric test of the comparison, so an honest re-run fires with probability at most
    α = 0.05 in all. Every seed equal on both sides is an exact change ("300 → 500 on every
    seed"), without a p.

    Exit codes: 0 no gate fired · 1 a gate fired (regression) · 2 could not compare (bad input).

    Example: normbench compare reports/baselines/ci-smoke latest --fail-on final_test_acc:-1%

    Example: normbench compare BASE_DIR CAND_DIR --fail-on samples_per_sec:-10% --format markdown \
--junit-xml gates.xml

    Example: normbench compare reports/quickstart --reference norm=none
    """
    from normbench.api import compare_command

    with _width(wide):
        out = compare_command(
            baseline,
            candidate,
            fmt=fmt.value,
            junit_xml=junit_xml,
            warn=warn,
            reference=reference,
            gates=fail_on or [],
            metrics=metric or None,
            alpha=alpha,
            stats=not no_stats,
            match=match,
        )
    sys.stdout.write(out.text)
    if out.verdict is not None:
        print(f"normbench: {out.verdict}", file=sys.stderr)
    raise typer.Exit(out.exit_code)


def _terminate(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM outside a run's own handling (pre-flight, the final table): exit 130.

    A run installs its own handlers while it trains (stop, keep what finished); whatever
    happens outside them has either not started writing or already written everything.
    """
    try:
        sys.stdout.flush()
        print("normbench: interrupted", file=sys.stderr, flush=True)
    finally:
        real_exit(130)


def _full_summaries() -> None:
    """Command summaries in ``--help`` are the docstrings' first lines, never cut with '...'."""
    for info in app.registered_commands:
        doc = (info.callback.__doc__ or "") if info.callback else ""
        if info.short_help is None and doc.strip():
            info.short_help = doc.strip().splitlines()[0]


_full_summaries()


def check_working_directory() -> None:
    """``InputError`` naming the working directory when it no longer exists: every relative
    path (suites, reports/runs, the suite's imports) is read from it."""
    import os

    try:
        os.getcwd()
    except FileNotFoundError:
        try:
            name = os.readlink("/proc/self/cwd").removesuffix(" (deleted)")
        except OSError:
            name = os.environ.get("PWD", "")
        shown = f" {name}" if name else ""
        raise InputError(
            f"the working directory{shown} no longer exists (it was deleted or moved); "
            "cd to an existing directory and run normbench again"
        ) from None


def main() -> None:
    """Console-script entry point: user errors become one line and exit 2, never a traceback.

    stdout and stderr are guarded (``normbench.streams``): a reader that goes away
    (``| head``) or a full device never stops the command; a closed pipe ends it quietly,
    any other failure to write stdout is reported (exit 2) after the work is done.
    """
    import signal

    # Without this, click turns Ctrl-C into "Aborted!" with exit 1 and SIGTERM kills outright.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminate)
    out, _ = guard_standard_streams()
    code: int | str | None = 0
    try:
        check_working_directory()
        with hard_exit_trapped():  # the user's code may call os._exit: a failed variant instead
            app()
    except HardExit as exc:  # not inside a step that records it as a failed variant
        print(f"normbench: error: the user's code {describe(exc)}; stopped", file=sys.stderr)
        code = EXIT_INPUT
    except SystemExit as exc:
        code = exc.code
    except NormbenchError as exc:
        print(f"normbench: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("normbench: interrupted", file=sys.stderr)
        code = 130
    finally:
        out.flush()
    if out.error is not None and not out.broken_pipe:
        print(
            f"normbench: error: standard output could not be written "
            f"({out.error.strerror or out.error}); files this command wrote are complete",
            file=sys.stderr,
        )
        code = EXIT_INPUT
    sys.exit(code)
