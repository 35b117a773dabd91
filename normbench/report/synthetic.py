"""Synthetic run directories with realistic curves, for report tests, benchmarks and demos."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from normbench import __version__
from normbench.results.store import RunDir, atomic_write_json

# Per norm: (best accuracy, steps to converge at lr_mult 1, largest lr_mult that trains, ms/step).
# Loosely shaped like Ioffe & Szegedy: normalised nets train faster and tolerate larger lr.
NORM_TRAITS: dict[str, tuple[float, float, float, float]] = {
    "none": (0.925, 900.0, 5.0, 1.00),
    "batch": (0.955, 300.0, 60.0, 1.35),
    "layer": (0.945, 420.0, 40.0, 1.25),
    "group": (0.942, 450.0, 40.0, 1.40),
    "rms": (0.944, 430.0, 40.0, 1.15),
    "weight": (0.925, 700.0, 15.0, 1.10),
    "instance": (0.930, 600.0, 30.0, 1.30),
    "batch_renorm": (0.952, 320.0, 60.0, 1.45),
    "power": (0.948, 350.0, 50.0, 1.50),
}


def _vid(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:10]


def _traits(norm: str) -> tuple[float, float, float, float]:
    if norm in NORM_TRAITS:
        return NORM_TRAITS[norm]
    h = int(_vid(norm), 16)
    return 0.92 + (h % 30) / 1000, 300.0 + h % 700, 10.0 + h % 50, 1.0 + (h % 60) / 100


def _record(
    vid: str,
    name: str,
    params: dict[str, Any],
    config: dict[str, Any],
    seed: int,
    steps: int,
    eval_every: int,
    targets: dict[str, float],
    diagnostics: Sequence[str],
    fail: bool,
) -> dict[str, Any]:
    """One seed's result record following the schema in ARCHITECTURE.md."""
    rng = np.random.default_rng([seed, int(vid, 16) % (1 << 32)])
    norm, placement, lr = (
        str(params.get("norm", "none")),
        params.get("placement", "pre"),
        float(params.get("lr_mult", 1)),
    )
    acc_max, tau, lr_max, ms = _traits(norm)
    acc_max -= 0.004 * (placement == "post") + 0.01 * max(0.0, math.log10(lr / 10))
    tau = tau / lr**0.7 * (1.1 if placement == "post" else 1.0)
    step = np.arange(0, steps + 1, eval_every)
    diverge_at = None
    if lr > lr_max or (lr > 0.6 * lr_max and rng.random() < 0.4):
        diverge_at = int(step[min(len(step) - 1, 2 + int(rng.integers(0, 6)))])
    acc = acc_max - (acc_max - 0.1) * np.exp(-step / tau) + rng.normal(0, 0.004, step.size)
    test_loss = -np.log(np.clip(acc, 0.05, 0.999)) * 1.3 + rng.normal(0, 0.01, step.size)
    train_loss = test_loss * 0.85 + rng.normal(0, 0.01, step.size)
    secs = np.cumsum(np.full(step.size, eval_every * ms / 1000.0) * rng.normal(1, 0.03, step.size))
    secs[0] = 0.0
    status, error, keep = "ok", None, step.size
    if diverge_at is not None:
        keep = int(np.searchsorted(step, diverge_at)) + 1
        status, error = "diverged", f"loss became non-finite at step {diverge_at}"
        acc[keep - 1], test_loss[keep - 1], train_loss[keep - 1] = 0.1, math.nan, math.nan
    if fail:
        return {
            "schema_version": 1,
            "variant_id": vid,
            "variant_name": name,
            "seed": seed,
            "params": params,
            "config": config,
            "status": "failed",
            "error": "RuntimeError: CUDA out of memory",
            "diverged_at_step": None,
            "curves": {},
            "metrics": dict.fromkeys(
                (
                    "final_test_acc",
                    "best_test_acc",
                    "final_test_loss",
                    "final_train_loss",
                    "steps_to_target",
                    "seconds_to_target",
                )
            ),
            "targets": {},
            "timing": {},
            "diagnostics": {},
        }
    step, acc, test_loss, train_loss, secs = (
        a[:keep] for a in (step, acc, test_loss, train_loss, secs)
    )
    curves = {
        "step": step.tolist(),
        "train_loss": train_loss.tolist(),
        "test_loss": test_loss.tolist(),
        "test_acc": acc.tolist(),
        "train_seconds": secs.tolist(),
    }
    reached = {}
    for key, thr in targets.items():
        c = curves[key]
        i = next((i for i, v in enumerate(c) if (v >= thr if "acc" in key else v <= thr)), None)
        reached[key] = {
            "threshold": thr,
            "step": None if i is None else int(step[i]),
            "seconds": None if i is None else float(secs[i]),
        }
    first = reached[next(iter(targets))] if targets else {"step": None, "seconds": None}
    train_s = float(secs[-1])
    metrics = {
        "final_test_acc": float(acc[-1]),
        "best_test_acc": float(acc.max()),
        "final_test_loss": None if status != "ok" else float(test_loss[-1]),
        "final_train_loss": None if status != "ok" else float(train_loss[-1]),
        "steps_to_target": first["step"],
        "seconds_to_target": first["seconds"],
        "samples_per_sec": 60 * step[-1] / train_s if train_s > 0 else None,
        "ms_per_step": ms * rng.normal(1, 0.02),
        "train_seconds": train_s,
        "num_params": 25_000,
    }
    diag: dict[str, Any] = {}
    drift = 0.0 if norm != "none" else 1.5
    if "activations" in diagnostics:
        med = drift * (1 - np.exp(-step / 800)) + rng.normal(0, 0.02, step.size)
        spread = (0.9 if norm != "none" else 2.0) + 0.3 * np.exp(-step / 500)
        diag["activations"] = {
            "step": step.tolist(),
            "layer": -1,
            "percentiles": [15, 50, 85],
            "values": np.stack([med - spread, med, med + spread], 1).tolist(),
        }
    if "grad_norms" in diagnostics:
        layers = ["0.weight", "1.weight", "2.weight"]
        base = np.exp(-step / (3 * tau))[:, None] * np.array([[1.0, 0.6, 0.3]]) + 0.05
        diag["grad_norms"] = {
            "step": step.tolist(),
            "layers": layers,
            "values": (base * rng.lognormal(0, 0.1, base.shape)).tolist(),
        }
    if "ics" in diagnostics:
        l2 = (0.2 if norm != "none" else 0.5) + rng.random((step.size, 2)) * 0.1
        diag["ics"] = {
            "step": step.tolist(),
            "layers": [0, 1],
            "l2": l2.tolist(),
            "cosine": (1 - l2 / 2).tolist(),
        }
    if "landscape" in diagnostics:
        width = (1.0 if norm == "none" else 0.3) * np.exp(-step / 1500) + 0.05
        diag["landscape"] = {
            "step": step.tolist(),
            "loss_range": np.stack([test_loss - width, test_loss + width], 1).tolist(),
            "grad_pred": np.stack([width, 3 * width], 1).tolist(),
            "beta_smoothness": (5 * width).tolist(),
        }
    return {
        "schema_version": 1,
        "variant_id": vid,
        "variant_name": name,
        "seed": seed,
        "params": params,
        "config": config,
        "status": status,
        "error": error,
        "diverged_at_step": diverge_at,
        "curves": curves,
        "metrics": metrics,
        "targets": reached,
        "timing": {
            "train_seconds": train_s,
            "eval_seconds": 0.1 * train_s,
            "steps": int(step[-1]),
            "setup_seconds": 0.1,
        },
        "diagnostics": diag,
        "started": "2026-11-25T08:00:00Z",
        "finished": "2026-11-25T08:01:00Z",
    }


