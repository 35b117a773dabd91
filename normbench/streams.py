"""Standard streams that never end a run: a closed pipe or a full device is noted, not raised."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# `normbench run … | head -2` closes the pipe after two lines while training goes on for
# minutes; `run -f json > /dev/full` fails only when the table is flushed. Either way the
# work already done must survive: a write that fails is remembered (``error``) and every
# later write is dropped, so progress lines, warnings and the final table can never raise
# into the training loop or the run's bookkeeping. The CLI reads ``error`` at the end.


class GuardedStream:
    """A text stream whose ``write`` and ``flush`` never raise ``OSError``.

    The first failure is kept in ``error``; the file descriptor is then pointed at
    ``/dev/null``, so later writes (ours, a worker's, the interpreter's final flush) are
    silent too.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self.stream.write(text)
            except OSError as exc:
                self._failed(exc)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as exc:
                self._failed(exc)

    def write_bytes(self, data: bytes) -> None:
        """Binary output (parquet) under the same guard: the text before it, then the bytes."""
        self.flush()
        if self.error is None:
            try:
                self.stream.buffer.write(data)
                self.stream.buffer.flush()
            except OSError as exc:
                self._failed(exc)

    @property
    def broken_pipe(self) -> bool:
        """The reader went away (``| head``): nothing to report, nothing lost but display."""
        return self.error is not None and self.error.errno == errno.EPIPE

    def _failed(self, exc: OSError) -> None:
        self.error = exc
        # What is still buffered would fail again at every flush and at exit: send it and
        # everything after it to /dev/null.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, …
        return getattr(self.stream, name)


def guard_standard_streams() -> tuple[GuardedStream, GuardedStream]:
    """Replace ``sys.stdout`` and ``sys.stderr`` by guarded streams (idempotent)."""
    out = sys.stdout if isinstance(sys.stdout, GuardedStream) else GuardedStream(sys.stdout)
    err = sys.stderr if isinstance(sys.stderr, GuardedStream) else GuardedStream(sys.stderr)
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    return out, err


def write_binary(data: bytes) -> None:
    """``data`` on stdout's binary buffer; through the guard when stdout is guarded."""
    out = sys.stdout
    if isinstance(out, GuardedStream):
        out.write_bytes(data)
    else:  # a library caller's own stream
        out.flush()
        out.buffer.write(data)
        out.flush()


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While the block runs, whatever is written to stdout goes to stderr instead.

    The user's code (a factory, a loader, a norm) may ``print``; normbench's stdout is the
    machine-readable table (``--format json``), so nothing else may land there. Both the
    Python stream and file descriptor 1 are redirected, so a C extension's or a child
    process's output moves too.
    """
    saved_fd = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        out_fd, err_fd = sys.__stdout__.fileno(), sys.__stderr__.fileno()  # type: ignore[union-attr]
        if out_fd != err_fd:
            saved_fd = os.dup(out_fd)
            os.dup2(err_fd, out_fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved_fd is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
                os.dup2(saved_fd, sys.__stdout__.fileno())  # type: ignore[union-attr]
            os.close(saved_fd)


def worker_streams() -> None:
    """A worker process's streams: stdout joins stderr for good (the parent's stdout is its
    table, and the user's code may print there), and both are guarded, so a reader of the
    run's output that goes away (``| head``) never fails a task."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
        os.dup2(sys.__stderr__.fileno(), sys.__stdout__.fileno())  # type: ignore[union-attr]
    _, err = guard_standard_streams()
    sys.stdout = err  # type: ignore[assignment]
