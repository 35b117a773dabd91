"""False positives of a throughput gate: honest run pairs of one suite compared with a 5 % gate.

Each trial runs the same suite twice in fresh processes (as a CI job would: same seeds, same
code, only the machine's timing noise differs) and runs ``normbench compare A B --fail-on
samples_per_sec:-5%``. A trial whose gate fires is a false positive. Prints one line per
trial and the count; timing figures depend on what else the machine is doing.

    python benchmarks/gate_noise.py                      # built-in tiny suite, 5 trials
    python benchmarks/gate_noise.py --suite suites/ci-smoke.yaml --trials 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Small enough for minutes on a shared laptop, long enough (200 steps) that a seed's
# throughput is not all warm-up.
TINY = """\
name: gate-noise
dataset: {name: synthetic-blobs, input_norm: zscore}
model: {kind: mlp, hidden: [32, 32], activation: relu}
training: {optimizer: adam, lr: 0.01, batch_size: 64, steps: 200, eval_every: 100, seeds: 3,
           device: cpu, threads: 1}
grid:
  norm: [none, batch, layer]
"""


def normbench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "normbench", *args], capture_output=True,
                          text=True, env=env)


def run_once(suite: Path, out: Path) -> Path:
    """One honest run in a fresh process; returns its run directory."""
    proc = normbench("run", str(suite), "--out", str(out), "--no-report", "-q", "--workers", "1",
                     "--format", "json")
    if proc.returncode != 0:
        sys.exit(f"normbench run failed ({proc.returncode}): {proc.stderr.strip()}")
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run


def trial(suite: Path, tmp: Path, i: int, gate: str) -> tuple[bool, list[str]]:
    """Two honest runs and one compare; (gate fired, one description per variant)."""
    a, b = run_once(suite, tmp / f"t{i}a"), run_once(suite, tmp / f"t{i}b")
    proc = normbench("compare", str(a), str(b), "--fail-on", gate, "--format", "json")
    if proc.returncode not in (0, 1):
        sys.exit(f"normbench compare failed ({proc.returncode}): {proc.stderr.strip()}")
    doc = json.loads(proc.stdout)
    metric = gate.split(":", 1)[0]
    lines = []
    for g in doc["gates"]:
        rel = "—" if g["relative"] is None else f"{g['relative'] * 100:+6.1f} %"
        p = "—" if g["p_value"] is None else f"{g['p_value']:.3f}"
        lines.append(f"{g['variant']:<16} {metric} {rel}  p={p}  {g['status']}")
    return proc.returncode == 1, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, help="suite to run (default: a built-in tiny blobs MLP)")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--gate", default="samples_per_sec:-5%")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fired = checks = failed_checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        suite = args.suite
        if suite is None:
            suite = Path(tmp) / "gate-noise.yaml"
            suite.write_text(TINY)
        for i in range(args.trials):
            hit, lines = trial(suite, Path(tmp), i, args.gate)
            fired += hit
            checks += len(lines)
            failed_checks += sum(line.endswith("fail") for line in lines)
            print(f"trial {i + 1}: {'FALSE POSITIVE' if hit else 'ok'}")
            for line in lines:
                print(f"  {line}")
    print(f"\nfalse positives: {fired} of {args.trials} trials ({failed_checks} of {checks} gate checks) "
          f"with --fail-on {args.gate}; {time.perf_counter() - t0:.0f} s, cpu_count={os.cpu_count()}")
    print("timing noise depends on the machine's load at the time; rerun before drawing conclusions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
