"""Executing a plan: the executor trains the pending tasks, then relative costs are measured."""

from __future__ import annotations

import contextlib
import sys
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from normbench.execute.local import run_serial
from normbench.execute.plan import ExecOptions, format_shard, valid_result
from normbench.execute.run_dir import finish_run, reopen, start_run
from normbench.execute.run_plan import RunPlan, plan_run
from normbench.execute.signals import stop_on_signals
from normbench.results.store import RunDir, RunLock, StorageError
from normbench.spec import Suite

if TYPE_CHECKING:  # the pool module is imported only when a run has workers
    from normbench.execute.pool import Pair


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
    # Signals are handled until the workers are gone (the pool closes first, inside the guard).
    with stop_on_signals(raise_interrupt=plan.in_process) as stop_asked, ExitStack() as stack:
        if plan.resume_dir is not None:  # before anything is written: one writer per directory
            stack.enter_context(RunLock(plan.resume_dir.path))
        # Workers start up (import torch) while the parent sets up the run and imports torch.
        pool = stack.enter_context(_worker_pool(plan))
        if plan.resume_dir is not None:
            run_dir = reopen(plan)
        else:
            run_dir = start_run(plan.suite, plan.out, plan.command, _manifest_extra(plan))
            stack.enter_context(RunLock(run_dir.path))

        def keep(record: dict[str, Any]) -> None:
            if on_record is not None:
                on_record(record)

        def store(record: dict[str, Any]) -> None:
            run_dir.write_result(record)
            keep(record)

        interrupted = False
        costs = _Costs(plan, run_dir) if plan.rel_cost and plan.rel_reference else None
        if costs is not None and pool is not None and plan.resume_dir is not None:
            costs.backlog = [p for r in _stored(plan, run_dir) if (p := costs.pair(r)) is not None]
        try:
            interrupted = not _dispatch(
                plan, run_dir, pool, store, keep, on_progress, stop_asked, costs
            )
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
    records = _stored(plan, run_dir)
    if costs is not None and not interrupted:
        # What the workers did not measure (all of it in-process, or results of an earlier
        # session in a resumed run). SIGTERM/SIGINT here lose only the relative costs not yet
        # written: the run is then `interrupted`, and --resume measures what is missing.
        try:
            with stop_on_signals(raise_interrupt=True):
                costs.measure_here(records, plan.threads)
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


def _manifest_extra(plan: RunPlan) -> dict[str, Any]:
    """What the manifest records about this execution (the arithmetic record imports torch)."""
    extra: dict[str, Any] = {"execution": plan.execution(), "arith": plan.arith()}
    if plan.rel_reference is not None:
        extra["rel_cost_reference"] = plan.rel_reference.id
    if plan.data is not None:
        extra["data"] = plan.data.manifest()
    if plan.shard is not None:
        extra["shard"] = format_shard(plan.shard)
        extra["tasks_in_shard"] = len(plan.tasks)
    return extra


def _stored(plan: RunPlan, run_dir: RunDir) -> list[dict[str, Any]]:
    """The plan's valid result files. The files are the truth: a worker may have written a
    result its "done" never announced."""
    return [
        r
        for t in plan.tasks
        if (r := valid_result(run_dir.result_path(t.variant.id, t.seed), t.variant.id, t.seed))
    ]


class _Costs:
    """The relative costs (``rel_ms_per_step``) a run measures, stored into the result files.

    Measured after training, so that a variant and its reference are timed back to back in
    one process on the same machine (``normbench.train.relcost``): by the workers as the
    variants finish, or here after an in-process run. A resumed run measures only the
    results that have no value yet; a shard measures its own results against the reference,
    so a merged run has a value for every result. Each result is asked for once.
    """

    def __init__(self, plan: RunPlan, run_dir: RunDir) -> None:
        self.ref = plan.rel_reference
        self.reference = (self.ref.id, self.ref.config)
        self.run_dir = run_dir
        self.configs = {v.id: v.config for v in plan.suite.variants}
        self.asked: dict[tuple[str, int], dict[str, Any]] = {}
        self.backlog: list[Pair] = []

    def pair(self, record: dict[str, Any]) -> Pair | None:
        """What ``record`` needs measured: None when it failed, has a value or was asked for."""
        key = (str(record.get("variant_id")), record.get("seed"))
        if (
            record.get("status") == "failed"
            or (record.get("metrics") or {}).get("rel_ms_per_step") is not None
            or key in self.asked
            or key[0] not in self.configs
        ):
            return None
        self.asked[key] = record
        train_seconds = (record.get("timing") or {}).get("train_seconds")
        return key[0], self.configs[key[0]], int(record["seed"]), train_seconds

    def store(self, costs: dict[tuple[str, int], dict[str, Any]]) -> None:
        """Write measured costs into their results' files."""
        for key, cost in costs.items():
            record = self.asked.get(key)
            if record is None:
                continue
            record.setdefault("metrics", {})["rel_ms_per_step"] = round(cost["median"], 5)
            record.setdefault("timing", {})["rel_cost"] = {**cost, "reference_name": self.ref.name}
            self.run_dir.write_result(record)

    def warn(self, message: str) -> None:
        _stderr(message)

    def measure_here(self, records: list[dict[str, Any]], threads: int | None) -> None:
        """Measure, in this process, what ``records`` still need."""
        pairs = [p for r in records if (p := self.pair(r)) is not None]
        if not pairs:
            return
        from normbench.execute.local import pinned_threads
        from normbench.train.relcost import measure

        with pinned_threads(threads):
            self.store(measure(pairs, self.reference, warn=self.warn))


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
    costs: _Costs | None,
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
        costs=costs,
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
