"""Transformer loop: normbench's training steps/s vs a hand-written nanoGPT-style loop.

The same model on both sides — token embedding + learned positions, ``--layers`` Pre-LN blocks
of causal self-attention (``F.scaled_dot_product_attention``) and a GELU MLP, a final
LayerNorm, a linear head — trained as a character-level language model on random tokens (the
arithmetic per step does not depend on the text) with AdamW (β₂ 0.95, weight decay 0.1 on the
matrices only) and gradient clipping at 1.0, batch 32 × context 64, in one process on the same
thread count. Runs alternate (plain, normbench, …) so drifts in machine load hit both; medians
are compared. Target: normbench ≥ 0.97 × plain on 1 thread. ``--norms`` repeats the normbench
side with other norms (rms, dyt, …) to show their step cost next to the LayerNorm loop.

    python benchmarks/transformer_loop.py [--steps 300] [--repeats 5] [--threads 1]
                                          [--d-model 64] [--layers 2] [--norms rms]
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

from normbench.models.catalog import resolve_model
from normbench.norms.catalog import NORMS, resolve_norm
from normbench.train.loop import run_variant

VOCAB, CONTEXT, BATCH, HEADS = 96, 64, 32, 4


def make_data(n: int = 4000) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, (n, CONTEXT + 1))
    x, y = tokens[:, :-1].astype(np.float32), tokens[:, 1:].astype(np.int64)
    return SimpleNamespace(
        x_train=x, y_train=y, x_test=x[:256], y_test=y[:256], task="classification",
        num_outputs=VOCAB, layout="tokens",
    )  # fmt: skip


def config(norm: str, steps: int, d_model: int, layers: int) -> dict:
    model, _ = resolve_model(
        {"kind": "transformer", "d_model": d_model, "layers": layers, "heads": HEADS}, "tokens"
    )
    model["norm"] = resolve_norm(norm)
    return {
        "dataset": {"name": "bench"},
        "model": model,
        "training": {
            "optimizer": {
                "name": "adamw", "momentum": 0.9, "nesterov": False, "weight_decay": 0.1,
                "betas": (0.9, 0.95), "eps": 1e-8, "decay": "matrices",
            },
            "lr": 3e-4, "lr_mult": 1.0, "lr_schedule": "constant", "batch_size": BATCH,
            "steps": steps, "eval_every": steps, "eval_batch_size": 256, "probe_size": 256,
            "device": "cpu", "threads": None, "grad_clip": 1.0, "precision": "fp32",
            "compile": False, "channels_last": False,
        },
        "targets": {},
        "diagnostics": {},
    }  # fmt: skip


class Block(nn.Module):
    """nanoGPT's block: x + attn(ln_1(x)), x + mlp(ln_2(x))."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.gelu, self.mlp_proj = nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(n, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(n, t, c))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, d: int, layers: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Parameter(torch.zeros(1, CONTEXT, d))
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def plain_loop(data: SimpleNamespace, steps: int, d_model: int, layers: int) -> float:
    """What a user would write by hand (nanoGPT's loop); returns training steps per second."""
    torch.manual_seed(0)
    model = GPT(d_model, layers)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("w")]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("w")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95),
    )  # fmt: skip
    x, y = torch.from_numpy(data.x_train).long(), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (BATCH,), generator=gen)
        logits = model(x[idx])
        loss = F.cross_entropy(logits.view(-1, VOCAB), y[idx].view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss.item()
    return steps / (time.perf_counter() - start)


def normbench_loop(data: SimpleNamespace, norm: str, steps: int, d: int, layers: int) -> float:
    record = run_variant(config(norm, steps, d, layers), 0, data)
    assert record["status"] == "ok", record["error"]
    return steps / record["timing"]["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--norms", nargs="*", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    d, layers = args.d_model, args.layers
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, steps {args.steps}, "
        f"repeats {args.repeats}, d_model {d}, layers {layers}, batch {BATCH} × {CONTEXT}"
    )
    data = make_data()
    plain_loop(data, 30, d, layers), normbench_loop(data, "layer", 30, d, layers)  # warm-up
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(data, args.steps, d, layers))
        ours.append(normbench_loop(data, "layer", args.steps, d, layers))
    p, o = statistics.median(plain), statistics.median(ours)
    runs = " ".join(f"{b / a:.2f}" for a, b in zip(plain, ours, strict=True))
    print(f"plain {p:7.1f} steps/s   normbench (layer) {o:7.1f} steps/s   ratio {o / p:.3f}")
    print(f"  per-round ratios: {runs}")
    print(f"seconds per 1,000 steps: plain {1000 / p:.1f}, normbench {1000 / o:.1f}")
    for norm in args.norms:
        if norm not in NORMS:
            raise SystemExit(f"unknown norm {norm!r}")
        rates = [normbench_loop(data, norm, args.steps, d, layers) for _ in range(args.repeats)]
        r = statistics.median(rates)
        print(f"normbench ({norm}) {r:7.1f} steps/s   ×{o / r:.3f} the layer step's time")
    print(f"ratio {o / p:.3f} (target ≥ 0.97): {'PASS' if o / p >= 0.97 else 'FAIL'}")


if __name__ == "__main__":
    main()
