"""The Python API behind every command: load a suite, run it into a run directory, load runs."""

from __future__ import annotations

import sys
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench import __version__
from normbench.errors import InputError
from normbench.execute.local import Task, group_tasks, run_serial
from normbench.execute.merge import MergeOutcome
from normbench.execute.plan import (
    ExecOptions,
    available_memory,
    batches_seeds,
    default_threads,
    default_workers,
    format_shard,
    make_options,
    parse_shard,
    remove_stale_temp_files,
    shard_of,
    suite_difference,
    usable_cores,
    valid_result,
)
from normbench.execute.signals import stop_on_signals
from normbench.results.store import RunDir, create_run_dir, latest_run_dir, open_run_dir
from normbench.spec import Suite, load_suite

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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


@dataclass
class RunPlan:
    """A validated plan: which tasks run where, how, and into which run directory."""

    suite: Suite
    out: Path
    options: ExecOptions
    command: list[str]
    tasks: list[Task]  # every task of this run (the shard's, when sharded)
    pending: list[Task]  # those still to train
    done: dict[str, dict[str, Any]]  # task key → complete record already on disk (resume)
    resume_dir: RunDir | None
    shard: tuple[int, int] | None
    workers: int
    threads: int | None  # intra-op threads per worker process (None: torch's default)
    devices: tuple[str, ...]
    batched: tuple[str, ...] = ()  # ids of the variants whose pending seeds train stacked

    @property
    def in_process(self) -> bool:
        """One worker, no pinned threads or devices: train here, without a worker process."""
        return (self.options.executor == "local" and self.workers == 1
                and self.options.threads_per_worker is None and not self.devices)

    def execution(self) -> dict[str, Any]:
        """How the run executes, for the manifest."""
        return {"executor": self.options.executor, "in_process": self.in_process,
                "workers": self.workers, "threads_per_worker": self.threads,
                "devices": list(self.devices), "scheduler": self.options.scheduler,
                "batch_seeds": list(self.batched)}

    def units(self) -> list[Any]:
        """The pending tasks as units of work: a batched variant's seeds grouped, split so
        that every worker gets a share."""
        if not self.batched:
            return list(self.pending)
        workers = 1 if self.in_process else max(1, self.workers)
        return group_tasks(self.pending, self.batched, -(-len(self.pending) // workers))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tasks_of(suite: Suite) -> list[Task]:
    """Every (variant, seed) of a suite, variants in grid order, seeds inner."""
    return [Task(v, s) for v in suite.variants for s in v.seeds]


def start_run(suite: Suite, out: Path, command: list[str] | None = None,
              extra: dict[str, Any] | None = None) -> RunDir:
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
        "tasks": len(tasks_of(suite)), **(extra or {}),
    })
    return run_dir


def finish_run(run_dir: RunDir, status: str) -> None:
    """Record the final status and end time in the manifest."""
    manifest = run_dir.read_manifest()
    manifest.update(status=status, finished=_now())
    run_dir.write_manifest(manifest)


def _resume_target(resume: str, out: Path, suite: Suite) -> RunDir:
    """The run directory ``--resume`` names (``latest``: the newest run of this suite)."""
    try:
        if resume == "latest":
            return latest_run_dir(Path(out), suite.name)
        return open_run_dir(Path(resume))
    except InputError as exc:
        raise InputError(f"--resume{' latest' if resume == 'latest' else ''}: {exc}") from None


def _check_resumable(run_dir: RunDir, suite: Suite) -> dict[str, Any]:
    """The run's manifest, after checking that its suite is this suite (``InputError`` if not)."""
    manifest = run_dir.read_manifest()
    resolved = run_dir.read_resolved()
    if resolved is None:
        raise InputError(f"--resume: {run_dir.path} has no resolved.json, so it cannot be resumed")
    why = suite_difference(resolved, suite.resolved())
    if why:
        raise InputError(f"cannot resume {run_dir.path}: suite differs from the run's: {why}")
    return manifest


