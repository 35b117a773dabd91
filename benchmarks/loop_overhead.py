"""Loop overhead: normbench's training steps/s vs a plain hand-written PyTorch loop.

Ioffe & Szegedy's MLP (IN-100-100-100-10, sigmoid, batch 60, SGD) for a 40-input (tiny: per-op
overhead dominates) and the 784-input (MNIST) model, with and without batch norm, over the
same tensors and thread count, in the same process. Runs alternate (plain, normbench, plain,
...) so drifts in machine load hit both; the median of each is used.
Target: normbench ≥ 0.97 × plain.

    python benchmarks/loop_overhead.py [--inputs 40 784] [--steps 3000] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normbench.train.loop import run_variant


def make_data(n: int = 10_000, inputs: int = 784) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    x = (rng.random((n, inputs)) > 0.8).astype(np.float32)  # binary, MNIST-like sparsity
    y = rng.integers(0, 10, n).astype(np.int64)
    return SimpleNamespace(
        x_train=x,
        y_train=y,
        x_test=x[:1000],
        y_test=y[:1000],
        task="classification",
        num_outputs=10,
        layout="vector",
    )


def config(norm: str, steps: int) -> dict:
    return {
        "dataset": {"name": "bench"},
        "model": {
            "kind": "mlp",
            "hidden": [100, 100, 100],
            "activation": "sigmoid",
            "norm": {"kind": norm} if norm == "none" else _resolved(norm),
            "placement": "pre",
            "init": "default",
            "init_std": 0.01,
            "residual": False,
        },
        "training": {
            "optimizer": {
                "name": "sgd",
                "momentum": 0.9,
                "nesterov": False,
                "weight_decay": 0.0,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
            },
            "lr": 0.1,
            "lr_mult": 1.0,
            "lr_schedule": "constant",
            "batch_size": 60,
            "steps": steps,
            "eval_every": steps,
            "eval_batch_size": 1000,
            "probe_size": 1000,
            "device": "cpu",
            "threads": None,
            "grad_clip": None,
            "precision": "fp32",
            "compile": False,
            "channels_last": False,
        },
        "targets": {},
        "diagnostics": {},
    }


def _resolved(norm: str) -> dict:
    from normbench.norms.catalog import resolve_norm

    return resolve_norm(norm)


def plain_loop(data: SimpleNamespace, norm: str, steps: int, seed: int = 0) -> float:
    """What a user would write by hand; returns training steps per second."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = data.x_train.shape[1]
    for _ in range(3):
        layers += [nn.Linear(prev, 100, bias=norm == "none")]
        if norm == "batch":
            layers.append(nn.BatchNorm1d(100))
        layers.append(nn.Sigmoid())
        prev = 100
    model = nn.Sequential(*layers, nn.Linear(prev, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(seed)
    n, batch = x.shape[0], 60
    perm, pos, total = torch.randperm(n, generator=gen), 0, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + batch]
        pos += batch
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return steps / (time.perf_counter() - start)


def normbench_loop(data: SimpleNamespace, norm: str, steps: int, seed: int = 0) -> float:
    record = run_variant(config(norm, steps), seed, data)
    assert record["status"] == "ok", record["error"]
    return steps / record["timing"]["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inputs", type=int, nargs="+", default=[40, 784])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, steps {args.steps}, "
        f"repeats {args.repeats}"
    )
    worst = 1.0
    for inputs in args.inputs:
        data = make_data(inputs=inputs)
        for norm in ("none", "batch"):
            plain_loop(data, norm, 200), normbench_loop(data, norm, 200)  # warm-up
            plain, ours = [], []
            for _ in range(args.repeats):
                plain.append(plain_loop(data, norm, args.steps))
                ours.append(normbench_loop(data, norm, args.steps))
            p, o = statistics.median(plain), statistics.median(ours)
            worst = min(worst, o / p)
            print(
                f"inputs={inputs:4d} norm={norm:6s} plain {p:8.0f} steps/s   "
                f"normbench {o:8.0f} steps/s   ratio {o / p:.3f}   "
                f"(runs: {' '.join(f'{b / a:.2f}' for a, b in zip(plain, ours, strict=True))})"
            )
    print(f"worst ratio {worst:.3f} (target ≥ 0.97): {'PASS' if worst >= 0.97 else 'FAIL'}")


if __name__ == "__main__":
    main()
