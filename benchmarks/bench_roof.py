"""`normbench bench` against physics: the copy roof's steadiness, warm vs fresh outputs, eval \
vs train.

Prints, for the default conv shape and a large MLP activation:

* the copy row's IQR/median (goal ≤ 10 % on a quiet machine) and its GB/s;
* instance norm forward in train and in eval mode (same arithmetic: they must agree), with
  warm outputs (the default) and with ``--fresh-outputs`` (every output page-faulted anew);
* every layer's fraction of the copy roof, and the reason printed for any above 100 %.

Fresh outputs run in a child process: the warm allocator setting cannot be undone in-process.

    python benchmarks/bench_roof.py
    python benchmarks/bench_roof.py --min-time 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SHAPES = ["32x64x56x56", "8192x1024"]


def bench(
    shape: str, norms: list[str], fresh: bool, min_time: float, threads: int | None
) -> list[dict]:
    """One ``normbench bench`` process; its JSON records."""
    args = [
        sys.executable,
        "-m",
        "normbench",
        "bench",
        *norms,
        "--shape",
        shape,
        "--device",
        "cpu",
        "--mode",
        "both",
        "--pass",
        "forward",
        "--min-time",
        str(min_time),
        "--format",
        "json",
    ]
    if fresh:
        args.append("--fresh-outputs")
    if threads:
        args += ["--threads", str(threads)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"normbench bench failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1 is steadier on a shared machine)",
    )
    args = ap.parse_args()
    print(f"cpu_count={os.cpu_count()}, threads={args.threads or 'torch default'}")
    for shape in SHAPES:
        norms = ["instance", "group[groups=8]", "batch"] if "x56" in shape else ["layer", "rms"]
        for fresh in (False, True):
            recs = bench(shape, norms, fresh, args.min_time, args.threads)
            copy = recs[0]
            label = "fresh outputs" if fresh else "warm outputs "
            print(
                f"\n{shape} {label}: copy {copy['median_s'] * 1e3:.3f} ms, "
                f"{copy['gbps']:.2f} GB/s, IQR {copy['iqr_fraction']:.1%} "
                f"({copy['repeats']} samples; goal ≤ 10 %)"
            )
            for r in recs[1:]:
                note = f"  [{r['roof_note']}]" if r.get("roof_note") else ""
                print(
                    f"  {r['norm']:<16} {r['mode']:<5} forward {r['median_s'] * 1e3:8.3f} ms "
                    f"IQR {r['iqr_fraction']:6.1%}  {r['copy_fraction']:7.1%} of copy{note}"
                )
            inst = {r["mode"]: r["median_s"] for r in recs if r["norm"] == "instance"}
            if len(inst) == 2:
                print(
                    f"  instance eval ÷ train forward: {inst['eval'] / inst['train']:.2f}× "
                    "(same arithmetic: expect ≈ 1)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
