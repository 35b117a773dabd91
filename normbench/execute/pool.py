"""Local worker processes: a small supervisor that survives worker crashes, aggregates progress."""

# Each worker is a fresh process (torch and a plain ``fork`` of a busy parent do not mix) that
# takes one task at a time over its own pipe, trains it with a fixed number of intra-op threads,
# writes the result file itself (atomically) and reports progress and the record back. A pool
# such as ``ProcessPoolExecutor`` breaks entirely when one worker is killed; here the parent watches
# every worker's sentinel, marks the task of a dead worker ``failed`` with the cause and starts
# a replacement, so one segfault or OOM kill costs one variant, not the suite. A private pipe
# per worker (rather than one shared queue) means a worker killed mid-send cannot corrupt or
# deadlock the channel of the others.
#
# Workers start warm: they are forked from a ``forkserver`` process that imported torch and
# the training modules once (``PRELOAD``), so a worker (or a replacement) is ready in
# milliseconds instead of the ~1.5 s a spawned interpreter takes to import torch. The server
# is single-threaded when it forks (importing torch starts no thread pool), which is what
# makes that fork safe. ``NORMBENCH_WORKER_START=spawn`` restores spawned workers.

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from normbench import arith
from normbench.execute.local import (
    OnProgress,
    OnResult,
    Unit,
    failure_record,
    members,
    run_unit,
    set_threads,
    with_device,
)
from normbench.streams import worker_streams
from normbench.usercode import real_exit

# torch._dynamo too: torch.optim imports it on the first optimizer built (~1 s per process).
PRELOAD = [
    "torch",
    "torch._dynamo",
    "torch.func",
    "normbench.train.loop",
    "normbench.train.batched",
    "normbench.data.registry",
    "normbench.results.store",
]
POLL_SECONDS = 0.2  # how often the supervisor checks the stop flag while workers are busy
JOIN_SECONDS = 5.0  # how long a stopping worker may take before it is killed
FORKSERVER_UNKNOWN_EXIT = 255  # multiprocessing.popen_forkserver's code for a lost status
STOP_GRACE_SECONDS = 2.0  # how long a SIGTERM-ed worker's death waits for the run's own stop

SIGNAL_HINTS = {
    signal.SIGKILL: "killed, e.g. by the out-of-memory killer",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGTERM: "terminated",
}


def death_cause(exitcode: int | None) -> str:
    """The error message of a task whose worker died: ``worker process died (signal 9): …``."""
    if exitcode is None:
        return "worker process died (unknown cause)"
    if exitcode < 0:
        hint = SIGNAL_HINTS.get(-exitcode)
        return f"worker process died (signal {-exitcode})" + (f": {hint}" if hint else "")
    return (
        f"worker process died (exit code {exitcode}): the variant's code ended its process "
        "(e.g. os._exit)"
    )


def _stopping(exitcode: int | None, should_stop: Callable[[], bool]) -> bool:
    """Whether a worker killed by SIGTERM/SIGINT died of a stop of the whole run.

    ``timeout``, systemd and Slurm signal the whole process group: the worker may die before
    the parent's own handler has run, so the parent waits a moment for it before calling the
    task failed. An interrupted task is not a failure: it is abandoned and ``--resume`` runs it.
    """
    # 255: a forkserver child's status is read through the forkserver, which the same group
    # signal kills; multiprocessing then reports 255 ("unknown"), not the real -SIGTERM.
    if exitcode not in (-signal.SIGTERM, -signal.SIGINT, FORKSERVER_UNKNOWN_EXIT):
        return False
    return _stop_soon(should_stop)


def _stop_soon(should_stop: Callable[[], bool]) -> bool:
    """Whether a stop is asked for within ``STOP_GRACE_SECONDS`` (the parent's own handler may
    run a moment after the same signal reached a child)."""
    for _ in range(int(STOP_GRACE_SECONDS / 0.05)):
        if should_stop():
            return True
        time.sleep(0.05)
    return should_stop()


def worker_context() -> Any:
    """The multiprocessing context workers start from: a preloading forkserver, else spawn."""
    method = os.environ.get("NORMBENCH_WORKER_START", "forkserver")
    if method != "forkserver" or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (once a process)
    return ctx


