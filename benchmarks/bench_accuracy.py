"""Check `normbench bench` timings against torch.utils.benchmark.Timer and print the layer \
figures."""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch.utils.benchmark import Timer

from normbench.bench import format_shape, parse_shape, render_bench, run_bench
from normbench.norms import make, resolve_norm

TOLERANCE = 0.10  # the two timers must agree within 10 %


def ours(shape: tuple[int, ...], min_time: float) -> float:
    """Median forward time of ``layer`` from normbench's own API (train mode, fp32, CPU)."""
    recs = run_bench(
        ["layer"],
        [shape],
        ["float32"],
        "cpu",
        modes=("train",),
        passes=("forward",),
        min_time=min_time,
    )
    return recs[1]["median_s"]


def reference(shape: tuple[int, ...], min_time: float) -> float:
    """Median forward time of the same layer from torch's Timer, with the same thread count."""
    layer = make(shape[1], resolve_norm("layer")).train()
    x = torch.randn(shape)
    # Timer defaults to one thread; normbench uses torch.get_num_threads() as is, so match it.
    # The forward runs under no_grad in normbench too (no autograd graph is recorded).
    timer = Timer(
        stmt="with torch.no_grad():\n    layer(x)",
        globals={"layer": layer, "x": x},
        num_threads=torch.get_num_threads(),
    )
    return timer.blocked_autorange(min_run_time=min_time).median


def main() -> int:
    """Alternate both timers for a few rounds, compare medians, then print the bench table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="8192x1024")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    shape = parse_shape(args.shape)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, "
        f"LayerNorm forward {format_shape(shape)} float32"
    )
    mine, theirs = [], []
    # Interleaved rounds so that load from other processes hits both timers alike.
    for i in range(args.rounds):
        mine.append(ours(shape, args.min_time))
        theirs.append(reference(shape, args.min_time))
        print(
            f"  round {i + 1}: normbench {mine[-1] * 1e3:.3f} ms   "
            f"torch Timer {theirs[-1] * 1e3:.3f} ms   ratio {mine[-1] / theirs[-1]:.3f}"
        )
    a, b = statistics.median(mine), statistics.median(theirs)
    ratio = a / b
    verdict = "PASS" if abs(ratio - 1) <= TOLERANCE else "FAIL"
    print(
        f"median over rounds: normbench {a * 1e3:.3f} ms, torch Timer {b * 1e3:.3f} ms, "
        f"ratio {ratio:.3f} (tolerance ±{TOLERANCE:.0%}) → {verdict}\n"
    )

    recs = run_bench(
        ["layer", "batch", "rms"],
        [shape],
        ["float32"],
        "cpu",
        modes=("train", "eval"),
        passes=("forward",),
        min_time=args.min_time,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(render_bench(recs, "table"))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
