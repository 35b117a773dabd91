"""Does the default plan fit this machine? Overlap, default vs best wall time, cost model error.

Prints, for the machine it runs on (CPU vendor, model, ATen capability and the load average
first, since other processes on a shared machine change every figure):

1. The measured overlap of busy processes: how many times as fast N = the usable cores run
   side by side as one alone (``normbench.execute.machine``), measured afresh, and the value
   the planner has cached.
2. Wall time of real ``python -m normbench run`` subprocesses for the quickstart, the placement
   suite and a 1-D CNN suite: the default plan (no option) against ``--workers 1`` and
   ``--workers 2``, alternated in the same run; the goal is the default within 10 % of the
   best. ``--no-rel-cost`` throughout (it is measured after training, the same for all).
3. The cost model: predicted seconds per task (the pre-flight's timed step × steps, plus
   evaluations) against the measured ones (the results' ``train_seconds + eval_seconds``), for
   a small suite of every registered model kind and a custom model; the goal is within 2×.

    python benchmarks/plan_fit.py [--placement-seeds 1] [--suites quickstart,cnn1d]
                                  [--skip-walls] [--skip-costs] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CNN1D = """\
name: cnn1d
description: A 1-D CNN on MNIST-1D (3 x 32-channel Conv1d, 8k parameters), four norms.
dataset: {name: mnist1d, input_norm: zscore}
model: {kind: cnn, channels: [32, 32, 32], kernel_size: 3}
training: {optimizer: adam, lr: 0.003, batch_size: 100, steps: 300, eval_every: 100, seeds: 2,
           device: cpu}
grid:
  norm: [none, batch, layer, group]
"""

# One small suite per model kind for the cost model; a kind not listed is tried with its
# defaults (``model: {kind: K}``), so a kind registered later is measured too.
KIND_MODELS = {
    "mlp": "{kind: mlp, hidden: [100, 100]}",
    "cnn": "{kind: cnn, channels: [32, 32, 32], kernel_size: 3}",
    "rnn": "{kind: rnn, cell: gru, hidden: 32}",
}
KIND_SUITE = """\
name: cost-{kind}
dataset: {{name: mnist1d, input_norm: zscore}}
model: {model}
training: {{optimizer: adam, lr: 0.003, batch_size: 100, steps: {steps}, eval_every: 50,
           seeds: 1, device: cpu}}
grid:
  norm: [none, batch, layer]
"""
KIND_STEPS = {"rnn": 100}


def machine_line() -> str:
    import torch

    from normbench.arith import cpu_vendor
    from normbench.results.environment import cpu_model

    cpu = cpu_vendor()
    return (
        f"CPU: {cpu['vendor']} family {cpu['family']}, {cpu_model()}, "
        f"{torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def overlap() -> None:
    from normbench.execute.machine import machine, measure_speedup
    from normbench.execute.plan import usable_cores

    cores = usable_cores()
    fresh = measure_speedup(min(cores, 16))
    cached = machine(cores)
    print(
        f"overlap: {min(cores, 16)} busy processes side by side run {fresh:.2f}x as fast as "
        f"one alone (measured now); the planner uses {cached.speedup:.2f}x ({cached.source})"
    )


def timed_run(suite: Path, out: Path, extra: list[str]) -> tuple[float, int]:
    """Wall seconds of one ``normbench run`` and the workers its manifest says it used."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    subprocess.run(
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
            "--no-rel-cost",
            *extra,
        ],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    (run,) = sorted(out.glob("*/*/manifest.json"))
    execution = json.loads(run.read_text())["execution"]
    return wall, 1 if execution["in_process"] else int(execution["workers"])


def walls(name: str, suite: Path, work: Path, overrides: list[str]) -> None:
    configs = {"default": [], "--workers 1": ["--workers", "1"], "--workers 2": ["--workers", "2"]}
    seconds, used = {}, {}
    for label, extra in configs.items():
        out = work / f"{name}-{label.replace(' ', '').replace('-', '')}"
        shutil.rmtree(out, ignore_errors=True)
        seconds[label], used[label] = timed_run(suite, out, [*overrides, *extra])
    best = min(seconds["--workers 1"], seconds["--workers 2"])
    print(
        f"{name:<11} default ({used['default']} worker{'s' * (used['default'] > 1)}) "
        f"{seconds['default']:6.1f} s | --workers 1 {seconds['--workers 1']:6.1f} s | "
        f"--workers 2 {seconds['--workers 2']:6.1f} s | default / best "
        f"{seconds['default'] / best:.2f}  (load {os.getloadavg()[0]:.1f})"
    )


def kind_suites(work: Path) -> list[tuple[str, Path, list[str]]]:
    from normbench.models.catalog import MODELS

    out = []
    for kind in [k for k in MODELS if k != "custom"]:
        model = KIND_MODELS.get(kind, f"{{kind: {kind}}}")
        text = KIND_SUITE.format(kind=kind, model=model, steps=KIND_STEPS.get(kind, 200))
        path = work / f"cost-{kind}.yaml"
        path.write_text(text)
        out.append((kind, path, []))
    custom = ["training.steps=100", "training.seeds=1", "training.eval_every=50"]
    out.append(("custom", ROOT / "examples/resnet-norms.yaml", custom))
    return out


def cost_model(work: Path) -> None:
    from normbench import api
    from normbench.errors import InputError
    from normbench.spec import load_suite

    print("cost model: predicted vs measured seconds per task (one core)")
    for kind, path, overrides in kind_suites(work):
        out = work / f"cost-{kind}-runs"
        shutil.rmtree(out, ignore_errors=True)
        try:
            suite = load_suite(path, overrides)
            predicted = dict(api.plan_run(suite, out, api.make_options()).costs)
            options = api.make_options(workers=1)
            run = api.run_suite(suite, out, command=["bench"], options=options)
        except InputError as exc:  # a kind whose defaults do not fit MNIST-1D: say so
            print(f"  {kind:<7} skipped: {exc}")
            continue
        ratios = []
        for result in sorted((run.run_dir.path / "results").glob("*.json")):
            record = json.loads(result.read_text())
            timing = record["timing"]
            measured = timing["train_seconds"] + timing["eval_seconds"]
            guess = predicted[record["variant_id"]]
            ratios.append(guess / measured)
            print(
                f"  {kind:<7} {record['variant_name']:<34} predicted {guess:6.2f} s, "
                f"measured {measured:6.2f} s, ratio {guess / measured:4.2f}"
            )
        worst = max(ratios, key=lambda r: max(r, 1 / r))
        print(f"  {kind:<7} median ratio {statistics.median(ratios):.2f}, worst {worst:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placement-seeds", type=int, default=5)
    parser.add_argument("--suites", default="quickstart,placement,cnn1d")
    parser.add_argument("--skip-walls", action="store_true")
    parser.add_argument("--skip-costs", action="store_true")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="plan-fit-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    overlap()
    wanted = set(args.suites.split(",")) if not args.skip_walls else set()
    cnn = work / "cnn1d.yaml"
    cnn.write_text(CNN1D)
    if "quickstart" in wanted:
        walls("quickstart", ROOT / "suites/quickstart.yaml", work, [])
    if "placement" in wanted:
        seeds = ["--set", f"training.seeds={args.placement_seeds}"]
        walls(f"placement/{args.placement_seeds}", ROOT / "suites/placement.yaml", work, seeds)
    if "cnn1d" in wanted:
        walls("cnn1d", cnn, work, [])
    if not args.skip_costs:
        cost_model(work)
    print(machine_line())
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