Pair = tuple[str, dict[str, Any], int, float | None]  # variant id, config, seed, train seconds


@dataclass
class CostJob:
    """Relative costs for a worker to measure: ``train.relcost.measure``'s arguments."""

    pairs: list[Pair]
    reference: tuple[str, dict[str, Any]]


class Costs(Protocol):
    """The relative costs a run measures in its workers as its variants finish."""

    reference: tuple[str, dict[str, Any]]
    backlog: list[Pair]  # stored before this run started (a resumed run) and still unmeasured

    def pair(self, record: dict[str, Any]) -> Pair | None:
        """What a finished record needs measured (None: nothing)."""

    def store(self, costs: dict[tuple[str, int], dict[str, Any]]) -> None:
        """Keep measured costs (in their result files)."""

    def warn(self, message: str) -> None:
        """Say that a cost could not be measured."""


# --- the worker side --------------------------------------------------------------------------


class _WriteGuard:
    """Defers this worker's death while it writes a result file, so none is left half-written.

    Only the main thread writes. The parent-death watchdog takes the lock before exiting, so
    it waits for a write in progress; a SIGTERM arriving mid-write is re-raised right after.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deferred: int | None = None

    def write(self, store: Any, records: list[dict[str, Any]]) -> None:
        with self.lock:  # a batch of seeds is written whole or (killed before) not at all
            for record in records:
                store.write_result(record)
        if self.deferred is not None:
            _die(self.deferred)

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.lock.locked():
            self.deferred = signum
        else:
            _die(signum)


def _die(signum: int) -> None:
    """Terminate by ``signum`` with its default action (the parent sees the real cause)."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _exit_with_parent(guard: _WriteGuard) -> None:
    """Exit as soon as the parent dies, even by SIGKILL, so no orphan trains on and writes.

    The parent holds the write end of a pipe whose read end is this process's parent
    sentinel; it becomes readable (EOF) exactly when the parent is gone.
    """
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        guard.lock.acquire()  # never mid-write; held until the process is gone
        real_exit(1)

    threading.Thread(target=watch, name="normbench-parent-watch", daemon=True).start()


def worker_main(
    conn: Connection,
    threads: int | None,
    device: str | None,
    env: dict[str, str] | None = None,
    parent_env: dict[str, str] | None = None,
) -> None:
    """Worker process entry: receive tasks, train, write each result atomically, report back.

    Each message is ``(task, run_dir)`` (``None`` to exit), so workers can start before the
    run directory exists and overlap their start-up with the parent's.
    """
    if parent_env is not None:  # a forkserver child has the server's environment, not the parent's
        os.environ.clear()
        os.environ.update(parent_env)
    # Ctrl-C on a terminal reaches the whole process group; only the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_streams()
    guard = _WriteGuard()
    signal.signal(signal.SIGTERM, guard.on_signal)
    _exit_with_parent(guard)
    # Before torch is imported: its OpenMP pool starts at this size, and the reproducible
    # mode's kernel levels (``env``) take effect only before torch initialises.
    os.environ.update(env or {})
    if threads is not None:
        os.environ.update(arith.thread_env(threads))
    set_threads(threads)
    from normbench.results.store import RunDir, StorageError

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if isinstance(message, CostJob):
            conn.send(("costs", *_measure(message, device)))
            continue
        task, run_dir = message

        def progress(key: str, step: int, total: int, seed: int) -> None:
            conn.send(("progress", key, step, total))

        records = run_unit(task, progress, device)  # a task, or a batch of seeds
        try:
            guard.write(RunDir(Path(run_dir)), records)  # complete before the parent hears of it
        except StorageError as exc:  # disk full, permission lost: the parent stops the run
            conn.send(("storage", task.key, str(exc)))
            return
        conn.send(("done", task.key, records))


