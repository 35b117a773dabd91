"""False positives of compare gates: honest A/A run pairs of one suite, gate by gate.

Each trial runs the same suite twice, back to back, in fresh processes (as a CI job would:
same seeds, same code, only the machine's timing noise differs) and compares the two runs
with each gate on its own and with the README's recommended gates together. Any gate that
fires on such a pair is a false positive. Prints one line per trial and, per gate, how many
of the trials it fired in (goal for the recommended gates: 0).

    python benchmarks/gate_noise.py                          # quickstart at 300 steps, 10 pairs
    python benchmarks/gate_noise.py --suite suites/ci-smoke.yaml --trials 3 --steps 0

Timing figures depend on what else the machine is doing: say so when quoting them.
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

ROOT = Path(__file__).resolve().parent.parent
# The gates the README recommends for CI: deterministic accuracy / loss, plus the
# machine-normalised relative cost for speed.
RECOMMENDED = ["final_test_acc:-1%", "final_train_loss:+0.05", "rel_ms_per_step:+10%"]
# Raw throughput, shown for contrast: it moves with the machine, not only with the code.
CONTRAST = ["samples_per_sec:-10%", "ms_per_step:+10%"]


def normbench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "normbench", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def run_once(suite: Path, out: Path, steps: int) -> Path:
    """One honest run in a fresh process; returns its run directory."""
    extra = ["--set", f"training.steps={steps}"] if steps else []
    proc = normbench("run", str(suite), "--out", str(out), "--no-report", "-q", *extra)
    if proc.returncode != 0:
        sys.exit(f"normbench run failed ({proc.returncode}): {proc.stderr.strip()}")
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run


def fired(a: Path, b: Path, gates: list[str]) -> tuple[bool, list[str]]:
    """Whether ``normbench compare a b --fail-on …`` fires, and the failing checks."""
    args = [x for g in gates for x in ("--fail-on", g)]
    proc = normbench("compare", str(a), str(b), *args, "--format", "json")
    if proc.returncode not in (0, 1):
        sys.exit(f"normbench compare failed ({proc.returncode}): {proc.stderr.strip()}")
    doc = json.loads(proc.stdout)
    fails = [
        f"{g['gate']} on {g['variant']}: {g['reason']}"
        for g in doc["gates"]
        if g["status"] == "fail"
    ]
    return proc.returncode == 1, fails


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "quickstart.yaml")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument(
        "--steps", type=int, default=300, help="training.steps override (0: the suite's own)"
    )
    args = ap.parse_args()
    gates = RECOMMENDED + CONTRAST
    counts = dict.fromkeys([*gates, "recommended together"], 0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            a = run_once(args.suite, Path(tmp) / f"t{i}a", args.steps)
            b = run_once(args.suite, Path(tmp) / f"t{i}b", args.steps)
            hits = []
            for g in gates:
                hit, fails = fired(a, b, [g])
                counts[g] += hit
                hits += fails
            together, _ = fired(a, b, RECOMMENDED)
            counts["recommended together"] += together
            print(f"trial {i + 1}: {'FALSE POSITIVE' if hits else 'ok'}", flush=True)
            for line in hits:
                print(f"    {line}")
    print(
        f"\nA/A false positives over {args.trials} honest pairs of {args.suite.name}"
        f"{f' at {args.steps} steps' if args.steps else ''} "
        f"({time.perf_counter() - t0:.0f} s, cpu_count={os.cpu_count()}):"
    )
    for g, n in counts.items():
        tag = "recommended" if g in RECOMMENDED or g == "recommended together" else "contrast"
        print(f"  {g:<26} {n} of {args.trials}   ({tag})")
    print(
        "timing noise depends on the machine's load at the time; rerun before drawing conclusions"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
