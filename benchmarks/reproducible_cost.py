"""Speed cost of the reproducible mode: steps/s with pinned (AVX2) kernels vs this CPU's own.

The kernel level is fixed when torch initialises, so each measurement is a fresh process:
native and pinned processes alternate (so drifts in machine load hit both) and each runs
``loop_overhead``'s plain PyTorch loop and normbench's loop on Ioffe & Szegedy's MNIST MLP,
with and without batch norm, one thread. Printed: medians, and pinned / native ratios.

    python benchmarks/reproducible_cost.py [--steps 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from normbench import arith

HERE = Path(__file__).resolve().parent
NORMS = ("none", "batch")


def child(steps: int) -> None:
    """One measurement in this (fresh) process: steps/s of both loops for each norm."""
    import torch

    sys.path.insert(0, str(HERE))
    from loop_overhead import make_data, normbench_loop, plain_loop

    torch.set_num_threads(1)
    data = make_data()
    out = {"capability": torch.backends.cpu.get_cpu_capability()}
    for norm in NORMS:
        plain_loop(data, norm, 200), normbench_loop(data, norm, 200)  # warm-up
        out[norm] = {
            "plain": plain_loop(data, norm, steps),
            "normbench": normbench_loop(data, norm, steps),
        }
    print(json.dumps(out))


def measure(steps: int, pinned: bool) -> dict:
    env = {**os.environ, **arith.thread_env(1)}
    for key in arith.pinned_env():
        env.pop(key, None)
    if pinned:
        env.update(arith.pinned_env())
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--steps", str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.steps)
        return
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.repeats):
        for pinned in (False, True):
            runs[pinned].append(measure(args.steps, pinned))
    native_cap, pinned_cap = runs[False][0]["capability"], runs[True][0]["capability"]
    print(
        f"steps {args.steps}, repeats {args.repeats}, 1 thread; kernels: native {native_cap}, "
        f"reproducible {pinned_cap}"
    )
    for norm in NORMS:
        for loop in ("plain", "normbench"):
            native = statistics.median(r[norm][loop] for r in runs[False])
            pinned = statistics.median(r[norm][loop] for r in runs[True])
            print(
                f"norm={norm:6s} {loop:9s} native {native:7.0f} steps/s   reproducible "
                f"{pinned:7.0f} steps/s   ratio {pinned / native:.3f}"
            )


if __name__ == "__main__":
    main()
