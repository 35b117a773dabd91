"""The CUDA paths in one prepared script: run it on a GPU machine, paste what it prints.

Exercises, on ``--device`` (default ``cuda``), each path that only a GPU can check:

1. the training loop without a per-step host sync (loss accumulated on the device, checked once
   per eval interval): Ioffe's MLP, steps/s vs a hand-written loop that syncs every step;
2. autocast precision: ``bf16`` and ``fp16`` (grad scaler) runs finish ``ok``, steps/s;
3. ``compile: true``: compile seconds and steps/s vs eager;
4. ``normbench bench`` timed with CUDA events (a subprocess, JSON parsed);
5. ``normbench run --devices cuda:0,cuda:0`` (two workers sharing one GPU), records' device;
6. batched seeds (``run_batched``) vs separate runs: model-steps/s for 5 and 16 seeds.

Each section prints its figures or ``FAILED: <error>`` and the script goes on; exit status 1
if any section failed. Without a CUDA device it prints one line and exits 0, so it is safe to
run anywhere (CI, the CPU dev machine).

    python benchmarks/gpu_paths.py [--device cuda] [--steps 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import config, make_data

from normbench.train.batched import run_batched
from normbench.train.loop import run_variant

TINY_SUITE = """\
name: gpu-devices
dataset: {name: synthetic-blobs, num_train: 2048, num_test: 512, features: 40}
model: {kind: mlp, hidden: [100, 100, 100], norm: batch}
training: {steps: 200, eval_every: 100, seeds: 2, device: cuda}
grid:
  norm: [none, batch]
