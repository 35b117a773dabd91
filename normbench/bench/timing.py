"""Timing core: warm-up, blocked repeats until a minimum time, median and IQR (torch-free)."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from normbench.spread import quartiles

# A measurement whose spread exceeds this fraction of its median is flagged as noisy.
NOISY_IQR_FRACTION = 0.10


@dataclass(frozen=True)
class Timing:
    """Per-call times of one measurement: quartiles over repeats, each repeat a block of calls."""

    median_s: float
    q1_s: float
    q3_s: float
    repeats: int  # timed samples
    number: int  # calls per sample (block size)
    total_s: float  # time spent in timed samples, warm-up excluded
    warmup_calls: int

    @property
    def iqr_s(self) -> float:
        """Interquartile range of the per-call time."""
        return self.q3_s - self.q1_s

    @property
    def iqr_fraction(self) -> float:
        """IQR relative to the median; the noise figure."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf

    @property
    def noisy(self) -> bool:
        """True when IQR/median exceeds ``NOISY_IQR_FRACTION``."""
        return self.iqr_fraction > NOISY_IQR_FRACTION

    def as_record(self) -> dict:
        """Flat fields for a bench record."""
        return {
            **asdict(self),
            "iqr_s": self.iqr_s,
            "iqr_fraction": self.iqr_fraction,
            "noisy": self.noisy,
        }


def block_size(per_call_s: float, block_s: float) -> int:
    """Calls per timed sample so one lasts about ``block_s``: clock overhead stays negligible."""
    if per_call_s <= 0:
        return 1
    return max(1, min(1_000_000, math.ceil(block_s / per_call_s)))


def _time_block(
    fn: Callable[[], object], number: int, sync: Callable[[], None], clock: Callable[[], float]
) -> float:
    """Seconds for ``number`` back-to-back calls, with the device idle at both clock reads."""
    sync()
    t0 = clock()
    for _ in range(number):
        fn()
    sync()
    return clock() - t0


def measure(
    fn: Callable[[], object],
    *,
    sync: Callable[[], None] = lambda: None,
    min_time: float = 1.0,
    repeats: int = 10,
    warmup_time: float | None = None,
    block_s: float = 1e-3,
    max_repeats: int = 100_000,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``fn``: warm up, then take blocked samples until ``repeats`` and ``min_time`` are met.

    ``sync`` is called before every clock read so that asynchronous devices (CUDA) have finished
    the work being timed; on CPU it is a no-op.
    """
    warmup_time = 0.1 * min_time if warmup_time is None else warmup_time
    gc_was_enabled = gc.isenabled()
    # A collection in the middle of a block would be charged to the layer.
    gc.disable()
    try:
        # Warm-up: first calls pay for allocator growth, kernel selection and lazy init.
        call_times: list[float] = []
        start = clock()
        while len(call_times) < 3 or clock() - start < warmup_time:
            sync()
            t0 = clock()
            fn()
            sync()
            call_times.append(clock() - t0)
        # The fastest steady-state call sets the block size; the first call is an outlier.
        number = block_size(min(call_times[1:]), block_s)
        # Per-call estimates include a sync each (tens of µs on a GPU), so they overestimate
        # short kernels; re-size from whole blocks until one block really lasts ~block_s.
        for _ in range(3):
            elapsed = _time_block(fn, number, sync, clock)
            if elapsed >= 0.5 * block_s:
                break
            number = block_size(elapsed / number, block_s)

        samples: list[float] = []
        total = 0.0
        while (len(samples) < repeats or total < min_time) and len(samples) < max_repeats:
            elapsed = _time_block(fn, number, sync, clock)
            total += elapsed
            samples.append(elapsed / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    q1, med, q3 = quartiles(samples)
    return Timing(med, q1, q3, len(samples), number, total, len(call_times))
