"""Executing a plan: the executor trains the pending tasks, then relative costs are measured."""

from __future__ import annotations

import contextlib
import sys
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from normbench.execute.local import run_serial
from normbench.execute.plan import ExecOptions, format_shard, valid_result
from normbench.execute.run_dir import finish_run, reopen, start_run
from normbench.execute.run_plan import RunPlan, plan_run
from normbench.execute.signals import stop_on_signals
from normbench.results.store import RunDir, RunLock, StorageError
from normbench.spec import Suite


@dataclass
class RunOutcome:
    """What ``run_suite`` produced: the directory, every record, and the exit code to use."""

    run_dir: RunDir
    records: list[dict[str, Any]] = field(default_factory=list)
    status: str = "complete"
    resumed: int = 0  # results that were already complete in a resumed run directory

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


def _final_status(records: list[dict[str, Any]], expected: int, interrupted: bool) -> str:
    if interrupted or len(records) < expected:
        return "interrupted"
    return "failed" if any(r.get("status") == "failed" for r in records) else "complete"


def execute_plan(plan: RunPlan, *, on_progress: Any = None, on_record: Any = None) -> RunOutcome:
    """Run the plan's pending tasks; results are stored as each one finishes.

    Ctrl-C or SIGTERM stops launching tasks and abandons the running ones (their partial
    work is never written); everything finished stays on disk, the manifest says
    ``interrupted`` and ``--resume`` picks up from there.
    """
    extra: dict[str, Any] = {"execution": plan.execution(), "arith": plan.arith()}
    if plan.rel_reference is not None:
        extra["rel_cost_reference"] = plan.rel_reference.id
    if plan.data is not None:
        extra["data"] = plan.data.manifest()
    if plan.shard is not None:
        extra["shard"] = format_shard(plan.shard)
        extra["tasks_in_shard"] = len(plan.tasks)
    # Signals are handled until the workers are gone (the pool closes first, inside the guard).
    with stop_on_signals(raise_interrupt=plan.in_process) as stop_asked, ExitStack() as stack:
        if plan.resume_dir is not None:  # before anything is written: one writer per directory
            stack.enter_context(RunLock(plan.resume_dir.path))
        pool = stack.enter_context(_worker_pool(plan))  # workers start up while we set up the run
        if plan.resume_dir is not None:
            run_dir = reopen(plan)
        else:
            run_dir = start_run(plan.suite, plan.out, plan.command, extra)
            stack.enter_context(RunLock(run_dir.path))

        def keep(record: dict[str, Any]) -> None:
            if on_record is not None:
                on_record(record)

        def store(record: dict[str, Any]) -> None:
            run_dir.write_result(record)
            keep(record)

        interrupted = False
        try:
            interrupted = not _dispatch(plan, run_dir, pool, store, keep, on_progress, stop_asked)
        except KeyboardInterrupt:
            interrupted = True
        except StorageError:  # disk full, permission lost: stop; what is stored stays resumable
            with contextlib.suppress(StorageError):
                finish_run(run_dir, "interrupted")
            raise
        except BaseException:  # e.g. an unreachable scheduler: the run is over, say so
            finish_run(run_dir, "failed")
            raise
    interrupted = interrupted or stop_asked()
    # The files are the truth: a worker may have written a result its "done" never announced.
    records = [
        r
        for t in plan.tasks
        if (r := valid_result(run_dir.result_path(t.variant.id, t.seed), t.variant.id, t.seed))
    ]
    if plan.rel_cost and not interrupted:
        # SIGTERM/SIGINT here lose only the relative costs not yet written: the run is then
        # `interrupted`, and --resume measures what is missing.
        try:
            with stop_on_signals(raise_interrupt=True):
                records = _relative_cost(plan, run_dir, records)
        except KeyboardInterrupt:
            interrupted = True
    outcome = RunOutcome(
        run_dir,
        records,
        _final_status(records, len(plan.tasks), interrupted),
        resumed=len(plan.done),
    )
    finish_run(run_dir, outcome.status)
    return outcome


def _relative_cost(
    plan: RunPlan, run_dir: RunDir, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Measure ``rel_ms_per_step`` for the records that lack it and store it in their files.

    Done here, after every executor and in this one process, so that the variant and its
    reference are timed back to back on the same machine (``normbench.train.relcost``). A
    resumed run measures only the results that have no value yet; a shard measures its own
    results against the reference, so a merged run has a value for every result.
    """
    ref = plan.rel_reference
    if ref is None:
        return records
    todo = [
        r
        for r in records
        if r.get("status") != "failed" and (r.get("metrics") or {}).get("rel_ms_per_step") is None
    ]
    if not todo:
        return records
    from normbench.execute.local import pinned_threads
    from normbench.train.relcost import measure

    configs = {v.id: v.config for v in plan.suite.variants}
    pairs = [
        (
            str(r["variant_id"]),
            configs[r["variant_id"]],
            int(r["seed"]),
            (r.get("timing") or {}).get("train_seconds"),
        )
        for r in todo
        if r.get("variant_id") in configs
    ]
    with pinned_threads(plan.threads):
        costs = measure(pairs, (ref.id, ref.config), warn=_stderr)
    for r in todo:
        cost = costs.get((str(r.get("variant_id")), r.get("seed")))
        if cost is None:
            continue
        r.setdefault("metrics", {})["rel_ms_per_step"] = round(cost["median"], 5)
        r.setdefault("timing", {})["rel_cost"] = {**cost, "reference_name": ref.name}
        run_dir.write_result(r)
    return records


def _stderr(message: str) -> None:
    print(f"normbench: warning: {message}", file=sys.stderr)


def _worker_pool(plan: RunPlan) -> Any:
    """The local worker processes the plan needs (started now), or a null context."""
    if plan.options.executor != "local" or plan.in_process or not plan.pending:
        return nullcontext()
    from normbench.execute.pool import WorkerPool

    return WorkerPool(
        min(plan.workers, len(plan.pending)), plan.threads, plan.devices, env=plan.worker_env()
    )


def _dispatch(
    plan: RunPlan,
    run_dir: RunDir,
    pool: Any,
    store: Any,
    keep: Any,
    on_progress: Any,
    stop_asked: Any,
) -> bool:
    """Hand the pending tasks to the chosen executor; False when it was stopped."""
    if not plan.pending:
        return True
    if plan.options.executor == "dask":
        from normbench.execute.dask_backend import run_dask

        return run_dask(
            plan.units(),
            scheduler=plan.options.scheduler,
            workers=plan.workers,
            threads=plan.threads,
            on_result=store,
            on_progress=on_progress,
            should_stop=stop_asked,
            env=plan.worker_env(),
        )
    if plan.in_process:
        run_serial(plan.units(), store, on_progress)
        return True
    # Workers write their own results; the parent writes only the records of dead workers.
    return pool.run(
        plan.units(),
        run_dir.path,
        on_result=keep,
        on_progress=on_progress,
        should_stop=stop_asked,
        write_failure=run_dir.write_result,
    )


def run_suite(
    suite: Suite,
    out: Path = Path("reports/runs"),
    *,
    on_progress: Any = None,
    on_record: Any = None,
    command: list[str] | None = None,
    options: ExecOptions | None = None,
    reference: str | None = None,
    rel_cost: bool = True,
) -> RunOutcome:
    """Train every variant × seed of ``suite`` (see ``plan_run`` and ``execute_plan``)."""
    plan = plan_run(suite, out, options, command, reference=reference, rel_cost=rel_cost)
    return execute_plan(plan, on_progress=on_progress, on_record=on_record)
