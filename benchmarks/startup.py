"""Start-up: wall time of ``normbench run`` on a 1-step suite, launch to exit, vs its floor.

A 4-variant × 1-seed MLP suite of one training step (synthetic data, so nothing but start-up
is measured): ``normbench run`` in-process and with ``--workers 2`` (warm forkserver workers),
without the report and with it (its static plots import and draw with matplotlib), each a
real subprocess timed from launch to exit, against the floor every training script pays:
``import torch`` and ``torch._dynamo``, which torch's ``optimizer.step()`` imports on its first
call. Configurations alternate over ``--repeats`` rounds; median, min and max are printed.
Target on the 2-core dev VM: ≤ 3 s (judged without the report).

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: startup
dataset: {name: synthetic-blobs, num_train: 256, num_test: 64, features: 40}
model: {kind: mlp, hidden: [100, 100]}
training: {steps: 1, eval_every: 1, seeds: 1, batch_size: 32, device: cpu}
grid:
  norm: [none, batch, layer, rms]
"""


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "startup.yaml"
        suite.write_text(SUITE)
        run = [sys.executable, "-m", "normbench", "run", str(suite), "-q"]
        configs = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "import torch, torch._dynamo": [sys.executable, "-c", "import torch, torch._dynamo"],
            "run --no-report": [*run, "--out", f"{tmp}/a", "--workers", "1", "--no-report"],
            "run --workers 2 --no-report": [
                *run,
                "--out",
                f"{tmp}/b",
                "--workers",
                "2",
                "--no-report",
            ],
            "run (report written)": [*run, "--out", f"{tmp}/c", "--workers", "1"],
        }
        timed(configs["run (report written)"])  # warm the data cache and file system
        times: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(args.repeats):
            for name, cmd in configs.items():
                times[name].append(timed(cmd))
    print(f"1-step suite, 4 variants × 1 seed, {args.repeats} rounds (median [min, max] s)")
    for name, values in times.items():
        print(
            f"  {name:30s} {statistics.median(values):5.2f} [{min(values):.2f}, {max(values):.2f}]"
        )
    worst = max(statistics.median(v) for k, v in times.items() if k.endswith("--no-report"))
    verdict = "PASS" if worst <= 3 else "FAIL"
    print(f"slowest --no-report median {worst:.2f} s (target ≤ 3 s): {verdict}")


if __name__ == "__main__":
    main()
