"""Ctrl-C and SIGTERM during a run: stop launching, keep what finished, report ``interrupted``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(raise_interrupt: bool) -> Iterator[Callable[[], bool]]:
    """Treat SIGINT and SIGTERM alike while the block runs; yields "was a stop asked for?".

    ``raise_interrupt`` also raises ``KeyboardInterrupt`` (in-process training must be
    interrupted where it is); parallel executors instead poll the flag, so the parent never
    unwinds mid-bookkeeping. Outside the main thread signals cannot be handled: a no-op.
    """
    asked = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        asked.set()
        if raise_interrupt:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield asked.is_set
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield asked.is_set
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
