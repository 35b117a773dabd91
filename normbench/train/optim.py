"""Optimizers and learning-rate schedules from a resolved training config."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

# The modules whose weight is a matrix that weight decay shrinks under ``decay: matrices``;
# norms' gains, biases, embeddings and position tables are left alone (as GPT-2 / nanoGPT do).
_DECAYED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def param_groups(model: Any, decay: str, weight_decay: float) -> Any:
    """The parameters, split into decayed / not decayed groups for ``decay: matrices``.

    ``model`` is an ``nn.Module`` (or already a parameter list, kept as it is).
    """
    if not isinstance(model, nn.Module):
        return model
    if decay == "all" or not weight_decay:
        return model.parameters()
    skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    decayed = {
        id(m.weight): m.weight
        for m in model.modules()
        if isinstance(m, _DECAYED) and id(m.weight) not in skip
    }
    rest = [p for p in model.parameters() if id(p) not in decayed]
    return [
        {"params": list(decayed.values()), "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def effective_lr(training: dict[str, Any]) -> float:
    """Base learning rate × multiplier (the ×1/×5/×30 of the BatchNorm paper).

    With ``lr_batch_ref`` set, the linear scaling rule (Goyal et al. 2017, used by Wu & He)
    also multiplies by ``batch_size / lr_batch_ref``.
    """
    lr = float(training["lr"]) * float(training["lr_mult"])
    ref = training.get("lr_batch_ref")
    return lr * training["batch_size"] / ref if ref else lr


def make_optimizer(model: Any, training: dict[str, Any]) -> torch.optim.Optimizer:
    """Build the optimizer named in ``training.optimizer`` with the effective learning rate.

    ``model`` is the module (so ``decay: matrices`` can tell its parameters apart) or a list of
    parameters (decayed alike).
    """
    opt = training["optimizer"]
    lr = effective_lr(training)
    name = opt["name"]
    params = param_groups(model, opt.get("decay", "all"), opt["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=opt["weight_decay"])
    if name == "momentum":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=opt["momentum"],
            nesterov=opt["nesterov"],
            weight_decay=opt["weight_decay"],
        )
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(
        params, lr=lr, betas=tuple(opt["betas"]), eps=opt["eps"], weight_decay=opt["weight_decay"]
    )


def warmup_steps(training: dict[str, Any]) -> int:
    """Steps of linear warm-up: ``warmup_steps``, or ``warmup_fraction`` of the steps."""
    fraction = training.get("warmup_fraction")
    if fraction is not None:
        return round(fraction * training["steps"])
    return int(training.get("warmup_steps") or 0)


def lr_factor(step: int, steps: int, warmup: int, cosine: bool, floor: float) -> float:
    """The learning rate at ``step`` (0-based) as a fraction of the peak.

    Linear warm-up over ``warmup`` steps ((step + 1) / warmup), then constant or a cosine
    from the peak down to ``floor`` × peak at the last step.
    """
    if step < warmup:
        return (step + 1) / warmup
    if not cosine:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_schedule(optimizer: torch.optim.Optimizer, training: dict[str, Any]) -> Any:
    """A per-step schedule, or None for a constant learning rate."""
    warmup, floor = warmup_steps(training), float(training.get("lr_floor") or 0.0)
    cosine = training["lr_schedule"] == "cosine"
    if not warmup and not floor:
        # torch's own cosine: the numbers of runs made before warm-up and floors existed.
        if cosine:
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training["steps"])
        return None
    steps = training["steps"]
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps, warmup, cosine, floor)
    )
