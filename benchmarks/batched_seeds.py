"""Batched seeds: model-steps/s of S seeds trained as one stacked model vs S separate runs.

Ioffe & Szegedy's MNIST MLP (784-100-100-100-10, sigmoid, batch 60, SGD) with and without
batch norm, on MNIST-like binary data, one intra-op thread, in one process. For each S the
separate runs (``run_variant`` per seed, what ``batch_seeds: false`` does) and the batched
run (``run_batched``) alternate over ``--repeats`` rounds; the median is reported. Throughput
counts training steps only (the loop's own ``train_seconds``, evaluation excluded) and also
the whole call (set-up and evaluations included). The largest difference in final test
accuracy between a batched member and the separate run of its seed is printed too.
Target on CPU: ≥ 1.5× at 16 seeds.

    python benchmarks/batched_seeds.py [--seeds 5 16] [--steps 1000] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from loop_overhead import config, make_data  # same model and data as the loop benchmark

from normbench.train.batched import run_batched
from normbench.train.loop import run_variant


def separate(cfg: dict, seeds: list[int], data) -> tuple[float, float, list[dict]]:
    """(training-only model-steps/s, whole-call model-steps/s, records) of one run per seed."""
    t0 = time.perf_counter()
    records = [run_variant(cfg, s, data) for s in seeds]
    wall = time.perf_counter() - t0
    steps = sum(r["timing"]["steps"] for r in records)
    return steps / sum(r["timing"]["train_seconds"] for r in records), steps / wall, records


def batched(cfg: dict, seeds: list[int], data) -> tuple[float, float, list[dict]]:
    t0 = time.perf_counter()
    records = run_batched(cfg, seeds, data)
    wall = time.perf_counter() - t0
    assert "batch_seeds_fallback" not in records[0]["timing"], records[0]["timing"]
    steps = sum(r["timing"]["steps"] for r in records)
    return steps / records[0]["timing"]["batch_seeds"]["group_train_seconds"], steps / wall, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 16])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--norms", nargs="+", default=["none", "batch"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, steps {args.steps}, "
        f"repeats {args.repeats}; Ioffe MLP 784-100-100-100-10, batch 60"
    )
    worst_at_max = float("inf")
    for norm in args.norms:
        cfg = config(norm, args.steps)
        cfg["training"]["eval_every"] = max(1, args.steps // 5)
        cfg["training"]["profile_steps"] = 0
        separate(config(norm, 50), [0], data), batched(config(norm, 50), [0, 1], data)  # warm-up
        for n_seeds in args.seeds:
            seeds = list(range(n_seeds))
            rows: dict[str, list[tuple[float, float]]] = {"separate": [], "batched": []}
            diff = 0.0
            for _ in range(args.repeats):
                s_train, s_wall, s_rec = separate(cfg, seeds, data)
                b_train, b_wall, b_rec = batched(cfg, seeds, data)
                rows["separate"].append((s_train, s_wall))
                rows["batched"].append((b_train, b_wall))
                for a, b in zip(s_rec, b_rec, strict=True):
                    fa, fb = a["metrics"]["final_test_acc"], b["metrics"]["final_test_acc"]
                    if fa is not None and fb is not None:
                        diff = max(diff, abs(fa - fb))
            med = {
                k: tuple(statistics.median(x[i] for x in v) for i in (0, 1))
                for k, v in rows.items()
            }
            ratio = med["batched"][0] / med["separate"][0]
            ratio_wall = med["batched"][1] / med["separate"][1]
            if n_seeds == max(args.seeds):
                worst_at_max = min(worst_at_max, ratio)
            print(
                f"norm={norm:5s} seeds={n_seeds:3d}  separate {med['separate'][0]:7.0f} "
                f"model-steps/s  batched {med['batched'][0]:7.0f}  ratio {ratio:.2f} "
                f"(whole call {ratio_wall:.2f})  max |Δ final acc| {diff:.4f}"
            )
    verdict = "PASS" if worst_at_max >= 1.5 else "FAIL"
    print(f"worst ratio at {max(args.seeds)} seeds {worst_at_max:.2f} (target ≥ 1.5): {verdict}")


if __name__ == "__main__":
    main()