"""


def gpu_config(norm: str, steps: int, device: str, **training) -> dict:
    cfg = config(norm, steps)
    cfg["training"].update(
        device=device, eval_every=max(1, steps // 4), profile_steps=5, **training
    )
    return cfg


def steps_per_sec(record: dict) -> float:
    assert record["status"] == "ok", record["error"]
    return record["timing"]["steps"] / record["timing"]["train_seconds"]


def hand_loop(data, norm: str, steps: int, device: str) -> float:
    """A hand-written loop that reads the loss every step (a host sync per step)."""
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    prev = data.x_train.shape[1]
    for _ in range(3):
        layers += [nn.Linear(prev, 100, bias=norm == "none")]
        layers += [nn.BatchNorm1d(100)] if norm == "batch" else []
        layers.append(nn.Sigmoid())
        prev = 100
    model = nn.Sequential(*layers, nn.Linear(prev, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.from_numpy(data.x_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (60,), device=device)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def section_loop(data, args) -> None:
    for norm in ("none", "batch"):
        run_variant(gpu_config(norm, 100, args.device), 0, data)  # warm-up (kernels, allocator)
        ours = steps_per_sec(run_variant(gpu_config(norm, args.steps, args.device), 0, data))
        hand = hand_loop(data, norm, args.steps, args.device)
        print(
            f"  norm={norm:5s} normbench {ours:8.0f} steps/s   hand loop (sync/step) "
            f"{hand:8.0f} steps/s   ratio {ours / hand:.2f}"
        )


def section_precision(data, args) -> None:
    for precision in ("fp32", "bf16", "fp16"):
        record = run_variant(
            gpu_config("batch", args.steps, args.device, precision=precision), 0, data
        )
        print(
            f"  precision={precision}: {steps_per_sec(record):8.0f} steps/s, final test acc "
            f"{record['metrics']['final_test_acc']:.3f}"
        )


def section_compile(data, args) -> None:
    eager = run_variant(gpu_config("batch", args.steps, args.device), 0, data)
    compiled = run_variant(gpu_config("batch", args.steps, args.device, compile=True), 0, data)
    print(
        f"  eager {steps_per_sec(eager):8.0f} steps/s   compiled {steps_per_sec(compiled):8.0f} "
        f"steps/s   compile {compiled['timing'].get('compile_seconds', float('nan')):.1f} s   "
        "|Δ final acc| "
        f"{abs(eager['metrics']['final_test_acc'] - compiled['metrics']['final_test_acc']):.4f}"
    )


def section_bench(data, args) -> None:
    cmd = [
        sys.executable,
        "-m",
        "normbench",
        "bench",
        "batch",
        "layer",
        "rms",
        "--device",
        args.device,
        "--shape",
        "256x1024",
        "--dtype",
        "float32",
        "--dtype",
        "bfloat16",
        "--min-time",
        "0.3",
        "--format",
        "json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)
    rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
    for row in rows[:12]:
        print(
            "  " + ", ".join(f"{k}={v}" for k, v in row.items() if not isinstance(v, dict | list))
        )


def section_devices(data, args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.yaml"
        suite.write_text(TINY_SUITE.replace("device: cuda", f"device: {args.device}"))
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "normbench",
            "run",
            str(suite),
            "--out",
            tmp,
            "--no-report",
            "--quiet",
            "--devices",
            f"{args.device},{args.device}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        assert proc.returncode == 0, proc.stderr[-2000:]
        records = [
            json.loads(p.read_text()) for p in Path(tmp).glob("gpu-devices/*/results/*.json")
        ]
        devices = sorted({r["device"] for r in records})
        statuses = sorted({r["status"] for r in records})
        print(
            f"  --devices {args.device},{args.device}: {len(records)} records, devices {devices}, "
            f"statuses {statuses}, wall {wall:.1f} s"
        )


def section_batched(data, args) -> None:
    for norm in ("none", "batch"):
        cfg = gpu_config(norm, args.steps, args.device, profile_steps=0)
        run_batched(gpu_config(norm, 50, args.device, profile_steps=0), [0, 1], data)  # warm-up
        for n in (5, 16):
            seeds = list(range(n))
            sep = [run_variant(cfg, s, data) for s in seeds]
            sep_rate = sum(r["timing"]["steps"] for r in sep) / sum(
                r["timing"]["train_seconds"] for r in sep
            )
            bat = run_batched(cfg, seeds, data)
            assert "batch_seeds_fallback" not in bat[0]["timing"], bat[0]["timing"]
            bat_rate = (
                sum(r["timing"]["steps"] for r in bat)
                / bat[0]["timing"]["batch_seeds"]["group_train_seconds"]
            )
            diff = max(
                abs(a["metrics"]["final_test_acc"] - b["metrics"]["final_test_acc"])
                for a, b in zip(sep, bat, strict=True)
            )
            print(
                f"  norm={norm:5s} seeds={n:2d}  separate {sep_rate:8.0f} model-steps/s   batched "
                f"{bat_rate:8.0f}   ratio {bat_rate / sep_rate:.1f}   max |Δ final acc| {diff:.4f}"
            )


SECTIONS = [
    ("loop without per-step sync", section_loop),
    ("autocast precision", section_precision),
    ("torch.compile", section_compile),
    ("normbench bench (CUDA events)", section_bench),
    ("run --devices", section_devices),
    ("batched seeds", section_batched),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 steps per run")
    args = parser.parse_args()
    if args.quick:
        args.steps = 300
    if not torch.cuda.is_available():
        print("gpu_paths: no CUDA device here (torch.cuda.is_available() is False); skipped")
        return
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.get_device_name(torch.device(args.device))}, steps {args.steps}"
    )
    data = make_data()
    failed = 0
    for title, section in SECTIONS:
        print(f"[{title}]")
        t0 = time.perf_counter()
        try:
            section(data, args)
        except Exception as exc:  # report and go on: one broken path must not hide the others
            failed += 1
            print(f"  FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3, file=sys.stdout)
        print(f"  ({time.perf_counter() - t0:.1f} s)")
    print(f"{len(SECTIONS) - failed} of {len(SECTIONS)} sections ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
