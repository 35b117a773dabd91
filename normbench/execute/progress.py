"""Progress on stderr: live bars on a terminal; plain lines and periodic summaries in CI logs."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

# Rates are measured over the last few seconds: a since-start average lags after start-up
# (data generation, worker spawn) and then disagrees with the ETA computed from it.
WINDOW_S = 10.0
SUMMARY_EVERY_S = 30.0  # without a terminal: one summary line this often


@dataclass
class RateWindow:
    """Steps per second over the last ``window`` seconds (a sliding window, not since start)."""

    window: float = WINDOW_S
    points: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, t: float, done: int) -> None:
        self.points.append((t, done))
        # Keep one point older than the window so the span covers it fully.
        while len(self.points) > 2 and self.points[1][0] <= t - self.window:
            self.points.popleft()

    def rate(self) -> float | None:
        if len(self.points) < 2:
            return None
        (t0, d0), (t1, d1) = self.points[0], self.points[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None


# Once this share of the steps is done the ETA comes from the rate since the first step (a
# 10-s window swings with evaluations and tasks ending) and moves at most ETA_MAX_JUMP× from
# the previous one, counted down by the time between them.
ETA_SETTLED = 0.1
ETA_MAX_JUMP = 2.0


@dataclass
class Eta:
    """Seconds left, steady once ``ETA_SETTLED`` of the work is done (see the constants)."""

    first: tuple[float, int] | None = None  # (time, steps done) at the first step seen
    last: tuple[float, float] | None = None  # (time, seconds left) last said

    def __call__(
        self, now: float, done: int, total: int, window_rate: float | None
    ) -> float | None:
        if done > 0 and self.first is None:
            self.first = (now, done)
        remaining = total - done
        if remaining <= 0:
            return 0.0
        rate = window_rate
        settled = done >= ETA_SETTLED * total
        if settled and self.first is not None and now > self.first[0] and done > self.first[1]:
            rate = (done - self.first[1]) / (now - self.first[0])
        left = eta(remaining, rate)
        if settled and self.last is not None:
            expected = max(0.0, self.last[1] - (now - self.last[0]))
            if left is None:
                left = expected
            elif expected > 0:
                left = min(max(left, expected / ETA_MAX_JUMP), expected * ETA_MAX_JUMP)
        if left is not None:
            self.last = (now, left)
        return left


def fmt_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``?`` while unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def eta(remaining_steps: int, rate: float | None) -> float | None:
    """Seconds left at the current (windowed) rate: the same rate the display shows."""
    if remaining_steps <= 0:
        return 0.0
    return remaining_steps / rate if rate else None


def result_words(record: dict[str, Any]) -> str:
    """A finished task in a few words: its status and headline result."""
    metrics = record.get("metrics") or {}
    status = record.get("status", "?")
    if status == "failed":
        return f"failed: {str(record.get('error') or '')[:120]}"
    parts = []
    if status == "diverged":
        parts.append(f"diverged at step {record.get('diverged_at_step')}")
    for key, label in (("final_test_acc", "test acc"), ("final_test_loss", "test loss")):
        if isinstance(metrics.get(key), int | float):
            parts.append(f"{label} {metrics[key]:.4f}")
            break
    seconds = (record.get("timing") or {}).get("train_seconds")
    if isinstance(seconds, int | float):
        parts.append(f"{seconds:.1f} s")
    return ", ".join(parts) or status


class Progress:
    """Overall and per-task progress; rich bars on a TTY, plain lines otherwise.

    ``enabled=False`` (``--quiet``) prints nothing but failures; ``None`` picks by the TTY.
    """

    def __init__(
        self,
        total_tasks: int,
        steps_per_task: int,
        enabled: bool | None = None,
        *,
        live: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        summary_every: float = SUMMARY_EVERY_S,
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = enabled is False
        self.live = (self.stream.isatty() if live is None else live) and not self.quiet
        self.total_tasks, self.steps_per_task = total_tasks, steps_per_task
        self.total_steps = max(1, total_tasks * steps_per_task)
        self.clock, self.summary_every = clock, summary_every
        self.tally = {"ok": 0, "diverged": 0, "failed": 0}
        self._done: dict[str, int] = {}
        self._rate = RateWindow()
        self._eta = Eta()
        self._task_rates: dict[str, RateWindow] = {}
        self._task_ids: dict[str, Any] = {}
        self._bar: Any = None
        self._last_summary = clock()
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[info]}"),
                console=Console(file=self.stream, stderr=self.stream is sys.stderr),
                transient=True,
                refresh_per_second=4,
            )
            self._overall = self._bar.add_task("starting", total=self.total_steps, info="")

    # --- context -------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    # --- events ------------------------------------------------------------------------

    def stage(self, words: str) -> None:
        """Say what happens before the first step ("generating mnist1d…", "starting 2 workers…")."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._overall, description=words)
        else:
            self._print(words)

    def update(self, key: str, step: int, total: int, name: str = "") -> None:
        """Task ``key`` reached ``step`` of ``total``."""
        now = self.clock()
        self._done[key] = step
        done = self.steps_done()
        self._rate.add(now, done)
        if self._bar is not None:
            window = self._task_rates.setdefault(key, RateWindow())
            window.add(now, step)
            if key not in self._task_ids and step < total:
                self._task_ids[key] = self._bar.add_task(f"  {name or key}", total=total, info="")
            if key in self._task_ids:
                r = window.rate()
                self._bar.update(
                    self._task_ids[key], completed=step, info=f"{r:,.0f} steps/s" if r else ""
                )
                if step >= total:
                    self._bar.remove_task(self._task_ids.pop(key))
            self._bar.update(
                self._overall, completed=done, description=self._headline(), info=self._rate_eta()
            )
        elif not self.quiet:
            self._maybe_summary(now)

    def finished(self, record: dict[str, Any], key: str | None = None) -> None:
        """A task ended: count it and print one line with its result."""
        status = record.get("status", "failed")
        self.tally[status if status in self.tally else "failed"] += 1
        if key is not None:
            self._done[key] = self.steps_per_task  # a diverged/failed task ends early
        n = sum(self.tally.values())
        line = (
            f"[{n}/{self.total_tasks}] {record.get('variant_name')} seed {record.get('seed')}: "
            f"{result_words(record)}"
        )
        if self.quiet:
            if status != "ok":
                self._print(line)
            return
        self._print(line)
        if self._bar is not None:
            self._bar.update(
                self._overall, completed=self.steps_done(), description=self._headline()
            )

    def log(self, message: str) -> None:
        """A line above the bars (a warning, the resume command)."""
        self._print(message)

    # --- text ------------------------------------------------------------------------

    def steps_done(self) -> int:
        return sum(self._done.values())

    def tally_words(self) -> str:
        t = self.tally
        return (
            f"{sum(t.values())}/{self.total_tasks} done ({t['ok']} ok, {t['diverged']} "
            f"diverged, {t['failed']} failed)"
        )

    def _headline(self) -> str:
        return self.tally_words()

    def _rate_eta(self) -> str:
        rate = self._rate.rate()
        left = self._eta(self.clock(), self.steps_done(), self.total_steps, rate)
        speed = f"{rate:,.0f} steps/s" if rate else "– steps/s"
        return f"{speed}  ETA {fmt_duration(left)}"

    def summary_line(self) -> str:
        pct = 100 * self.steps_done() / self.total_steps
        return f"progress: {self.tally_words()}, {pct:.0f} % of steps, {self._rate_eta()}"

    def _maybe_summary(self, now: float) -> None:
        if now - self._last_summary >= self.summary_every:
            self._last_summary = now
            self._print(self.summary_line())

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)


def startup_words(dataset_configs: Iterable[dict[str, Any]], workers: int) -> str:
    """What happens before the first training step, in words (best effort, never raises)."""
    words = []
    seen = set()
    for cfg in dataset_configs:
        name = str(cfg.get("name"))
        if name in seen:
            continue
        seen.add(name)
        words.append(f"{'generating' if _needs_build(cfg) else 'loading'} {name}")
    if workers > 1:
        words.append(f"starting {workers} workers")
    return (", ".join(words) + "…") if words else "starting…"


def _needs_build(cfg: dict[str, Any]) -> bool:
    """True when the dataset is built (generated, parsed) on first use and not yet cached."""
    try:
        from normbench.data import registry

        opts = registry.resolve_dataset(cfg)
        entry = registry.DATASETS[opts["name"]]
        if not entry.disk_cache:
            return False
        files = entry.locate(opts) if entry.locate is not None else []
        return not registry.cache_path(entry.name, registry._build_key(entry, opts, files)).exists()
    except Exception:  # a message must never stop a run; the loader reports real errors
        return False


__all__ = ["Eta", "Progress", "RateWindow", "eta", "fmt_duration", "result_words", "startup_words"]