def _measure(
    job: CostJob, device: str | None
) -> tuple[dict[tuple[str, int], dict[str, Any]], list[str]]:
    """The relative costs of a ``CostJob`` and the warnings measuring them gave, timed on
    this worker's device (where it trains), not on the one each variant's config names."""
    from normbench.train.relcost import measure

    pairs = [(vid, with_device(config, device), seed, s) for vid, config, seed, s in job.pairs]
    ref_id, ref_config = job.reference
    warnings: list[str] = []
    return measure(pairs, (ref_id, with_device(ref_config, device)), warn=warnings.append), warnings


# --- the supervisor side ----------------------------------------------------------------------


@dataclass
class _Worker:
    slot: int
    device: str | None
    process: Any
    conn: Connection
    task: Unit | None = None
    job: CostJob | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None or self.job is not None


class WorkerPool:
    """``workers`` spawned processes; worker ``k`` trains on ``devices[k % len(devices)]``.

    Start it early (its workers import torch while the parent sets up the run), then ``run``
    tasks; ``close`` stops every worker. Several workers may share a device (small variants
    on one GPU).
    """

    def __init__(
        self,
        workers: int,
        threads: int | None,
        devices: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        # Kernel-steering variables (the reproducible mode's) must be set before torch starts:
        # those workers are fresh interpreters; all others fork warm from the forkserver.
        self.ctx = worker_context() if not env else mp.get_context("spawn")
        self.warm = self.ctx.get_start_method() == "forkserver"
        self.threads = threads
        self.env = dict(env or {})
        self.slots = [(k, devices[k % len(devices)] if devices else None) for k in range(workers)]
        self.workers: list[_Worker] = []
        if self.warm:
            # Launching the server returns at once; its preload (torch, ~2 s) then overlaps
            # whatever the parent does next. A worker's start() would block until the preload
            # is done, so workers are forked only when the first tasks are handed out.
            from multiprocessing import forkserver

            forkserver.ensure_running()
        else:
            self._start_workers()  # a spawned interpreter's start() does not wait for it

    def _start_workers(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Start the workers not yet started; False when the run is stopping instead."""
        while len(self.workers) < len(self.slots):
            worker = self._fork(*self.slots[len(self.workers)], should_stop)
            if worker is None:
                return False
            self.workers.append(worker)
        return True

    def _fork(
        self, slot: int, device: str | None, should_stop: Callable[[], bool]
    ) -> _Worker | None:
        """A new worker in ``slot``; None when the run is stopping.

        A stop of the whole process group (``timeout``, Slurm) also kills the workers' server,
        possibly before it forked anyone: the start then fails, and that is the stop, not an
        error. A server that died on its own (e.g. the out-of-memory killer) is replaced by
        fresh interpreters for the rest of the run.
        """
        try:
            return self._start(slot, device)
        except (EOFError, OSError):
            if _stop_soon(should_stop):
                return None
            self.ctx, self.warm = mp.get_context("spawn"), False
            return self._start(slot, device)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, slot: int, device: str | None) -> _Worker:
        parent_end, child_end = self.ctx.Pipe(duplex=True)
        parent_env = dict(os.environ) if self.warm else None
        process = self.ctx.Process(
            target=worker_main,
            args=(child_end, self.threads, device, self.env, parent_env),
            name=f"normbench-worker-{slot}",
            daemon=True,
        )
        process.start()
        child_end.close()  # the parent keeps only its end, so EOF means the worker is gone
        return _Worker(slot, device, process, parent_end)

    def run(
        self,
        tasks: Sequence[Unit],
        run_dir: Path,
        *,
        on_result: OnResult,
        on_progress: OnProgress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        write_failure: Callable[[dict[str, Any]], None] | None = None,
        costs: Costs | None = None,
    ) -> bool:
        """Run ``tasks`` into ``run_dir``; True when all finished, False when stopped.

        A task whose worker dies becomes a ``failed`` record, written by ``write_failure``
        (the worker could not) and passed to ``on_result``; a replacement worker starts in
        the same slot, on the same device, while work remains.

        With ``costs``, each finished result's relative cost is measured too, by a worker
        that has no training left to take: measuring overlaps the last tasks' training
        instead of running after it, and each ratio is still timed in one process.
        """
        if not self._start_workers(should_stop):
            return False
        pending, jobs = list(tasks), list(costs.backlog) if costs is not None else []
        alone: list[Pair] = []  # pairs of a shared job whose worker died: retried one by one

        def finished(record: dict[str, Any]) -> None:
            on_result(record)
            if costs is not None and (pair := costs.pair(record)) is not None:
                jobs.append(pair)

        handle = _Handlers(finished, on_progress, costs)
        while pending or jobs or alone or any(w.busy for w in self.workers):
            if should_stop():
                return False
            for w in self.workers:
                if w.busy or not w.process.is_alive():
                    continue
                if pending:
                    w.task = pending.pop(0)
                    message: Any = (w.task, str(run_dir))
                elif alone and costs is not None:
                    w.job = message = CostJob([alone.pop(0)], costs.reference)
                elif jobs and costs is not None:
                    # A share of what is waiting (the workers' number of parts): each job
                    # builds the reference once per seed, and the others still get theirs.
                    share = -(-len(jobs) // len(self.workers))
                    w.job = message = CostJob(jobs[:share], costs.reference)
                    del jobs[:share]
                else:
                    continue
                with contextlib.suppress(OSError):  # it died: noticed below by its sentinel
                    w.conn.send(message)
            wait(
                [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers],
                timeout=POLL_SECONDS,
            )
            survivors = []
            for w in self.workers:
                if _receive(w, handle) and w.process.is_alive():
                    survivors.append(w)
                    continue
                w.process.join(JOIN_SECONDS)
                _receive(w, handle)  # a "done" sent just before dying still counts
                if w.task is not None and _stopping(w.process.exitcode, should_stop):
                    w.task = None  # interrupted with the run: abandoned, not failed
                for task in members(w.task) if w.task is not None else []:
                    record = failure_record(task, death_cause(w.process.exitcode))
                    if write_failure is not None:
                        write_failure(record)
                    finished(record)
                if w.job is not None and _stopping(w.process.exitcode, should_stop):
                    w.job = None  # stopped with the run: --resume measures it
                if w.job is not None and len(w.job.pairs) > 1:
                    alone += w.job.pairs  # which one ended the worker is unknown: each alone
                    w.job = None
                for vid, _, seed, _ in w.job.pairs if w.job is not None and costs else []:
                    costs.warn(
                        f"relative cost not measured for {vid} seed {seed}: "
                        f"{death_cause(w.process.exitcode)}"
                    )
                w.task = w.job = None
                w.conn.close()
                if pending or jobs or alone:
                    replacement = self._fork(w.slot, w.device, should_stop)
                    if replacement is None:
                        self.workers = survivors
                        return False
                    survivors.append(replacement)
            self.workers = survivors
        return True

    def close(self) -> None:
        """Ask idle workers to exit, terminate busy ones (their tasks are abandoned), reap all."""
        for w in self.workers:
            try:
                if not w.busy and w.process.is_alive():
                    w.conn.send(None)
                else:
                    w.process.terminate()
            except (OSError, ValueError):
                w.process.terminate()
        for w in self.workers:
            w.process.join(JOIN_SECONDS)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(JOIN_SECONDS)
            w.conn.close()
        self.workers = []


@dataclass
class _Handlers:
    """What the supervisor does with a worker's messages."""

    on_result: OnResult
    on_progress: OnProgress | None
    costs: Costs | None


def _receive(w: _Worker, handle: _Handlers) -> bool:
    """Handle every message waiting on a worker's pipe; False when the pipe is broken."""
    try:
        while w.conn.poll():
            message = w.conn.recv()
            if message[0] == "progress" and handle.on_progress is not None and w.task is not None:
                handle.on_progress(message[1], message[2], message[3], w.task.seed)
            elif message[0] == "done":
                w.task = None
                for record in message[2]:
                    handle.on_result(record)
            elif message[0] == "costs":
                w.job = None
                if handle.costs is not None:
                    handle.costs.store(message[1])
                    for warning in message[2]:
                        handle.costs.warn(warning)
            elif message[0] == "storage":
                from normbench.results.store import StorageError

                w.task = None  # not failed: nothing was stored, --resume runs it again
                raise StorageError(message[2])
    except (EOFError, OSError, pickle.UnpicklingError):
        return False
    return True
