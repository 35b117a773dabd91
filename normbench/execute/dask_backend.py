"""Distributed execution on a Dask cluster: one task per (variant, seed), records collected here."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from normbench import arith
from normbench.errors import InputError
from normbench.execute.local import (
    OnProgress,
    OnResult,
    Unit,
    failure_record,
    members,
    run_unit,
    set_threads,
)

POLL_SECONDS = 0.1
CONNECT_TIMEOUT = "15s"


def dask_task(task: Unit, threads: int | None) -> list[dict[str, Any]]:
    """What runs on a Dask worker: train one task (or batch of seeds) with ``threads`` threads."""
    import torch

    previous = torch.get_num_threads()
    set_threads(threads)
    try:
        return run_unit(task)
    finally:
        torch.set_num_threads(previous)  # the worker process may be shared (processes=False)


def describe_error(exc: BaseException) -> str:
    """A failed future's cause; a killed worker reads like the local executor's message."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return f"worker process died (KilledWorker: {exc})"
    return f"{name}: {exc}"


def _client(
    stack: ExitStack,
    scheduler: str | None,
    workers: int,
    threads: int | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """A Client for ``scheduler``, or for a fresh LocalCluster on the loopback address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "--executor dask needs the optional extra: pip install 'normbench[dask]'"
        ) from None
    if scheduler is None:
        # One task per worker process at a time; torch's own threads come from threads_per_worker.
        # The nanny starts each worker with ``env`` (the reproducible mode's kernel levels,
        # which act only before torch initialises) and its thread pools sized for the task.
        worker_env = {**(env or {}), **(arith.thread_env(threads) if threads else {})}
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=40,
                env=worker_env,
            )
        )
        scheduler = cluster.scheduler_address
    try:
        return stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def run_dask(
    tasks: Sequence[Unit],
    *,
    scheduler: str | None,
    workers: int,
    threads: int | None,
    on_result: OnResult,
    on_progress: OnProgress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    env: dict[str, str] | None = None,
) -> bool:
    """Submit every task, hand each record to ``on_result`` as it completes; False when stopped.

    Multi-node (see ``docs/distributed.md``): start ``dask scheduler`` on one node and
    ``dask worker tcp://HOST:8786 --nthreads 1`` on every node, with normbench (and any module
    a ``custom`` norm names) installed there, then run the same suite with
    ``normbench run SUITE --executor dask --scheduler tcp://HOST:8786``. Each task trains on its
    worker and returns its record; this process writes the result files, so the run directory
    needs no shared filesystem. Without ``scheduler`` a ``LocalCluster`` on 127.0.0.1 is used.
    A reproducible task on a remote worker whose torch runs other kernels trains in a fresh
    interpreter there (``run_task``), so remote workers need no special environment.
    """
    with ExitStack() as stack:
        client = _client(stack, scheduler, workers, threads, env)
        stamp = time.time_ns()
        futures = {
            client.submit(
                dask_task, task, threads, pure=False, key=f"normbench-{task.key}-{stamp}"
            ): task
            for task in tasks
        }
        remaining = dict(futures)
        while remaining:
            if should_stop():
                client.cancel(list(remaining))
                return False
            done = [f for f in remaining if f.done()]
            if not done:
                time.sleep(POLL_SECONDS)
                continue
            for future in done:
                task = remaining.pop(future)
                try:
                    records = future.result()
                except Exception as exc:  # a crashed or killed worker: this variant fails
                    records = [failure_record(t, describe_error(exc)) for t in members(task)]
                steps = task.variant.config["training"]["steps"]
                for member, record in zip(members(task), records, strict=True):
                    if on_progress is not None:
                        on_progress(member.key, steps, steps, member.seed)
                    on_result(record)
        return True
