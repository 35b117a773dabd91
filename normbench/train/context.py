"""What the loop and its probes share: the run's tensors, the probe context, evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from normbench.data.split import IGNORE_INDEX


@dataclass
class Tensors:
    """A data split on the device, plus what the loss needs to know."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classification: bool
    num_outputs: int
    domain_train: torch.Tensor | None = None  # (N,) int64 on the CPU, two-domain data only
    domain_test: torch.Tensor | None = None


@dataclass
class ProbeContext:
    """What diagnostics may look at; handed to every probe call."""

    model: nn.Module
    data: Tensors
    loss_fn: Any
    lr: float
    config: dict[str, Any]
    seed: int
    optimizer: torch.optim.Optimizer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Probe(Protocol):
    """A diagnostic hooked into the loop (see ``normbench.train.probes``)."""

    def backward_steps(self, total_steps: int, eval_every: int) -> set[int]: ...
    def after_backward(
        self, step: int, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor
    ) -> None: ...
    def on_eval(self, step: int, ctx: ProbeContext) -> None: ...
    def result(
        self, ctx: ProbeContext, metrics: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...


def scored(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
    """(correct predictions, labels scored) of logits ``out`` (classes last) against ``y``.

    One label per sample (N,): every label counts. Token labels (N, T): only those that are
    not ``IGNORE_INDEX``, so accuracy is over the scored tokens (and the count is a tensor,
    read without a host sync until the caller needs it).
    """
    hits = out.argmax(-1) == y  # classes last: (N, K), or (N, T, V) for token labels
    if y.dim() == 1:
        return hits.sum(), y.shape[0]
    valid = y != IGNORE_INDEX
    return (hits & valid).sum(), valid.sum()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    classification: bool,
    chunk: int,
) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) over ``x`` in eval mode, in chunks.

    Both are means over the scored labels: one per sample, or each token's label that is not
    ``IGNORE_INDEX`` (the loss of a chunk is weighted by its count, as cross-entropy's mean is).
    """
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    count: torch.Tensor | int = 0
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        out = model(xb).float()
        weight: torch.Tensor | int = xb.shape[0]
        if classification:
            hits, weight = scored(out, yb)
            correct += hits
        total_loss += loss_fn(out, yb) * weight
        count += weight
    model.train(was_training)
    n = float(count)
    loss = float(total_loss) / n
    return loss, (float(correct) / n if classification else None)