def _placement(suite: Suite, options: ExecOptions, n_tasks: int) -> tuple[int, int | None, tuple[str, ...]]:
    """Workers, threads per worker and devices, from the options or chosen for this machine."""
    cores = usable_cores()
    devices = options.devices
    gpus = 0
    if options.executor == "local" and not devices:
        gpus = _visible_gpus(suite)
        if gpus > 1:  # several GPUs and the suite lets us choose: one worker per GPU
            devices = tuple(f"cuda:{k}" for k in range(gpus))
    for device in devices:
        _check_device(device)
    configs = [v.config for v in suite.variants]
    if options.workers is not None:
        workers = options.workers
    elif devices:
        workers = min(len(devices), max(1, n_tasks))
    else:
        workers = default_workers(configs, n_tasks, cores=cores, gpus=gpus, memory=available_memory())
    threads = options.threads_per_worker
    # Processes this machine starts share its cores; a remote cluster's workers are not ours to size.
    if options.executor == "local":
        starts_processes = workers > 1 or bool(devices)
    else:
        starts_processes = options.scheduler is None
    if threads is None and starts_processes:
        threads = default_threads(workers, cores)
    return workers, threads, devices


def _visible_gpus(suite: Suite) -> int:
    """CUDA devices usable for placement: only when every variant leaves the device open."""
    if any(v.config["training"]["device"] not in ("auto", "cuda") for v in suite.variants):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _check_device(device: str) -> None:
    from normbench.train.device import resolve_device

    try:
        resolve_device(device)
    except InputError as exc:
        raise InputError(f"--devices: {exc}") from None


def plan_run(suite: Suite, out: Path = Path("reports/runs"), options: ExecOptions | None = None,
             command: list[str] | None = None) -> RunPlan:
    """Validate the execution options against the suite; resolve resume and shard; pick workers."""
    options = options or ExecOptions()
    shard = options.shard
    resume_dir, done = None, {}
    if options.resume:
        resume_dir = _resume_target(options.resume, out, suite)
        manifest = _check_resumable(resume_dir, suite)
        recorded = manifest.get("shard")
        if shard is not None and recorded != format_shard(shard):
            what = f"shard {recorded}" if recorded else "not sharded"
            raise InputError(f"--shard {format_shard(shard)} does not match the resumed run ({what})")
        if recorded:
            shard = parse_shard(recorded)
    tasks = tasks_of(suite)
    if shard is not None:
        tasks = shard_of(tasks, shard)
    if resume_dir is not None:
        for t in tasks:
            record = valid_result(resume_dir.result_path(t.variant.id, t.seed), t.variant.id, t.seed)
            if record is not None:
                done[t.key] = record
    pending = [t for t in tasks if t.key not in done]
    workers, threads, devices = _placement(suite, options, len(pending))
    batched = _batched_variants(suite, pending, devices)
    return RunPlan(batched=batched, suite=suite, out=Path(out), options=options,
                   command=command or ["normbench", *sys.argv[1:]], tasks=tasks, pending=pending,
                   done=done, resume_dir=resume_dir, shard=shard, workers=workers, threads=threads,
                   devices=devices)


def _batched_variants(suite: Suite, pending: list[Task], devices: tuple[str, ...]) -> tuple[str, ...]:
    """Ids of the variants whose pending seeds train as one stacked model (``batch_seeds``)."""
    # Decided from the variant's whole seed list, never from what is pending here, so a shard
    # or a resumed run trains each seed on the same path as the unsharded run (same numbers).
    todo = {task.variant.id for task in pending}
    wanted = [v for v in suite.variants if v.id in todo
              and v.config["training"].get("batch_seeds", "auto") is not False]
    if not wanted:
        return ()
    accelerator = any(d != "cpu" for d in devices) or (
        any(v.config["training"]["device"] == "auto" for v in wanted) and _visible_gpus(suite) > 0)
    return tuple(v.id for v in wanted
                 if batches_seeds(v.config, len(v.seeds), accelerator=accelerator))


