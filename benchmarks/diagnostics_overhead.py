"""Diagnostics overhead: what the probe seam and the cheap probes cost the training loop.

Ioffe & Szegedy's MNIST MLP (784-100-100-100-10, sigmoid, batch 60, batch norm before the
sigmoid, SGD) on synthetic binary data, through ``normbench.train.loop.run_variant``. Runs of
the variants being compared alternate (A, B, C, A, B, C, …) so drifts in machine load hit
all of them; medians over the repeats are reported.

1. Diagnostics off: ``probes=None`` vs ``probes=[]`` vs the loop with the probe calls cut out
   of its source (target: within 2 % in training steps/s).
2. ``activations`` + ``grad_norms`` at their default cadence (every evaluation, eval_every
   100) vs none (target: ≤ 10 % fewer training steps/s). The loop keeps probe time out of
   ``train_seconds``, so the wall-clock cost (training + probes, and the whole run) is
   printed too.
3. The cost of one ``ics`` and one ``landscape`` probe (default options), in ms and in
   training steps.

``--clock cpu`` (the default) times with the thread's CPU clock instead of the wall clock,
by handing the loop a ``time`` whose ``perf_counter`` is ``time.thread_time``: with one torch
thread all the work runs on the calling thread, and other processes competing for the cores
(a shared machine) no longer count. ``--clock wall`` uses the loop's own wall clock.

    python benchmarks/diagnostics_overhead.py [--steps 3000] [--repeats 5] [--threads 1] \
[--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import inspect
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from normbench.train import loop
from normbench.train import probes as P

SUITE = """\
name: diagnostics-overhead
dataset:
  name: synthetic-blobs   # validated only: the benchmark brings its own MNIST-like tensors
model:
  kind: mlp
  hidden: [100, 100, 100]
  activation: sigmoid
  norm: batch
  placement: pre
training:
  optimizer: sgd
  lr: 0.1
  batch_size: 60
  steps: {steps}
  eval_every: 100
  eval_batch_size: 1000
  profile_steps: 0
  seeds: 1
  device: cpu
diagnostics: [activations, grad_norms, ics, landscape]
"""


def make_data(n: int = 10_000) -> SimpleNamespace:
    """Binary 784-pixel inputs with MNIST-like sparsity and 10 random classes."""
    rng = np.random.default_rng(0)
    x = (rng.random((n, 784)) > 0.8).astype(np.float32)
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


def resolved_config(steps: int) -> dict[str, Any]:
    """The variant's config through the real suite loader, so it follows the schema."""
    from normbench.spec import load_suite

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(SUITE.format(steps=steps))
        (variant,) = load_suite(path).variants
    return variant.config


def stripped_train() -> Callable[..., Any] | None:
    """``loop._train_interval`` without the per-step probe call in its source (None if not found).

    Only the ``if step in backward_steps:`` block runs every step; the rest of the seam runs
    once per evaluation interval.
    """
    source = inspect.getsource(loop._train_interval)
    cut, n = re.subn(r"\n([ ]+)if step in backward_steps:\n(?:\1[ ]{4}.*\n)+", "\n", source)
    if n != 1:
        return None
    namespace = dict(vars(loop))
    exec(compile(cut, loop.__file__, "exec"), namespace)  # the loop's own globals
    return namespace["_train_interval"]


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
CLOCK = CLOCKS["cpu"]


