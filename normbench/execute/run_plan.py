"""Planning a run: tasks, workers, threads, devices, resume and shard, before anything trains."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normbench import arith
from normbench.errors import InputError, shorten
from normbench.execute.local import Task, group_tasks, members
from normbench.execute.machine import machine
from normbench.execute.model_check import check_models
from normbench.execute.plan import (
    ExecOptions,
    available_memory,
    batches_seeds,
    default_workers,
    estimated_seconds,
    format_shard,
    is_large,
    parse_shard,
    shard_of,
    suite_difference,
    usable_cores,
    valid_result,
)
from normbench.preflight import fingerprint_difference
from normbench.results.store import (
    RunDir,
    RunLock,
    check_output_dir,
    latest_run_dir,
    open_run_dir,
)
from normbench.spec import Suite


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
    costs: dict[str, float] = field(default_factory=dict)  # variant id → seconds per task

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
        that every worker gets a share. Several workers take the longest units first (by
        estimated cost; the suite's order among equals), so that the run does not end with
        one worker training a long variant while the others idle. The order changes no
        number: every task is seeded on its own."""
        workers = 1 if self.in_process else max(1, self.workers)
        units = (
            group_tasks(self.pending, self.batched, -(-len(self.pending) // workers))
            if self.batched
            else list(self.pending)
        )
        if workers > 1:
            units.sort(key=lambda u: -self.costs.get(u.variant.id, 0.0) * len(members(u)))
        return units

    def worker_env(self) -> dict[str, str]:
        """Variables every process that trains must start with (the reproducible mode's)."""
        return arith.pinned_env() if self.reproducible else {}

    def arith(self) -> dict[str, Any]:
        """The manifest's record of what selects the arithmetic (see ``execute.arith``)."""
        threads = [int(v.config["training"]["threads"]) for v in self.suite.variants]
        return arith.run_arith(threads, self.reproducible, _capability(self.reproducible))


def tasks_of(suite: Suite) -> list[Task]:
    """Every (variant, seed) of a suite, variants in grid order, seeds inner."""
    return [Task(v, s) for v in suite.variants for s in v.seeds]


def _capability(reproducible: bool) -> str:
    """The CPU capability the run's tasks train with (imports torch)."""
    if reproducible:
        return arith.pinned_capability()
    import torch

    return torch.backends.cpu.get_cpu_capability()


def resume_target(resume: str, out: Path, suite: Suite) -> RunDir:
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
    suite: Suite,
    options: ExecOptions,
    pending: list[Task],
    threads: dict[str, int],
    costs: dict[str, float],
) -> tuple[int, tuple[str, ...], list[str]]:
    """Workers and devices, from the options or chosen for this machine, fitted to the cores.

    ``threads`` (variant id → intra-op threads) is already decided from the configuration;
    workers are reduced so that workers × threads never exceeds the usable cores (with a
    warning only when the user asked for the workers).
    """
    cores = usable_cores()
    most_threads = max(threads.values(), default=1)
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
        workers = min(len(devices), max(1, len(pending)))
    elif _registered_here(configs):
        workers = 1  # a worker process would not know a norm registered in this process
    else:
        # A task of T threads takes T cores: the model plans in units of such slots.
        slots = max(1, cores // most_threads)
        found = machine(cores)
        workers = default_workers(
            [costs.get(t.variant.id, 0.0) for t in pending],
            cores=slots,
            parallel=lambda w: found.parallel(w * most_threads) / most_threads,
            gpus=gpus,
            memory=available_memory(),
        )
    # Processes this machine starts share its cores; a remote cluster's workers are not ours
    # to size.
    if options.executor == "dask" and options.scheduler is not None:
        return workers, devices, []
    workers, _, warnings = arith.fit_to_cores(workers, most_threads, cores)
    return workers, devices, warnings if options.workers is not None else []


def _registered_here(configs: list[dict[str, Any]]) -> bool:
    """Whether a variant's norm or model kind was registered at run time (``register_norm``,
    ``register_model``), not built in: worker processes would not know it."""
    from normbench.models.catalog import BUILT_IN_MODELS, KEEP
    from normbench.norms.catalog import BUILT_IN_NORMS

    return any(
        c["model"]["norm"]["kind"] not in BUILT_IN_NORMS | {KEEP}
        or c["model"]["kind"] not in BUILT_IN_MODELS
        for c in configs
    )


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
    suite: Suite, options: ExecOptions, recorded: dict[str, Any], flops: dict[str, float | None]
) -> tuple[dict[str, int], list[str]]:
    """Variant id → intra-op threads, from the configuration (and a resumed run's record).

    ``flops`` (variant id → FLOPs counted on one step) sizes the default; a default capped by
    the cores is not warned about: only a number the user gave is.
    """
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
        configured = v.config["training"].get("threads")
        wanted = arith.task_threads(
            configured, options.threads_per_worker, is_large(flops.get(v.id))
        )
        _, threads[v.id], capped = arith.fit_to_cores(1, wanted, cores)
        if configured is not None or options.threads_per_worker is not None:
            warnings += [w for w in capped if w not in warnings]
    return threads, warnings


def _check_kernels(run_dir: RunDir, manifest: dict[str, Any], reproducible: bool) -> None:
    """Resume only where the tasks will run the kernels the run was made with."""
    made = arith.signature(manifest)
    cpu = arith.cpu_vendor()
    now = {
        "cpu_capability": _capability(reproducible),
        "cpu_vendor": cpu["vendor"],
        "cpu_family": cpu["family"],
    }
    diff = arith.differences({k: made.get(k) for k in now}, now)
    if diff:
        raise InputError(
            f"cannot resume {run_dir.path}: it was trained with other kernels than this "
            f"machine runs (not bit-comparable: {'; '.join(diff)}); "
            "resume it on a machine that matches, or start a new run"
        )


def _resolved_suite(suite: Suite, threads: dict[str, int], reproducible: bool) -> Suite:
    """The suite with each variant's ``training.threads`` and ``training.reproducible`` filled."""
    variants = []
    for v in suite.variants:
        training = {**v.config["training"], "threads": threads[v.id], "reproducible": reproducible}
        variants.append(dataclasses.replace(v, config={**v.config, "training": training}))
    return dataclasses.replace(suite, variants=variants)


def _visible_gpus(suite: Suite) -> int:
    """CUDA devices usable for placement: only when every variant leaves the device open."""
    if any(v.config["training"]["device"] not in ("auto", "cuda") for v in suite.variants):
        return 0
    if _cpu_only_torch():
        return 0  # known without importing torch, so the workers' start-up overlaps that import
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _cpu_only_torch() -> bool:
    """Whether the installed torch was built without CUDA and ROCm, known without importing
    it (~1 s): see ``cpu_only_build``."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    return cpu_only_build(Path(spec.submodule_search_locations[0]) / "version.py")


def cpu_only_build(version_file: Path) -> bool:
    """Whether torch's generated ``version.py`` says ``cuda = None`` and ``hip = None``.

    Anything else (a GPU build, a file that is missing or unreadable) is False: then torch
    is imported and asked.
    """
    import ast

    try:
        tree = ast.parse(version_file.read_text())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return False
    builds = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
            builds[target.id] = node.value.value
    return "cuda" in builds and "hip" in builds and builds["cuda"] is None and builds["hip"] is None


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
            raise InputError(f"--reference expects KEY=VALUE[,KEY=VALUE…], got '{shorten(part)}'")
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
    raise InputError(f"--reference: no variant of the suite has {shorten(text)}")


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
        resume_dir = resume_target(options.resume, out, suite)
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
    if resume_dir is not None and manifest is not None:
        _check_kernels(resume_dir, manifest, reproducible)
    tasks = tasks_of(suite)
    if shard is not None:
        total, tasks = len(tasks), shard_of(tasks, shard)
        if not tasks:
            raise InputError(
                f"--shard {format_shard(shard)} holds no task: the suite has {total} "
                f"(variant, seed) task{'s' * (total != 1)}, so only shards 1 to "
                f"{min(total, shard[1])} of {shard[1]} have work"
            )
    data = None
    if options.executor == "local" or options.scheduler is None:  # a cluster's data are its own
        data = preflight(suite, tasks)
        tasks = [dataclasses.replace(t, data=data.fingerprint_of(t.variant)) for t in tasks]
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
    recorded_threads = _recorded(resolved, "threads")
    steps = _step_costs(suite, options, pending, recorded_threads, data is not None)
    flops = {vid: (c.flops if c else None) for vid, c in steps.items()}
    threads, warnings = _threads(suite, options, recorded_threads, flops)
    suite = _resolved_suite(suite, threads, reproducible)
    resolved_of = {v.id: v for v in suite.variants}
    tasks = [dataclasses.replace(t, variant=resolved_of[t.variant.id]) for t in tasks]
    pending = [t for t in tasks if t.key not in done]
    costs = _task_seconds(suite, steps)
    workers, devices, capped = _placement(suite, options, pending, threads, costs)
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
        costs=costs,
    )


def _step_costs(
    suite: Suite,
    options: ExecOptions,
    pending: list[Task],
    recorded_threads: dict[str, Any],
    local: bool,
) -> dict[str, Any]:
    """Variant id → one real step of it, counted and timed (``execute.costs``), where needed.

    FLOPs size the default threads of every variant whose threads nothing else decides (all
    of the suite's, so that every shard decides alike); seconds choose the default workers
    (the pending variants'). A run whose workers and threads are given measures nothing.
    """
    if not local:
        return {}
    undecided = (
        []
        if options.threads_per_worker is not None
        else [
            v
            for v in suite.variants
            if v.config["training"].get("threads") is None and v.id not in recorded_threads
        ]
    )
    timed = [] if options.workers is not None or len(pending) < 2 else [t.variant for t in pending]
    # A custom norm is user code that may end its interpreter: it runs in workers only, never
    # here (its variants keep the default cost and threads).
    wanted = {
        v.id: v for v in [*undecided, *timed] if v.config["model"]["norm"]["kind"] != "custom"
    }
    if not wanted:
        return {}
    from normbench.execute.costs import step_costs

    return step_costs(wanted.values())


def _task_seconds(suite: Suite, steps: dict[str, Any]) -> dict[str, float]:
    """Variant id → estimated seconds of one of its tasks on one core."""
    out = {}
    for v in suite.variants:
        step = steps.get(v.id)
        out[v.id] = estimated_seconds(
            v.config, step.seconds if step else None, step.eval_seconds if step else None
        )
    return out


def preflight(suite: Suite, tasks: list[Task]) -> Any:
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