def make_run(
    out: Path,
    *,
    name: str = "synthetic",
    norms: Sequence[str] = ("none", "batch", "layer"),
    placements: Sequence[str] = ("pre", "post"),
    lr_mults: Sequence[float] = (1, 5, 30),
    seeds: int = 3,
    steps: int = 3000,
    eval_every: int = 100,
    targets: dict[str, float] | None = None,
    diagnostics: Sequence[str] = ("activations", "grad_norms"),
    fail: Sequence[tuple[str, int]] = (),
    exclude_none_post: bool = True,
) -> Path:
    """Write a complete run directory (manifest, suite.yaml, resolved.json, results) and return it.

    ``fail`` lists (variant name, seed) pairs recorded as crashed.
    """
    targets = {"test_acc": 0.9, "test_loss": 0.2} if targets is None else targets
    run = RunDir(Path(out))
    run.results_dir.mkdir(parents=True, exist_ok=True)
    grid = {"norm": list(norms), "placement": list(placements), "lr_mult": list(lr_mults)}
    variants = []
    for norm in norms:
        for placement in placements:
            if exclude_none_post and norm == "none" and placement == "post" and len(placements) > 1:
                continue
            for lr in lr_mults:
                params = {"norm": norm, "placement": placement, "lr_mult": lr}
                vname = ",".join(f"{k}={v}" for k, v in params.items())
                config = {
                    "dataset": {"name": "mnist1d"},
                    "model": {"kind": "mlp", "norm": {"kind": norm}, "placement": placement},
                    "training": {
                        "lr": 0.01,
                        "lr_mult": lr,
                        "steps": steps,
                        "eval_every": eval_every,
                    },
                    "targets": targets,
                    "diagnostics": {d: {} for d in diagnostics},
                }
                variants.append(
                    {
                        "id": _vid(vname),
                        "name": vname,
                        "params": params,
                        "config": config,
                        "seeds": list(range(seeds)),
                    }
                )
    for v in variants:
        for seed in range(seeds):
            run.write_result(
                _record(
                    v["id"],
                    v["name"],
                    v["params"],
                    v["config"],
                    seed,
                    steps,
                    eval_every,
                    targets,
                    diagnostics,
                    (v["name"], seed) in set(fail),
                )
            )
    run.write_json(
        "resolved.json",
        {
            "suite": {
                "name": name,
                "description": "synthetic curves for report tests",
                "grid": list(grid),
                "targets": targets,
                "gates": [],
            },
            "seeds": list(range(seeds)),
            "variants": variants,
        },
    )
    (run.path / "suite.yaml").write_text(f"name: {name}\n# synthetic\n", encoding="utf-8")
    run.write_manifest(
        {
            "suite_name": name,
            "schema_version": 1,
            "normbench_version": __version__,
            "command": f"normbench run suites/{name}.yaml",
            "started": "2026-11-25T08:00:00Z",
            "finished": "2026-11-25T08:10:00Z",
            "status": "complete",
            "environment": {
                "python": "3.11.9",
                "torch": "2.5.1",
                "device": "cpu",
                "cuda": None,
                "cpu": "synthetic CPU",
                "threads": 2,
                "platform": "Linux",
                "git_commit": "0000000",
            },
        }
    )
    return run.path


def write_raw(path: Path, obj: Any) -> None:
    """Write JSON as is (tests use it for hand-made records)."""
    atomic_write_json(path, obj)
