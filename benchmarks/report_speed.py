"""Time ``normbench report`` on a synthetic 200-variant × 3-seed run directory (target ≤ 10 s)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normbench.report.synthetic import NORM_TRAITS, make_run

LIMIT_S = 10.0


def build(out: Path, steps: int, eval_every: int) -> Path:
    """10 norms × 2 placements × 10 lr multipliers × 3 seeds = 600 result files with diagnostics."""
    return make_run(
        out,
        name="speed200",
        norms=list(NORM_TRAITS),
        placements=("pre", "post"),
        lr_mults=(0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
        seeds=3,
        steps=steps,
        eval_every=eval_every,
        diagnostics=("activations", "grad_norms"),
        exclude_none_post=False,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", type=Path, help="build the run directory here and keep it")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = build(args.keep or Path(tmp) / "run", args.steps, args.eval_every)
        files = len(list((run / "results").glob("*.json")))
        # A fresh process, like a user typing the command: imports are part of the cost.
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "normbench", "report", str(run)], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        plots = len(list((run / "plots").glob("*")))
        verdict = "OK" if elapsed <= LIMIT_S else "TOO SLOW"
        print(
            f"normbench report: 200 variants × 3 seeds ({files} result files, {plots} plot files): "
            f"{elapsed:.2f} s (limit {LIMIT_S:.0f} s) {verdict}"
        )
        return 0 if elapsed <= LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
