"""Optimizers and learning-rate schedules from a resolved training config."""

from __future__ import annotations

from typing import Any

import torch


def effective_lr(training: dict[str, Any]) -> float:
    """Base learning rate × multiplier (the ×1/×5/×30 of the BatchNorm paper).

    With ``lr_batch_ref`` set, the linear scaling rule (Goyal et al. 2017, used by Wu & He)
    also multiplies by ``batch_size / lr_batch_ref``.
    """
    lr = float(training["lr"]) * float(training["lr_mult"])
    ref = training.get("lr_batch_ref")
    return lr * training["batch_size"] / ref if ref else lr


def make_optimizer(params: Any, training: dict[str, Any]) -> torch.optim.Optimizer:
    """Build the optimizer named in ``training.optimizer`` with the effective learning rate."""
    opt = training["optimizer"]
    lr = effective_lr(training)
    name = opt["name"]
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


def make_schedule(optimizer: torch.optim.Optimizer, training: dict[str, Any]) -> Any:
    """A per-step schedule, or None for a constant learning rate."""
    if training["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training["steps"])
    return None
