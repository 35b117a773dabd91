"""One ``normbench run`` in the library: request → load, gate, plan, train → table, gate, exit.

The CLI builds a ``RunRequest`` from its flags, calls ``train`` and prints what the returned
``RunSession`` renders; every decision between parsing and printing is made here, so a script
gets the same run (messages included) without the command line.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.errors import InputError
from normbench.execute.plan import ExecOptions, make_options
from normbench.execute.run import RunOutcome, execute_plan
from normbench.execute.run_plan import RunPlan, plan_run
from normbench.results.store import resolve_run_path

Say = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class RunRequest:
    """Everything ``normbench run`` was asked for, as plain values (the flags' names)."""

    suite: Path
    out: Path = Path("reports/runs")
    overrides: tuple[str, ...] = ()
    workers: int | None = None
    threads_per_worker: int | None = None
    reproducible: bool | None = None
    resume: str | None = None
    retry_failed: bool = True
    shard: str | None = None
    executor: str = "local"
    scheduler: str | None = None
    devices: str | None = None
    baseline: Path | None = None
    fail_on: tuple[str, ...] = ()
    until_decided: bool = False
    max_seeds: int | None = None
    reference: str | None = None
    rel_cost: bool = True
    quiet: bool = False
    command: tuple[str, ...] = ("normbench",)

    def options(self) -> ExecOptions:
        """The execution options, validated (``InputError`` naming the flag)."""
        return make_options(
            workers=self.workers,
            threads_per_worker=self.threads_per_worker,
            executor=self.executor,
            scheduler=self.scheduler,
            devices=self.devices,
            shard=self.shard,
            resume=self.resume,
            retry_failed=self.retry_failed,
            reproducible=self.reproducible,
        )


@dataclass(frozen=True)
class GateCheck:
    """The gates of ``run --baseline``: their text, where it goes, and the exit code."""

    text: str
    to_stdout: bool
    exit_code: int


@dataclass
class RunSession:
    """A trained (or interrupted) run and the prepared baseline gate, ready to be reported."""

    request: RunRequest
    outcome: RunOutcome
    gate: Any  # analysis.compare.BaselineGate | None

    @property
    def run_dir(self) -> Path:
        return self.outcome.run_dir.path

    def table(self, fmt: str, write_report: bool) -> str | None:
        """Summarise the run (writing its report unless told not to); the table for stdout.

        None when no result exists yet (stopped before the first finished): nothing to show,
        and the closing lines say how to resume.
        """
        if not any((self.run_dir / "results").glob("*.json")):
            return None
        return run_table(self.run_dir, fmt, write_report, self.request.reference)

    def closing(self) -> tuple[str | None, str | None]:
        """After the table: (a note, a warning) for stderr about an interruption or failures."""
        outcome = self.outcome
        if outcome.status == "interrupted":
            return (
                f"interrupted: finished results are saved ({len(outcome.records)}); "
                f"resume with:\n  {resume_command(list(self.request.command), self.run_dir)}",
                None,
            )
        if outcome.failed:
            return None, f"{len(outcome.failed)} of {len(outcome.records)} variant runs failed"
        return None, None

    def check_gate(self, fmt: str, human: bool, warn: Say) -> GateCheck | None:
        """Gate the finished run against the baseline (none after an interruption).

        Machine formats (``human`` false) keep stdout to the run table alone: the gates then
        go to stderr, as a terminal table.
        """
        if not self.gate or self.outcome.status == "interrupted":
            return None
        from normbench.analysis.compare import gate_run
        from normbench.report.compare_render import render_gates

        result = gate_run(self.gate, self.run_dir, warn=warn)
        for message in result.warnings:
            warn(message)
        text = render_gates(result, fmt if human else "table")
        return GateCheck(text, human, result.exit_code)

    def exit_code(self, gate: GateCheck | None) -> int:
        """The run's own exit code first (failed, interrupted), else the gate's."""
        return self.outcome.exit_code or (gate.exit_code if gate else 0)


def run_table(run_dir: Path, fmt: str, write_report: bool, reference: str | None = None) -> str:
    """Summarise a finished run (and write its report), the table ``run`` and ``merge`` print."""
    from normbench.analysis.aggregate import summarize_run
    from normbench.report.api import build_report, render_table, with_answer
    from normbench.results.store import RunDir

    if write_report:
        summary = build_report(run_dir, reference=reference)[0]
    else:
        summary = summarize_run(run_dir, reference=reference)
        RunDir(run_dir).write_json("summary.json", summary)
    return with_answer(summary, render_table(summary, fmt), fmt)


def resume_command(command: list[str], run_dir: Path) -> str:
    """The exact command that finishes an interrupted run: the same arguments, --resume RUN_DIR."""
    args, skip = [], False
    for a in command[1:]:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            args.append(a)
    return shlex.join(["normbench", *args, "--resume", str(run_dir)])


def _executor(request: RunRequest, steps: int, warn: Say, note: Say) -> Callable[[RunPlan], Any]:
    """Run one plan with progress on stderr (the resume line first)."""
    from normbench.execute.progress import Progress, startup_words

    def execute(plan: RunPlan) -> RunOutcome:
        for message in plan.warnings:
            warn(message)
        if plan.resume_dir is not None and not request.until_decided:
            note(
                f"resuming {plan.resume_dir.path}: {len(plan.done)} of "
                f"{len(plan.tasks)} results complete, {len(plan.pending)} to run"
            )
        enabled = False if request.quiet else None
        with Progress(len(plan.pending), steps, enabled=enabled) as progress:
            names = {t.key: f"{t.variant.name} s{t.seed}" for t in plan.pending}
            if plan.pending:
                workers = 1 if plan.in_process else min(plan.workers, len(plan.pending))
                progress.stage(
                    startup_words((t.variant.config["dataset"] for t in plan.pending), workers)
                )

            def on_record(record: dict[str, Any]) -> None:
                progress.finished(record, f"{record['variant_id']}-s{record['seed']}")

            return execute_plan(
                plan,
                on_progress=lambda key, step, total, seed: progress.update(
                    key, step, total, names[key]
                ),
                on_record=on_record,
            )

    return execute


def _look_line(info: dict[str, Any]) -> str:
    """One ``--until-decided`` look, as the stderr line says it."""
    more = f"; next look: {len(info['next'])} variants get more seeds" if info["next"] else ""
    return (
        f"look {info['look']} ({info['seeds']} seeds, alpha {info['alpha']:.2g}): "
        f"{info['decided']} decided, {info['undecided']} undecided{more}"
    )


def train(request: RunRequest, *, warn: Say = _stderr, note: Say = _stderr) -> RunSession:
    """Load, check the gates, plan and train: everything that may run the user's code.

    ``warn`` gets every warning, ``note`` the progress lines (resuming, looks); bad input is an
    ``InputError``/``SuiteError`` raised before any training.
    """
    from normbench.analysis.compare import prepare_baseline
    from normbench.spec import load_suite

    if request.max_seeds is not None and not request.until_decided:
        # silently ignored, it would mislead
        raise InputError("--max-seeds is the seed budget of --until-decided; add --until-decided")
    options = request.options()
    loaded = load_suite(request.suite, list(request.overrides))
    for message in loaded.warnings:
        warn(message)
    baseline = resolve_run_path(request.baseline) if request.baseline else None
    gate = prepare_baseline(
        baseline, list(request.fail_on), loaded.name, list(loaded.gates), warn=warn
    )
    steps = loaded.variants[0].config["training"]["steps"] if loaded.variants else 0
    execute = _executor(request, steps, warn, note)
    command = list(request.command)
    if request.until_decided:
        from normbench.execute.sequential import DEFAULT_MAX_SEEDS, run_until_decided

        outcome = run_until_decided(
            loaded,
            request.out,
            options,
            max_seeds=request.max_seeds or DEFAULT_MAX_SEEDS,
            reference=request.reference,
            command=command,
            execute=execute,
            on_look=lambda info: note(_look_line(info)),
            rel_cost=request.rel_cost,
        ).outcome
    else:
        plan = plan_run(
            loaded,
            request.out,
            options,
            command=command,
            reference=request.reference,
            rel_cost=request.rel_cost,
        )
        outcome = execute(plan)
    return RunSession(request, outcome, gate)
