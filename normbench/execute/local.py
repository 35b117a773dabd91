"""Run (variant, seed) tasks in this process, one after another, writing each result atomically."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench import arith
from normbench.data.registry import load_split
from normbench.spec import Variant
from normbench.usercode import UserCodeError, describe, error_text

# Set in a fresh process: its kernels are as pinned as this CPU allows, so it never re-spawns.
FRESH_VAR = "NORMBENCH_FRESH_PROCESS"

OnResult = Callable[[dict[str, Any]], None]
OnProgress = Callable[[str, int, int, int], None]  # task key, step, total steps, seed


@dataclass(frozen=True)
class Task:
    """One unit of work: a variant and a seed."""

    variant: Variant
    seed: int
    data: str = ""  # fingerprint of the data pre-flight checked ("": not checked)

    @property
    def key(self) -> str:
        return f"{self.variant.id}-s{self.seed}"


@dataclass(frozen=True)
class Batch:
    """Several seeds of one variant trained together as one stacked model (batched seeds)."""

    variant: Variant
    seeds: tuple[int, ...]
    data: str = ""  # as ``Task.data``

    @property
    def key(self) -> str:
        return f"{self.variant.id}-s{self.seeds[0]}+{len(self.seeds) - 1}"

    @property
    def seed(self) -> int:  # progress reports the first member's
        return self.seeds[0]

    @property
    def tasks(self) -> list[Task]:
        return [Task(self.variant, s, self.data) for s in self.seeds]


Unit = Task | Batch


def members(unit: Unit) -> list[Task]:
    """The (variant, seed) tasks a unit of work stands for."""
    return unit.tasks if isinstance(unit, Batch) else [unit]


def group_tasks(
    tasks: Iterable[Task], batched: Iterable[str], max_members: int | None = None
) -> list[Unit]:
    """Group the pending seeds of each variant in ``batched`` (variant ids) into ``Batch`` units.

    At most ``max_members`` seeds per batch, so several workers still share a variant's seeds.
    A lone pending seed (resume, shards) is a batch of one: a member's numbers do not depend on
    which seeds it trains with, only on the stacked path, so every seed of a batched variant
    takes that path. Order: each unit where its first task was.
    """
    batched = set(batched)
    by_variant: dict[str, list[Task]] = {}
    for task in tasks:
        by_variant.setdefault(task.variant.id, []).append(task)
    units: list[Unit] = []
    seen: set[str] = set()
    for task in tasks:
        vid = task.variant.id
        if vid not in batched:
            units.append(task)
            continue
        if vid in seen:
            continue
        seen.add(vid)
        group = by_variant[vid]
        size = max_members or len(group)
        for start in range(0, len(group), size):
            part = group[start : start + size]
            units.append(Batch(task.variant, tuple(t.seed for t in part), task.data))
    return units


def make_probes(config: dict[str, Any]) -> list[Any]:
    """The diagnostics probes the variant asked for (none: the loop's fast path)."""
    if not config.get("diagnostics"):
        return []
    from normbench.train.probes import build_probes

    return build_probes(config["diagnostics"], config)


def failure_record(task: Task, error: str) -> dict[str, Any]:
    """A ``failed`` record for a task that never produced one (setup error, dead worker)."""
    from normbench.results.store import SCHEMA_VERSION

    variant = task.variant
    return {
        "schema_version": SCHEMA_VERSION,
        "variant_id": variant.id,
        "variant_name": variant.name,
        "params": variant.params,
        "seed": task.seed,
        "config": variant.config,
        "status": "failed",
        "error": error,
        "diverged_at_step": None,
        "curves": {},
        "metrics": {},
        "targets": {},
        "timing": {},
        "diagnostics": {},
    }


def data_mismatch(split: Any, expected: str, config: dict[str, Any]) -> str | None:
    """Why this process may not train on ``split``: its data are not the ones pre-flight
    checked (a loader that returns other arrays in each process would otherwise mix
    datasets within one run), or None."""
    if not expected or not split.fingerprint or split.fingerprint == expected:
        return None
    dataset = config["dataset"]
    source = (
        f"custom dataset loader '{dataset['target']}'"
        if dataset["name"] == "custom"
        else f"dataset '{dataset['name']}'"
    )
    return (
        f"{source} gave this process other data than pre-flight checked (fingerprint "
        f"{split.fingerprint}, not {expected}); refusing to mix two datasets in one run — "
        "the data must be the same every time they are loaded (seed the loader)"
    )


def with_device(config: dict[str, Any], device: str | None) -> dict[str, Any]:
    """The config to train with on ``device`` (a worker's assigned device), else as is."""
    if not device or device == config["training"]["device"]:
        return config
    return {**config, "training": {**config["training"], "device": device}}


def kernels_ready(reproducible: bool) -> bool:
    """Whether this process trains with the kernels the run asks for (pinning them if it can).

    The reproducible mode's variables act only before torch initialises: a process that has
    not imported torch yet is pinned now; one whose torch already runs other kernels is not.
    """
    if not reproducible:
        return True
    if "torch" not in sys.modules:
        arith.apply_pinned_env()
        return True
    import torch

    return torch.backends.cpu.get_cpu_capability() == arith.pinned_capability()


def arith_record(reproducible: bool) -> dict[str, Any]:
    """What selected this task's arithmetic, for its result record (imports torch)."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "reproducible": reproducible,
        "env": arith.kernel_env(),
    }


def run_task(
    task: Task, on_progress: OnProgress | None = None, device: str | None = None
) -> dict[str, Any]:
    """Train one task and return its record; data errors become a ``failed`` record too.

    ``device`` overrides the suite's ``training.device`` (worker placement); the record keeps
    the variant's own config so results stay comparable, and ``device`` says where it ran.
    A reproducible task in a process whose torch runs other kernels trains in a fresh one.
    """
    variant = task.variant
    reproducible = bool(variant.config["training"].get("reproducible"))
    if not kernels_ready(reproducible) and not os.environ.get(FRESH_VAR):
        return run_task_fresh(task, device)
    from normbench.train.loop import run_variant

    meta = {"variant_id": variant.id, "variant_name": variant.name, "params": variant.params}
    config = with_device(variant.config, device)
    try:
        split = load_split(config)
        probes = make_probes(config)
    except UserCodeError as exc:  # the user's loader, already one sentence
        return failure_record(task, str(exc))
    except Exception as exc:  # reported as a failed variant; the suite goes on
        return failure_record(task, f"{error_text(exc)}")
    except SystemExit as exc:
        return failure_record(task, f"the variant's code {describe(exc)} while building")
    problem = data_mismatch(split, task.data, config)
    if problem:
        return failure_record(task, problem)

    def progress(step: int, total: int, *_: Any) -> None:
        if on_progress is not None:
            on_progress(task.key, step, total, task.seed)

    try:
        with pinned_threads(config["training"].get("threads")):
            record = run_variant(
                config, task.seed, split, probes=probes, on_progress=progress, meta=meta
            )
            record["arith"] = arith_record(reproducible)
    except SystemExit as exc:  # user code (a custom norm) called sys.exit: this variant failed
        return failure_record(
            task, f"the variant's code {describe(exc)}, which would have ended the run"
        )
    record["config"] = variant.config
    return record


def run_unit(
    unit: Unit, on_progress: OnProgress | None = None, device: str | None = None
) -> list[dict[str, Any]]:
    """Train a task or a batch of seeds; one record per (variant, seed), in seed order."""
    if not isinstance(unit, Batch):
        return [run_task(unit, on_progress, device)]
    from normbench.train.batched import run_batched

    variant = unit.variant
    meta = {"variant_id": variant.id, "variant_name": variant.name, "params": variant.params}
    config = with_device(variant.config, device)
    try:
        split = load_split(config)
    except UserCodeError as exc:  # the user's loader, already one sentence
        return [failure_record(t, str(exc)) for t in unit.tasks]
    except Exception as exc:  # reported as failed seeds; the suite goes on
        return [failure_record(t, f"{error_text(exc)}") for t in unit.tasks]
    problem = data_mismatch(split, unit.data, config)
    if problem:
        return [failure_record(t, problem) for t in unit.tasks]

    def progress(step: int, total: int, *_: Any) -> None:
        if on_progress is not None:  # every member is at the same step
            for task in unit.tasks:
                on_progress(task.key, step, total, task.seed)

    try:
        with pinned_threads(config["training"].get("threads")):
            records = run_batched(config, list(unit.seeds), split, meta=meta, on_progress=progress)
            arith_info = arith_record(False)  # batching is off in the reproducible mode
    except SystemExit as exc:  # user code called sys.exit: these seeds failed, the run goes on
        error = f"the variant's code {describe(exc)}, which would have ended the run"
        return [failure_record(t, error) for t in unit.tasks]
    for record in records:
        record["arith"] = arith_info
        record["config"] = variant.config
    return records


def run_task_fresh(task: Task, device: str | None = None) -> dict[str, Any]:
    """Train ``task`` in a new interpreter started with the reproducible mode's environment."""
    threads = int(task.variant.config["training"].get("threads") or 1)
    env = {
        **os.environ,
        **arith.pinned_env(),
        **arith.thread_env(threads),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        FRESH_VAR: "1",
    }
    with tempfile.TemporaryDirectory(prefix="normbench-fresh-") as tmp:
        src, dst = Path(tmp) / "task.pkl", Path(tmp) / "record.pkl"
        src.write_bytes(pickle.dumps((task, device)))
        code = (
            "import sys; from normbench.execute.local import fresh_main; fresh_main(*sys.argv[1:])"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(src), str(dst)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not dst.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return failure_record(
                task,
                f"fresh process for the reproducible mode failed "
                f"(exit code {done.returncode}): {tail}",
            )
        return pickle.loads(dst.read_bytes())


def fresh_main(src: str, dst: str) -> None:
    """Entry point of ``run_task_fresh``'s interpreter: one task in, one record out."""
    task, device = pickle.loads(Path(src).read_bytes())
    record = run_task(task, None, device)
    Path(dst).write_bytes(pickle.dumps(record))


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (each worker gets its share of the cores)."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """A variant's own ``training.threads`` wins over the worker's setting, for its task only."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_serial(
    tasks: Iterable[Unit], on_result: OnResult, on_progress: OnProgress | None = None
) -> None:
    """Run units one by one in this process; ``on_result`` stores each record as it finishes."""
    for unit in tasks:
        for record in run_unit(unit, on_progress):
            on_result(record)
