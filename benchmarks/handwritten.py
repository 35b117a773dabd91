"""The quickstart suite as a user would write it by hand, timed against ``normbench run``.

The hand-written script is what the comparison is about: a ``DataLoader`` over a
``TensorDataset`` (shuffled, batch 100), torch's default threads, one variant and seed after
another, an evaluation over the test split every ``eval_every`` steps. It trains the same 10
variants × 2 seeds of ``suites/quickstart.yaml`` (MNIST-1D MLP 40-100-100-10, SGD with momentum,
norm none/batch/layer, pre/post, lr ×1/×5). Both sides run as real subprocesses timed from
launch to exit (start-up included), alternating over ``--repeats`` rounds; medians are
reported. Target: ``normbench run`` ≤ 0.15 × the hand-written script's wall time.

``--neighbour`` keeps one core busy (a ``while True: pass`` process) during every measurement,
as a browser, a build or another job would. torch's default is one intra-op thread per core,
and its threads wait for each other at every op: with one of them pre-empted, the
hand-written script slows several-fold, while ``normbench run`` pins one thread per worker.
On the 2-vCPU dev VM the hand-written script took 29-30 s quiet; the 257 s that the 0.15
target was set against is what it takes beside such a neighbour.

    python benchmarks/handwritten.py [--steps 1500] [--repeats 1] [--only hand|normbench]
                                     [--neighbour]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "quickstart.yaml"


def hand_written(steps: int, eval_every: int) -> None:
    """The script itself (runs in a child process: ``python handwritten.py --child``)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from normbench.data.registry import load_dataset, resolve_dataset

    split = load_dataset(resolve_dataset({"name": "mnist1d", "input_norm": "zscore"}))
    x_train, y_train = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    x_test, y_test = torch.from_numpy(split.x_test), torch.from_numpy(split.y_test)
    variants = [
        (norm, placement, mult)
        for norm in ("none", "batch", "layer")
        for placement in ("pre", "post")
        for mult in (1, 5)
        if not (norm == "none" and placement == "post")
    ]

    def make_model(norm: str, placement: str) -> nn.Module:
        layers: list[nn.Module] = []
        prev = x_train.shape[1]
        for width in (100, 100):
            layers.append(nn.Linear(prev, width))
            norm_layer = {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm]
            pair = [norm_layer(width), nn.ReLU()]
            layers += pair if placement == "pre" else pair[::-1]
            prev = width
        return nn.Sequential(*layers, nn.Linear(prev, 10))

    for norm, placement, mult in variants:
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = make_model(norm, placement)
            opt = torch.optim.SGD(model.parameters(), lr=0.01 * mult, momentum=0.9)
            loader = DataLoader(
                TensorDataset(x_train, y_train), batch_size=100, shuffle=True, drop_last=True
            )
            step, accs = 0, []
            while step < steps:
                for xb, yb in loader:
                    model.train()
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    step += 1
                    if step % eval_every == 0:
                        model.eval()
                        with torch.no_grad():
                            accs.append((model(x_test).argmax(1) == y_test).float().mean().item())
                    if step >= steps:
                        break
            print(f"{norm}-{placement}-x{mult} seed {seed}: final test acc {accs[-1]:.3f}")


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


@contextmanager
def neighbour(busy: bool) -> Iterator[None]:
    """A process that keeps one core busy while the block runs (nothing when not ``busy``)."""
    if not busy:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=["hand", "normbench"])
    parser.add_argument("--neighbour", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    eval_every = max(1, min(100, args.steps // 5))
    if args.child:
        hand_written(args.steps, eval_every)
        return
    hand_cmd = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
    times: dict[str, list[float]] = {"hand": [], "normbench": []}
    with tempfile.TemporaryDirectory(prefix="nb-hand-") as out:
        nb_cmd = [
            sys.executable,
            "-m",
            "normbench",
            "run",
            str(SUITE),
            "--out",
            out,
            "--quiet",
            "--no-report",
            "--set",
            f"training.steps={args.steps}",
            "--set",
            f"training.eval_every={eval_every}",
        ]
        for _ in range(args.repeats):
            if args.only != "normbench":
                with neighbour(args.neighbour):
                    times["hand"].append(timed(hand_cmd))
            if args.only != "hand":
                with neighbour(args.neighbour):
                    times["normbench"].append(timed(nb_cmd))
    beside = ", one core kept busy by a neighbour" if args.neighbour else ""
    print(
        f"quickstart (10 variants × 2 seeds, {args.steps} steps{beside}), median of {args.repeats}:"
    )
    med = {k: statistics.median(v) for k, v in times.items() if v}
    for name, t in med.items():
        print(f"  {name:10s} {t:8.2f} s   (runs: {', '.join(f'{x:.2f}' for x in times[name])})")
    if len(med) == 2:
        ratio = med["normbench"] / med["hand"]
        print(
            f"normbench / hand-written: {ratio:.3f}  (target ≤ 0.15: "
            f"{'PASS' if ratio <= 0.15 else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