def timed_run(
    config: dict[str, Any],
    data: SimpleNamespace,
    probes: list[Any] | None,
    train_fn: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """One run's figures (all per run; ``alternate`` takes medians over runs).

    ``train``: steps / train_seconds (probe time excluded by the loop); ``train_median``: from
    the median over evaluation intervals of ms/step, robust to a burst of load on a shared
    machine; ``probe_share``: probe seconds / training seconds, the wall-clock the probes add;
    ``with_probes``: steps / (training + probe seconds); ``wall``: the whole ``run_variant``.
    """
    original = loop._train_interval
    if train_fn is not None:
        loop._train_interval = train_fn
    clock = SimpleNamespace(perf_counter=CLOCK)  # the loop reads only time.perf_counter
    cut_globals = train_fn.__globals__ if train_fn is not None else {}
    loop.time = cut_globals["time"] = clock
    try:
        t0 = CLOCK()
        record = loop.run_variant(config, 0, data, probes=probes)
        wall = CLOCK() - t0
    finally:
        loop._train_interval = original
        loop.time = cut_globals["time"] = time
    assert record["status"] == "ok", record["error"]
    t = record["timing"]
    return {
        "train": t["steps"] / t["train_seconds"],
        "train_median": 1000 / t["ms_per_step_stats"]["median"],
        "probe_share": t["probe_seconds"] / t["train_seconds"],
        "with_probes": t["steps"] / (t["train_seconds"] + t["probe_seconds"]),
        "wall": wall,
    }


def alternate(
    variants: dict[str, Callable[[], dict[str, float]]], repeats: int
) -> dict[str, dict[str, float]]:
    """Run the variants in turn ``repeats`` times; per variant the median of each figure, and
    ``best``: the highest ``train_median`` (the run least disturbed by other load)."""
    for fn in variants.values():  # warm-up
        fn()
    names = list(variants)
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            samples[name].append(variants[name]())
    return {
        name: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        | {"best": max(s["train_median"] for s in runs)}
        for name, runs in samples.items()
    }


def seam_cost_ns(steps: int = 3000) -> float:
    """Nanoseconds per step of the only per-step probe code when no probe is on."""
    backward_steps: set[int] = set()
    loops = 200
    t0 = CLOCK()
    for _ in range(loops):
        for step in range(1, steps + 1):
            if step in backward_steps:
                pass
    with_check = CLOCK() - t0
    t0 = CLOCK()
    for _ in range(loops):
        for _step in range(1, steps + 1):
            pass
    without = CLOCK() - t0
    return 1e9 * max(with_check - without, 0.0) / (loops * steps)


def probe_cost(config: dict[str, Any], data: SimpleNamespace, repeats: int) -> dict[str, float]:
    """Median ms of one training step, one ics and one landscape probe (default options)."""
    from normbench.models import build

    tensors = loop.to_tensors(data, torch.device("cpu"))
    torch.manual_seed(0)
    model = build(config["model"], tuple(tensors.x_train.shape[1:]), tensors.num_outputs)
    opt = loop.make_optimizer(model.parameters(), config["training"])
    loss_fn = loop.loss_function(True)
    diags = config["diagnostics"]
    layers = list(range(len(model.blocks)))
    etas = P.eta_grid(
        diags["landscape"]["eta_min"], diags["landscape"]["eta_max"], diags["landscape"]["points"]
    )
    lr = loop.effective_lr(config["training"])
    times: dict[str, list[float]] = {"step": [], "ics": [], "landscape": []}
    for k in range(repeats * 20 + 10):
        xb, yb = tensors.x_train[60 * k : 60 * (k + 1)], tensors.y_train[60 * k : 60 * (k + 1)]
        t0 = CLOCK()
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = CLOCK()
        if k >= 10 and k % 10 == 0:
            P.internal_covariate_shift(model, opt, config["training"], lr, loss_fn, xb, yb, layers)
            t2 = CLOCK()
            P.loss_landscape(model, loss_fn, xb, yb, lr, etas)
            t3 = CLOCK()
            times["ics"].append(t2 - t1)
            times["landscape"].append(t3 - t2)
        t4 = CLOCK()
        opt.step()
        loss.item()
        times["step"].append(t1 - t0 + CLOCK() - t4)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    args = parser.parse_args()
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.threads != 1:
        print("note: with more than one thread the CPU clock misses the pool threads' work")
    data = make_data()
    config = resolved_config(args.steps)
    off = {**config, "diagnostics": {}}
    cheap = {k: v for k, v in config["diagnostics"].items() if k in ("activations", "grad_norms")}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, steps {args.steps}, "
        "eval_every 100, "
        f"repeats {args.repeats} (medians; runs alternate), {args.clock} clock"
    )

    print("\n1. diagnostics off — training steps/s")
    cut = stripped_train()
    variants = {
        "probes=None": lambda: timed_run(off, data, None),
        "probes=[]": lambda: timed_run(off, data, []),
    }
    if cut is not None:
        variants["probe calls cut"] = lambda: timed_run(off, data, None, cut)
    else:
        print("   (could not cut the probe call out of loop._train_interval: pattern not found)")
    res = alternate(variants, args.repeats)
    ref = res["probe calls cut" if cut is not None else "probes=None"]

    def rel(r: dict[str, float], key: str) -> str:
        return f"{r[key]:7.0f} ({100 * (r[key] / ref[key] - 1):+6.2f} %)"

    print("   variant          total steps/s       interval-median     best run")
    for name, r in res.items():
        print(f"   {name:16s} {rel(r, 'train')}   {rel(r, 'train_median')}   {rel(r, 'best')}")
    worst = max(abs(r["best"] / ref["best"] - 1) for r in res.values())
    print(
        f"   worst difference vs {'the cut loop' if cut is not None else 'probes=None'} (best "
        "runs) "
        f"{100 * worst:.2f} % (target ≤ 2 %): {'PASS' if worst <= 0.02 else 'FAIL'}"
    )
    step_ns = 1e9 / ref["best"]
    seam = seam_cost_ns(args.steps)
    print(
        f"   the per-step seam (`if step in backward_steps`, empty set) costs {seam:.0f} ns "
        f"= {100 * seam / step_ns:.3f} % of a {step_ns / 1e6:.2f} ms step"
    )

    print("\n2. activations + grad_norms, every evaluation")
    res = alternate(
        {
            "none": lambda: timed_run(off, data, None),
            "act+grad": lambda: timed_run(config, data, P.build_probes(cheap, config)),
        },
        args.repeats,
    )
    base, on = res["none"], res["act+grad"]
    train_over = 1 - on["train_median"] / base["train_median"]
    wall_over = 1 - 1 / (1 + on["probe_share"])  # share of the steps/s the probes' own time takes
    both = 1 - (1 - train_over) * (1 - wall_over)
    print(
        "   training steps/s (probe time excluded, interval medians)  none "
        f"{base['train_median']:7.0f}   "
        f"on {on['train_median']:7.0f}   overhead {100 * train_over:+6.2f} % (target ≤ 10 %): "
        f"{'PASS' if train_over <= 0.10 else 'FAIL'}"
    )
    print(
        f"   best runs: none {base['best']:7.0f}   on {on['best']:7.0f}   "
        f"overhead {100 * (1 - on['best'] / base['best']):+6.2f} %"
    )
    print(
        f"   probe time / training time {100 * on['probe_share']:.2f} %  →  wall-clock steps/s "
        "overhead "
        f"{100 * both:+6.2f} % (target ≤ 10 %): {'PASS' if both <= 0.10 else 'FAIL'}"
    )
    print(
        f"   totals: training+probes steps/s  none {base['with_probes']:7.0f}   on "
        f"{on['with_probes']:7.0f} "
        f"({100 * (1 - on['with_probes'] / base['with_probes']):+.2f} %)"
    )
    print(
        f"   whole run_variant time (eval, setup included)  none {base['wall']:.3f} s   "
        f"on {on['wall']:.3f} s   ({100 * (on['wall'] / base['wall'] - 1):+.2f} %)"
    )

    print("\n3. one probe (default options) on this model")
    cost = probe_cost(config, data, args.repeats)
    lp = config["diagnostics"]["landscape"]
    for name, what in (
        ("ics", f"{len(config['model']['hidden'])} blocks"),
        ("landscape", f"{lp['points']} points over [{lp['eta_min']}, {lp['eta_max']}]×lr"),
    ):
        print(
            f"   {name:10s} {cost[name]:7.2f} ms  ≈ {cost[name] / cost['step']:5.1f} training "
            "steps "
            f"({what}); every 100 steps: +{cost[name] / cost['step']:.1f} %"
        )
    print(f"   (one training step: {cost['step']:.3f} ms)")


if __name__ == "__main__":
    main()
