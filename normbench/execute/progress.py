"""Live progress on stderr: rich bars on a terminal, silence otherwise (CI logs stay clean)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Overall and per-task progress with steps/s and ETA; a no-op when stderr is not a TTY."""

    def __init__(self, total_tasks: int, steps_per_task: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total_steps = max(1, total_tasks * steps_per_task)
        self._bar: Any = None
        self._task_ids: dict[str, Any] = {}
        self._done: dict[str, int] = {}
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._overall = self._bar.add_task("all variants", total=self.total_steps, rate="")
            self._start = time.perf_counter()

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def update(self, key: str, step: int, total: int, name: str = "") -> None:
        """Report that task ``key`` reached ``step`` of ``total``."""
        if self._bar is None:
            return
        if key not in self._task_ids:
            self._task_ids[key] = self._bar.add_task(name or key, total=total, rate="")
        delta = step - self._done.get(key, 0)
        self._done[key] = step
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = f"{sum(self._done.values()) / elapsed:,.0f} steps/s"
        self._bar.update(self._task_ids[key], completed=step, rate=rate)
        self._bar.update(self._overall, advance=delta, rate=rate)
        if step >= total:
            self._bar.remove_task(self._task_ids.pop(key))

    def log(self, message: str) -> None:
        """A line above the bars (e.g. a diverged or failed variant)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=sys.stderr)
