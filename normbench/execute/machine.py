"""What this machine really gives side by side: measured once, cached per CPU model (torch-free)."""

# A core count says how many processes may run at once, not how fast: the 2 vCPUs of a cloud
# VM can behave like one core (two CPU-bound processes each take twice as long side by side as
# alone), and then a second worker only adds its start-up. So the planner asks how much work N
# busy processes really get done together, relative to one alone (the parallel speed-up, 1..N),
# measured here with N = the usable cores, in a few tenths of a second, and cached under the
# CPU's model name and core count when the machine was quiet (others' load is in wall times
# too). ``$NORMBENCH_PARALLEL_SPEEDUP`` overrides it (tests, or a machine known better).

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OVERRIDE_VAR = "NORMBENCH_PARALLEL_SPEEDUP"
CACHE_FILE = "machine.json"
# A pure-Python busy loop (no memory traffic, no library threads): each process reports the
# seconds its own loop took, between a common "go" and its end, so start-up is not measured.
BUSY = (
    "import sys, time\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.readline()\n"
    "t = time.perf_counter(); x = 0\n"
    "for i in range({n}): x += i * i\n"
    "print(time.perf_counter() - t, flush=True)\n"
)
BUSY_ITERATIONS = 400_000  # about 30 ms alone on a 2020s core
ROUNDS = 3  # alone / together, alternated: the medians shrug off one disturbed round
MAX_PROCESSES = 16
BUSY_LOAD_MARGIN = 0.5  # load average above the cores by this much: others are running


@dataclass(frozen=True)
class Machine:
    """How many cores' worth of work ``processes`` busy processes get done together."""

    processes: int
    speedup: float  # work rate of ``processes`` side by side / that of one alone
    source: str  # "measured", "cached" or the override variable's name

    def parallel(self, workers: int) -> float:
        """The expected speed-up of ``workers`` processes (linear up to the measured one)."""
        if workers <= 1:
            return 1.0
        per = (self.speedup - 1) / max(1, self.processes - 1)
        return min(float(workers), 1 + per * (min(workers, self.processes) - 1))


def cpu_key(cores: int) -> str:
    """The cache key: CPU model, architecture and usable cores (a VM resized is another)."""
    from normbench.results.environment import cpu_model

    return f"{cpu_model()}|{platform.machine()}|{cores}"


def _busy(n: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-S", "-c", BUSY.format(n=BUSY_ITERATIONS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _round(n: int) -> float:
    """Mean seconds of the busy loop over ``n`` processes started together."""
    procs = [_busy(n) for _ in range(n)]
    try:
        for p in procs:
            p.stdout.readline()  # started: now only the loops compete
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
        return statistics.fmean(float(p.stdout.readline()) for p in procs)
    finally:
        for p in procs:
            p.wait()


def measure_speedup(processes: int) -> float:
    """Work rate of ``processes`` busy processes together, relative to one alone (1..N)."""
    if processes <= 1:
        return 1.0
    alone, together = [], []
    for _ in range(ROUNDS):
        alone.append(_round(1))
        together.append(_round(processes))
    speedup = processes * statistics.median(alone) / statistics.median(together)
    return round(min(float(processes), max(1.0, speedup)), 2)


def machine(cores: int, cache_dir: Path | None = None) -> Machine:
    """This machine's parallel speed-up over ``cores`` processes: override, cache, or measured."""
    processes = max(1, min(cores, MAX_PROCESSES))
    override = os.environ.get(OVERRIDE_VAR, "").strip()
    if override:
        try:
            value = float(override)
        except ValueError:
            value = 0.0
        if value >= 1:
            return Machine(processes, min(value, float(processes)), OVERRIDE_VAR)
    if processes == 1:
        return Machine(1, 1.0, "measured")
    from normbench.data.cache import cache_root

    path = (cache_dir or cache_root()) / CACHE_FILE
    key = cpu_key(cores)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), int | float):
        return Machine(processes, float(entry["speedup"]), "cached")
    found = Machine(processes, measure_speedup(processes), "measured")
    # Wall times measure other processes' load too: only a quiet machine's answer is kept
    # (a busy one is measured again next time, at the cost of a second or two).
    if not busy(cores):
        _store(path, {**(known if isinstance(known, dict) else {}), key: _entry(found)})
    return found


def busy(cores: int) -> bool:
    """Whether other processes kept more than the cores busy over the last minute."""
    try:
        return os.getloadavg()[0] > cores + BUSY_LOAD_MARGIN
    except OSError:  # no load average here: nothing to go by
        return False


def _entry(found: Machine) -> dict:
    return {**asdict(found), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _store(path: Path, data: dict) -> None:
    """Write the cache atomically; a read-only cache only costs a measurement next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
