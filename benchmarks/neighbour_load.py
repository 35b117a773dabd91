"""A busy neighbour: ms/step with one CPU-burning process beside the run, and which figure holds.

Five in-process runs of one suite, back to back: quiet, loaded, quiet, loaded, quiet, where
"loaded" means one other process spinning on a core for the whole run (a neighbour on a
shared machine or CI runner). Prints

* ms/step loaded ÷ ms/step quiet (geometric mean over variants; goal ≤ 2×: a neighbour may
  slow a run, not collapse it);
* per variant, the spread (coefficient of variation over the 5 runs) of the raw
  ``samples_per_sec`` and of the machine-normalised ``rel_ms_per_step``: the relative
  figure must be the steadier one, since the load comes and goes between the runs.

    python benchmarks/neighbour_load.py                       # quickstart at 300 steps
    python benchmarks/neighbour_load.py --suite suites/ci-smoke.yaml --steps 0

"quiet" is only as quiet as the machine: on a shared machine say so when quoting figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BURN = "while True: pass"
PATTERN = ("quiet", "loaded", "quiet", "loaded", "quiet")


def run_once(suite: Path, out: Path, steps: int) -> dict[str, dict[str, float]]:
    """One in-process run; per variant name, its mean ms/step, samples/s and relative cost."""
    extra = ["--set", f"training.steps={steps}"] if steps else []
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "normbench",
            "run",
            str(suite),
            "--out",
            str(out),
            "--no-report",
            "-q",
            "--workers",
            "1",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"normbench run failed ({proc.returncode}): {proc.stderr.strip()}")
    per: dict[str, dict[str, list[float]]] = {}
    for f in out.glob("*/*/results/*.json"):
        r = json.loads(f.read_text())
        m = r.get("metrics") or {}
        slot = per.setdefault(r["variant_name"], {"ms": [], "sps": [], "rel": []})
        for key, name in (
            ("ms", "ms_per_step"),
            ("sps", "samples_per_sec"),
            ("rel", "rel_ms_per_step"),
        ):
            if isinstance(m.get(name), int | float):
                slot[key].append(float(m[name]))
    return {v: {k: statistics.fmean(x) for k, x in d.items() if x} for v, d in per.items()}


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "quickstart.yaml")
    ap.add_argument(
        "--steps", type=int, default=300, help="training.steps override (0: the suite's own)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs: list[tuple[str, dict[str, dict[str, float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, kind in enumerate(PATTERN):
            burner = subprocess.Popen([sys.executable, "-c", BURN]) if kind == "loaded" else None
            try:
                runs.append((kind, run_once(args.suite, Path(tmp) / f"r{i}", args.steps)))
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
            ms = statistics.fmean(v["ms"] for v in runs[-1][1].values() if "ms" in v)
            print(f"run {i + 1} ({kind:>6}): mean ms/step over variants {ms:.3f}", flush=True)
    variants = sorted(runs[0][1])
    ratios = []
    for v in variants:
        quiet = [r[v]["ms"] for k, r in runs if k == "quiet" and "ms" in r.get(v, {})]
        loaded = [r[v]["ms"] for k, r in runs if k == "loaded" and "ms" in r.get(v, {})]
        if quiet and loaded:
            ratios.append(statistics.fmean(loaded) / statistics.fmean(quiet))
    print(
        f"\nsuite {args.suite.name}{f' at {args.steps} steps' if args.steps else ''}, "
        f"in-process, cpu_count={os.cpu_count()}, {time.perf_counter() - t0:.0f} s"
    )
    if ratios:
        geo = math.exp(statistics.fmean(math.log(x) for x in ratios))
        print(
            f"ms/step with one CPU-burning neighbour ÷ quiet: {geo:.2f}× "
            f"(geometric mean over {len(ratios)} variants; range {min(ratios):.2f}–"
            f"{max(ratios):.2f}×; goal ≤ 2×)"
        )
    print("\nspread over the 5 runs (coefficient of variation; quiet and loaded runs mixed):")
    print(f"  {'variant':<40} {'samples/s':>10} {'rel_ms_per_step':>16}")
    sps_cv, rel_cv = [], []
    for v in variants:
        sps = [r[v]["sps"] for _, r in runs if "sps" in r.get(v, {})]
        rel = [r[v]["rel"] for _, r in runs if "rel" in r.get(v, {})]
        if len(sps) < 2 or len(rel) < 2 or statistics.fmean(rel) == 1.0:
            continue  # the reference is 1 by definition: no spread to show
        sps_cv.append(cv(sps))
        rel_cv.append(cv(rel))
        print(f"  {v:<40} {cv(sps):>9.1%} {cv(rel):>15.1%}")
    if sps_cv:
        print(
            f"  {'median over variants':<40} {statistics.median(sps_cv):>9.1%} "
            f"{statistics.median(rel_cv):>15.1%}"
        )
        steadier = statistics.median(rel_cv) < statistics.median(sps_cv)
        print(f"relative cost is {'the steadier' if steadier else 'NOT the steadier'} figure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
