"""The Python API behind every command: load a suite, run it into a run directory, load runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench import __version__
from normbench.errors import InputError
from normbench.execute import arith
from normbench.execute.local import Task, group_tasks, run_serial
from normbench.execute.merge import MergeOutcome
from normbench.execute.plan import (
    ExecOptions,
    available_memory,
    batches_seeds,
    default_workers,
    format_shard,
    is_large,
    make_options,
    parse_shard,
    remove_stale_temp_files,
    shard_of,
    suite_difference,
    usable_cores,
    valid_result,
)
from normbench.execute.signals import stop_on_signals
from normbench.preflight import fingerprint_difference
from normbench.results.store import (
    RunDir,
    RunLock,
    StorageError,
    atomic_write_text,
    check_output_dir,
    create_run_dir,
    latest_run_dir,
    open_run_dir,
)
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
    threads: int  # intra-op threads per worker process (the most any of its variants use)
    devices: tuple[str, ...]
    reproducible: bool = False
    warnings: list[str] = field(default_factory=list)  # capped workers or threads
    rel_reference: Any = None  # the Variant every relative cost is measured against
    rel_cost: bool = True  # measure ``rel_ms_per_step`` after training
    batched: tuple[str, ...] = ()  # ids of the variants whose seeds train stacked

    data: Any = None  # the pre-flight's DataCheck (None when it was skipped)

    @property
    def isolate(self) -> bool:
        """Custom norms run user code, which may end the interpreter (``os._exit``): such
        tasks always train in a worker process, so the run survives and records the exit."""
        return any(t.variant.config["model"]["norm"]["kind"] == "custom" for t in self.pending)

    @property
    def in_process(self) -> bool:
        """One worker, no devices, no explicit threads: train here, without a worker process.

        ``--workers 1 --threads-per-worker K`` keeps one isolated worker (crash isolation);
        either way the task trains with its planned threads, so the numbers are the same.
        """
        return (
            self.options.executor == "local"
            and self.workers == 1
            and self.options.threads_per_worker is None
            and not self.devices
            and not self.isolate
        )

    def execution(self) -> dict[str, Any]:
        """How the run executes, for the manifest."""
        return {
            "executor": self.options.executor,
            "in_process": self.in_process,
            "workers": self.workers,
            "threads_per_worker": self.threads,
            "devices": list(self.devices),
            "scheduler": self.options.scheduler,
            "batch_seeds": list(self.batched),
        }

    def units(self) -> list[Any]:
        """The pending tasks as units of work: a batched variant's seeds grouped, split so
        that every worker gets a share."""
        if not self.batched:
            return list(self.pending)
        workers = 1 if self.in_process else max(1, self.workers)
        return group_tasks(self.pending, self.batched, -(-len(self.pending) // workers))

    def worker_env(self) -> dict[str, str]:
        """Variables every process that trains must start with (the reproducible mode's)."""
        return arith.pinned_env() if self.reproducible else {}

    def arith(self) -> dict[str, Any]:
        """The manifest's record of what selects the arithmetic (see ``execute.arith``)."""
        threads = [int(v.config["training"]["threads"]) for v in self.suite.variants]
        return arith.run_arith(threads, self.reproducible, _capability(self.reproducible))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tasks_of(suite: Suite) -> list[Task]:
    """Every (variant, seed) of a suite, variants in grid order, seeds inner."""
    return [Task(v, s) for v in suite.variants for s in v.seeds]


def _capability(reproducible: bool) -> str:
    """The CPU capability the run's tasks train with (imports torch)."""
    if reproducible:
        return arith.pinned_capability()
    import torch

    return torch.backends.cpu.get_cpu_capability()


def start_run(
    suite: Suite, out: Path, command: list[str] | None = None, extra: dict[str, Any] | None = None
) -> RunDir:
    """Create the run directory and write ``suite.yaml``, ``resolved.json`` and the manifest."""
    from normbench.results.environment import capture

    devices = {v.config["training"]["device"] for v in suite.variants}
    environment = capture(devices.pop() if len(devices) == 1 else "auto")
    planned = [v.config["training"].get("threads") for v in suite.variants]
    if planned and all(isinstance(t, int) for t in planned):  # what each task trains with
        environment["threads"] = max(planned)
    run_dir = create_run_dir(Path(out), suite.name)
    atomic_write_text(run_dir.path / "suite.yaml", suite.text)
    run_dir.write_json("resolved.json", suite.resolved())
    run_dir.write_manifest(
        {
            "schema_version": 1,
            "normbench_version": __version__,
            "suite_name": suite.name,
            "suite_file": suite.file,
            "command": command or sys.argv,
            "started": _now(),
            "finished": None,
            "status": "running",
            "environment": environment,
            "tasks": len(tasks_of(suite)),
            **(extra or {}),
        }
    )
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
    check_output_dir(run_dir.path, "the run directory")
    RunLock(run_dir.path).check()  # a concurrent run or --resume: refused before any work
    return manifest


def _placement(
    suite: Suite, options: ExecOptions, n_tasks: int, threads: dict[str, int]
) -> tuple[int, tuple[str, ...], list[str]]:
    """Workers and devices, from the options or chosen for this machine, fitted to the cores.

    ``threads`` (variant id → intra-op threads) is already decided from the configuration;
    workers are reduced so that workers × threads never exceeds the usable cores.
    """
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
        workers = default_workers(
            configs, n_tasks, cores=cores, gpus=gpus, memory=available_memory()
        )
    # Processes this machine starts share its cores; a remote cluster's workers are not ours to size.
    if options.executor == "dask" and options.scheduler is not None:
        return workers, devices, []
    workers, _, warnings = arith.fit_to_cores(workers, max(threads.values(), default=1), cores)
    return workers, devices, warnings


def _recorded(resolved: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """Variant id → the resumed run's ``training.KEY`` where it was recorded."""
    out = {}
    for variant in (resolved or {}).get("variants", []):
        value = ((variant.get("config") or {}).get("training") or {}).get(key)
        if value is not None:
            out[variant["id"]] = value
    return out


def _reproducible(suite: Suite, options: ExecOptions, recorded: dict[str, Any]) -> bool:
    """The run's reproducible mode: the resumed run's, else ``--reproducible``, else the suite's."""
    asked = {v.config["training"].get("reproducible") for v in suite.variants} - {None}
    if len(asked) > 1:
        raise InputError(
            "training.reproducible must be the same for every variant of a suite "
            "(kernels are pinned per process, before torch starts)"
        )
    value = (
        options.reproducible if options.reproducible is not None else bool(asked and asked.pop())
    )
    if recorded:
        before = bool(next(iter(recorded.values())))
        if options.reproducible is not None and options.reproducible != before:
            raise InputError(
                f"--{'no-' * before}reproducible contradicts the resumed run, made "
                f"with the reproducible mode {'on' if before else 'off'}; drop the "
                "flag to resume it as it was made"
            )
        value = before
    return value


def _threads(
    suite: Suite, options: ExecOptions, recorded: dict[str, Any]
) -> tuple[dict[str, int], list[str]]:
    """Variant id → intra-op threads, decided from the configuration (and a resumed run's record)."""
    cores = usable_cores()
    threads, warnings = {}, []
    for v in suite.variants:
        if v.id in recorded:  # resume reuses what the run was made with: same arithmetic
            before = int(recorded[v.id])
            if (
                options.threads_per_worker is not None
                and options.threads_per_worker != before
                and v.config["training"].get("threads") is None
            ):
                raise InputError(
                    f"--threads-per-worker {options.threads_per_worker} contradicts "
                    f"the resumed run, made with {before} thread{'s' * (before > 1)} "
                    "per task (results would not be bit-comparable); drop the flag"
                )
            threads[v.id] = before
            continue
        wanted = arith.task_threads(
            v.config["training"].get("threads"), options.threads_per_worker, is_large(v.config)
        )
        _, threads[v.id], capped = arith.fit_to_cores(1, wanted, cores)
        warnings += [w for w in capped if w not in warnings]
    return threads, warnings


def _check_kernels(run_dir: RunDir, manifest: dict[str, Any], reproducible: bool) -> None:
    """Resume only where the tasks will run the kernels the run was made with."""
    made = arith.signature(manifest).get("cpu_capability")
    now = _capability(reproducible)
    if made and made != now:
        raise InputError(
            f"cannot resume {run_dir.path}: it was trained with {made} kernels but "
            f"this machine runs {now} ones (not bit-comparable: {made} vs {now}); "
            "resume it where the CPU capability matches, or start a new run"
        )


def _resolved_suite(suite: Suite, threads: dict[str, int], reproducible: bool) -> Suite:
    """The suite with every variant's ``training.threads`` and ``training.reproducible`` filled in."""
    variants = []
    for v in suite.variants:
        training = {**v.config["training"], "threads": threads[v.id], "reproducible": reproducible}
        variants.append(dataclasses.replace(v, config={**v.config, "training": training}))
    return dataclasses.replace(suite, variants=variants)


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


def pick_reference(suite: Suite, text: str | None) -> Any:
    """The variant ``--reference KEY=VALUE[,…]`` names (default: the suite's first variant)."""
    from normbench.naming import format_value

    if not suite.variants:
        return None
    if not text:
        return suite.variants[0]
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--reference expects KEY=VALUE[,KEY=VALUE…], got '{part}'")
        pairs[key.strip()] = value.strip()
    for key in pairs:
        if all(key not in v.params for v in suite.variants):
            swept = sorted({k for v in suite.variants for k in v.params})
            raise InputError(
                f"--reference: '{key}' is not swept by the suite "
                f"(swept: {', '.join(swept) or 'nothing'})"
            )
    for v in suite.variants:
        if all(
            key in v.params and format_value(v.params[key]) == value for key, value in pairs.items()
        ):
            return v
    raise InputError(f"--reference: no variant of the suite has {text}")


def plan_run(
    suite: Suite,
    out: Path = Path("reports/runs"),
    options: ExecOptions | None = None,
    command: list[str] | None = None,
    *,
    reference: str | None = None,
    rel_cost: bool = True,
) -> RunPlan:
    """Validate the execution options against the suite; resolve resume and shard; pick workers.

    ``reference`` names the variant relative costs are measured against (a resumed run keeps
    the one it recorded); ``rel_cost=False`` skips that measurement.
    """
    options = options or ExecOptions()
    shard = options.shard
    resume_dir, done, resolved, manifest = None, {}, None, None
    if options.resume:
        resume_dir = _resume_target(options.resume, out, suite)
        manifest = _check_resumable(resume_dir, suite)
        resolved = resume_dir.read_resolved()
        recorded = manifest.get("shard")
        if shard is not None and recorded != format_shard(shard):
            what = f"shard {recorded}" if recorded else "not sharded"
            raise InputError(
                f"--shard {format_shard(shard)} does not match the resumed run ({what})"
            )
        if recorded:
            shard = parse_shard(recorded)
    else:
        check_output_dir(Path(out), "--out")
    reproducible = _reproducible(suite, options, _recorded(resolved, "reproducible"))
    if reproducible and "torch" not in sys.modules:
        arith.apply_pinned_env()  # this process (and every worker it starts) trains pinned
    threads, warnings = _threads(suite, options, _recorded(resolved, "threads"))
    suite = _resolved_suite(suite, threads, reproducible)
    if resume_dir is not None and manifest is not None:
        _check_kernels(resume_dir, manifest, reproducible)
    tasks = tasks_of(suite)
    if shard is not None:
        tasks = shard_of(tasks, shard)
    data = None
    if options.executor == "local" or options.scheduler is None:  # a cluster's data are its own
        data = _preflight(suite, tasks)
    if resume_dir is not None:
        why = fingerprint_difference(manifest.get("data"), data) if data is not None else None
        if why:
            raise InputError(
                f"cannot resume {resume_dir.path}: {why}; resuming would mix old "
                "and new data in one run (start a new run instead)"
            )
        for t in tasks:
            record = valid_result(
                resume_dir.result_path(t.variant.id, t.seed), t.variant.id, t.seed
            )
            # A failed result is retried (a failure may be transient) unless --no-retry.
            if record is not None and (record["status"] != "failed" or not options.retry_failed):
                done[t.key] = record
    pending = [t for t in tasks if t.key not in done]
    check_models(suite, [t.variant for t in pending])
    workers, devices, capped = _placement(suite, options, len(pending), threads)
    if reference is None and resume_dir is not None:
        recorded = resume_dir.read_manifest().get("rel_cost_reference")
        ref = next((v for v in suite.variants if v.id == recorded), None)
        ref = ref or pick_reference(suite, None)
    else:
        ref = pick_reference(suite, reference)
    batched = _batched_variants(suite, pending, devices)
    return RunPlan(
        batched=batched,
        suite=suite,
        out=Path(out),
        options=options,
        command=command or ["normbench", *sys.argv[1:]],
        tasks=tasks,
        pending=pending,
        done=done,
        resume_dir=resume_dir,
        shard=shard,
        workers=workers,
        threads=max(threads.values(), default=1),
        devices=devices,
        reproducible=reproducible,
        warnings=warnings + capped,
        rel_reference=ref,
        rel_cost=rel_cost,
        data=data,
    )


def _preflight(suite: Suite, tasks: list[Task]) -> Any:
    """Load and check the data of every variant in ``tasks`` before anything starts."""
    from normbench.preflight import check_data

    variants = list({t.variant.id: t.variant for t in tasks}.values())
    return check_data(suite, variants)


def _batched_variants(
    suite: Suite, pending: list[Task], devices: tuple[str, ...]
) -> tuple[str, ...]:
    """Ids of the variants whose pending seeds train as one stacked model (``batch_seeds``)."""
    # Decided from the variant's whole seed list, never from what is pending here, so a shard
    # or a resumed run trains each seed on the same path as the unsharded run (same numbers).
    todo = {task.variant.id for task in pending}
    wanted = [
        v
        for v in suite.variants
        if v.id in todo and v.config["training"].get("batch_seeds", "auto") is not False
    ]
    if not wanted:
        return ()
    accelerator = any(d != "cpu" for d in devices) or (
        any(v.config["training"]["device"] == "auto" for v in wanted) and _visible_gpus(suite) > 0
    )
    return tuple(
        v.id for v in wanted if batches_seeds(v.config, len(v.seeds), accelerator=accelerator)
    )


def _needs_preflight(config: dict[str, Any]) -> bool:
    """Custom models and datasets, and probes addressed by module path, are checked on data."""
    diags = config.get("diagnostics") or {}
    paths = isinstance((diags.get("activations") or {}).get("layer"), str) or any(
        isinstance(x, str) for x in (diags.get("ics") or {}).get("layers") or []
    )
    return config["model"]["kind"] == "custom" or config["dataset"]["name"] == "custom" or paths


def check_models(suite: Suite, variants: list[Any] | None = None) -> dict[str, Any]:
    """The pre-flight stage: build each custom model and run one batch, before training.

    Returns variant id → ``ModelCheck`` for custom models. A factory that raises, returns
    no module or the wrong output shape, a norm that cannot replace a layer, a probe path
    the model lacks: a located ``SuiteError`` (exit 2), and nothing has been trained yet.
    """
    from normbench.errors import OptionError, SuiteError
    from normbench.execute.local import load_split

    checks: dict[str, Any] = {}
    done: dict[str, Any] = {}
    for variant in suite.variants if variants is None else variants:
        config = variant.config
        if not _needs_preflight(config):
            continue
        key = json.dumps(
            {k: config[k] for k in ("dataset", "model", "diagnostics")}
            | {"batch": config["training"]["batch_size"]},
            sort_keys=True,
            default=str,
        )
        try:
            if key not in done:
                split = load_split(config)
                done[key] = _preflight_one(config, split)
            if done[key] is not None:
                checks[variant.id] = done[key]
        except OptionError as exc:
            prefix = f"variant '{variant.name}': " if suite.grid_keys else ""
            raise _locate(suite, variant, OptionError(prefix + exc.message, exc.path)) from None
        except InputError as exc:
            raise SuiteError(str(exc).rstrip("."), file=suite.file, path=("dataset",)) from None
    return checks


def _preflight_one(config: dict[str, Any], split: Any) -> Any:
    from normbench.models import build
    from normbench.models.custom import check_probe_paths, preflight

    if config["model"]["kind"] == "custom":
        return preflight(config, split)
    if config["diagnostics"]:
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build(config["model"], tuple(split.x_train.shape[1:]), int(split.num_outputs))
        check_probe_paths(model, config["diagnostics"])
    return None


def _locate(suite: Suite, variant: Any, exc: Any) -> Any:
    """A ``SuiteError`` at the grid entry responsible (as at load time), else at the key."""
    from normbench.spec import _Locator, canonical_key
    from normbench.yamlsrc import parse_yaml

    try:
        _, lines = parse_yaml(suite.text, suite.file)
    except Exception:  # the text parsed once already; without lines the file still names it
        lines = {}
    loc = _Locator(suite.file, lines, {})
    grid = suite.raw.get("grid") or {}
    for key, value in variant.params.items():
        gpath = canonical_key(key)
        if exc.path[: len(gpath)] == gpath and key in grid:
            index = next((i for i, v in enumerate(grid[key]) if v == value), None)
            if index is not None:
                return loc.error(exc.message, ("grid", key, index))
    return loc.error(exc.message, exc.path)


def _reopen(plan: RunPlan) -> RunDir:
    """Mark a resumed run as running again, noting this resumption in its manifest."""
    run_dir = plan.resume_dir
    assert run_dir is not None
    remove_stale_temp_files(run_dir.path)  # left by a writer that was killed mid-write
    manifest = run_dir.read_manifest()
    manifest.setdefault("resumes", []).append(
        {
            "started": _now(),
            "command": plan.command,
            "previous_status": manifest.get("status"),
            "already_done": len(plan.done),
            "execution": plan.execution(),
        }
    )
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
            run_dir = _reopen(plan)
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


def merge_runs(
    dirs: list[Path], out: Path, command: list[str] | None = None, report: bool = True
) -> MergeOutcome:
    """Merge shard run directories into a new run under ``out`` and write its report (when available)."""
    from normbench.execute.merge import merge_runs as merge

    outcome = merge(dirs, Path(out), command or ["normbench", *sys.argv[1:]])
    if report:
        try:
            from normbench.report.api import write_report
        except (
            ImportError
        ):  # the report writer is optional here: the merged run is complete without it
            return outcome
        write_report(outcome.run_dir.path)
    return outcome


def load_run(path: str | Path) -> RunDir:
    """Open a stored run directory (``InputError`` when it is not one)."""
    return open_run_dir(Path(path))


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
                _preflight(suite, tasks_of(suite))
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
    "InputError",
    "MergeOutcome",
    "RunOutcome",
    "RunPlan",
    "compare_runs",
    "execute_plan",
    "load_run",
    "load_suite",
    "make_options",
    "merge_runs",
    "plan_run",
    "run_suite",
    "validate_files",
]
