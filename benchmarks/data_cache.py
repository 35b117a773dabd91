"""Benchmark: MNIST-1D's first build, then data loading for a 50-variant suite (disk cache, \
memo)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0  # the 50 variants after the first build must load in under a second
INPUT_NORMS = ("none", "zscore", "minmax")
MODELS = ("mlp", "cnn", "rnn")

# What a worker process does per variant: import the registry, load, view (from the disk cache).
_FRESH_PROCESS = """
import time
t = time.perf_counter()
from normbench.data import load_dataset, view_for_model
view_for_model(load_dataset({"name": "mnist1d", "input_norm": "zscore"}), "rnn")
print(time.perf_counter() - t)
"""


def variants(count: int) -> list[tuple[dict, str]]:
    """``count`` (dataset config, model kind) pairs, as a suite's grid would produce."""
    return [
        ({"name": "mnist1d", "input_norm": INPUT_NORMS[i % 3]}, MODELS[(i // 3) % 3])
        for i in range(count)
    ]


def load_all(pairs: list[tuple[dict, str]], fresh_memo: bool) -> float:
    """Seconds to load and view every variant; ``fresh_memo`` forgets the memo each time,
    so every load reads the disk cache like a new worker process would."""
    from normbench.data import clear_memo, load_dataset, view_for_model

    clear_memo()
    start = time.perf_counter()
    for cfg, model in pairs:
        if fresh_memo:
            clear_memo()
        view_for_model(load_dataset(cfg), model)
    return time.perf_counter() - start


def fresh_process_seconds() -> float:
    """Import + load + view in a new interpreter, reading the disk cache."""
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS], check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(count: int) -> int:
    from normbench.data import build_counts, load_dataset

    start = time.perf_counter()
    load_dataset({"name": "mnist1d"})
    first = time.perf_counter() - start
    pairs = variants(count)
    disk = load_all(pairs, fresh_memo=True)
    memo = load_all(pairs, fresh_memo=False)
    process = fresh_process_seconds()
    builds = build_counts().get("mnist1d", 0)

    print(f"cache directory                         {os.environ['NORMBENCH_CACHE']}")
    print(f"mnist1d first build (import + generate)  {first:8.3f} s")
    print(
        f"{count} variants, fresh memo (disk cache)    {disk:8.3f} s  "
        f"({disk / count * 1e3:.2f} ms each)"
    )
    print(
        f"{count} variants, in-process memo            {memo:8.3f} s  "
        f"({memo / count * 1e3:.3f} ms each)"
    )
    print(f"one fresh process: import + load + view  {process:8.3f} s")
    print(f"builds in this process                   {builds:8d}")
    ok = disk < TARGET_S and builds == 1
    print(
        f"target: {count} variants < {TARGET_S:.0f} s after the first build: "
        f"{'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", type=int, default=50, help="number of variants (50)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory to use (default: a fresh temporary one, so the first build is real)",
    )
    args = parser.parse_args()
    if args.cache is not None:
        os.environ["NORMBENCH_CACHE"] = str(args.cache)
        return run(args.variants)
    with tempfile.TemporaryDirectory(prefix="normbench-cache-") as tmp:
        os.environ["NORMBENCH_CACHE"] = tmp
        return run(args.variants)


if __name__ == "__main__":
    sys.exit(main())