def _reopen(plan: RunPlan) -> RunDir:
    """Mark a resumed run as running again, noting this resumption in its manifest."""
    run_dir = plan.resume_dir
    assert run_dir is not None
    remove_stale_temp_files(run_dir.path)  # left by a writer that was killed mid-write
    manifest = run_dir.read_manifest()
    manifest.setdefault("resumes", []).append({
        "started": _now(), "command": plan.command, "previous_status": manifest.get("status"),
        "already_done": len(plan.done), "execution": plan.execution()})
    manifest.update(status="running", finished=None)
    run_dir.write_manifest(manifest)
    return run_dir


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
    extra: dict[str, Any] = {"execution": plan.execution()}
    if plan.shard is not None:
        extra["shard"] = format_shard(plan.shard)
        extra["tasks_in_shard"] = len(plan.tasks)
    # Signals are handled until the workers are gone (the pool closes first, inside the guard).
    with stop_on_signals(raise_interrupt=plan.in_process) as stop_asked, ExitStack() as stack:
        pool = stack.enter_context(_worker_pool(plan))  # workers start up while we set up the run
        run_dir = _reopen(plan) if plan.resume_dir else start_run(plan.suite, plan.out, plan.command, extra)

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
        except BaseException:  # e.g. an unreachable scheduler: the run is over, say so
            finish_run(run_dir, "failed")
            raise
    interrupted = interrupted or stop_asked()
    # The files are the truth: a worker may have written a result its "done" never announced.
    records = [r for t in plan.tasks
               if (r := valid_result(run_dir.result_path(t.variant.id, t.seed), t.variant.id, t.seed))]
    outcome = RunOutcome(run_dir, records, _final_status(records, len(plan.tasks), interrupted),
                         resumed=len(plan.done))
    finish_run(run_dir, outcome.status)
    return outcome


def _worker_pool(plan: RunPlan) -> Any:
    """The local worker processes the plan needs (started now), or a null context."""
    if plan.options.executor != "local" or plan.in_process or not plan.pending:
        return nullcontext()
    from normbench.execute.pool import WorkerPool

    return WorkerPool(min(plan.workers, len(plan.pending)), plan.threads, plan.devices)


def _dispatch(plan: RunPlan, run_dir: RunDir, pool: Any, store: Any, keep: Any, on_progress: Any,
              stop_asked: Any) -> bool:
    """Hand the pending tasks to the chosen executor; False when it was stopped."""
    if not plan.pending:
        return True
    if plan.options.executor == "dask":
        from normbench.execute.dask_backend import run_dask

        return run_dask(plan.units(), scheduler=plan.options.scheduler, workers=plan.workers,
                        threads=plan.threads, on_result=store, on_progress=on_progress,
                        should_stop=stop_asked)
    if plan.in_process:
        run_serial(plan.units(), store, on_progress)
        return True
    # Workers write their own results; the parent writes only the records of dead workers.
    return pool.run(plan.units(), run_dir.path, on_result=keep, on_progress=on_progress,
                    should_stop=stop_asked, write_failure=run_dir.write_result)


def run_suite(suite: Suite, out: Path = Path("reports/runs"), *, on_progress: Any = None,
              on_record: Any = None, command: list[str] | None = None,
              options: ExecOptions | None = None) -> RunOutcome:
    """Train every variant × seed of ``suite`` (see ``plan_run`` and ``execute_plan``)."""
    plan = plan_run(suite, out, options, command)
    return execute_plan(plan, on_progress=on_progress, on_record=on_record)


def merge_runs(dirs: list[Path], out: Path, command: list[str] | None = None,
               report: bool = True) -> MergeOutcome:
    """Merge shard run directories into a new run under ``out`` and write its report (when available)."""
    from normbench.execute.merge import merge_runs as merge

    outcome = merge(dirs, Path(out), command or ["normbench", *sys.argv[1:]])
    if report:
        try:
            from normbench.report.api import write_report
        except ImportError:  # the report writer is optional here: the merged run is complete without it
            return outcome
        write_report(outcome.run_dir.path)
    return outcome


def load_run(path: str | Path) -> RunDir:
    """Open a stored run directory (``InputError`` when it is not one)."""
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


def compare_runs(baseline: str | Path, candidate: str | Path | None = None, **options: Any) -> Any:
    """``normbench compare``: a ``Comparison`` of two runs, or of one run's variants with
    ``reference=``; options: ``gates``, ``metrics``, ``alpha``, ``stats``, ``warn``
    (see ``normbench.analysis.compare.compare_runs``; torch-free)."""
    from normbench.analysis.compare import compare_runs as _compare

    return _compare(baseline, candidate, **options)


__all__ = ["EXIT_FAILED", "EXIT_GATE", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "ExecOptions",
           "InputError", "MergeOutcome", "RunOutcome", "RunPlan", "compare_runs", "execute_plan", "load_run",
           "load_suite", "make_options", "merge_runs", "plan_run", "run_suite", "validate_files"]
