"""Batched seeds: the seeds of one variant trained together as one stacked model.

A tiny MLP step leaves most of a CPU core (and nearly all of a GPU) idle in kernel launches,
so the S member models are stacked (``torch.func.stack_module_state``) and one ``vmap`` of
``functional_call`` runs all of them per step: S small matmuls become one batched matmul.
Each member is exactly what a separate run of its seed would be, up to float rounding:

- its initialisation: built after ``torch.manual_seed(seed)``, as ``run_variant`` does;
- its batch order: its own permutation, drawn from its own seeded generator;
- its batch-norm statistics: buffers are stacked too and updated in place per member;
- its optimizer state: every supported optimizer is element-wise, so one optimizer over the
  stacked tensors steps each member's slice exactly as its own optimizer would; the sum of the
  members' losses has each member's own loss gradient in its slice (the others add zeros).

A member whose loss turns non-finite is recorded ``diverged`` at that step; its NaNs stay in
its own slice, so the others train on. Each member ends as a normal per-seed record. The
matmuls are batched, so sums are rounded in another order than a separate run's: results
agree within float tolerance, not bit for bit (bit-identical from one batched run to the next).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from normbench.models import build
from normbench.train.context import scored
from normbench.train.device import resolve_device, synchronize
from normbench.train.loop import (
    CURVE_KEYS,
    breakdown_metrics,
    loss_function,
    new_record,
    run_variant,
    summarize,
    to_tensors,
)
from normbench.train.optim import make_optimizer, make_schedule
from normbench.train.timing import (
    median_iqr,
    model_memory,
    peak_memory_mb,
    process_rss_mb,
    step_breakdown,
)
from normbench.usercode import error_text, seed_everything


class GroupedMLP:
    """The stacked MLP's forward written as grouped matmuls, for the common case.

    ``vmap`` over ``functional_call`` re-dispatches every op through its batching rules; on a
    tiny MLP that costs about as much as the arithmetic. Here each Linear of the S members is
    one ``baddbmm`` over (S, N, in) and each batch norm one ``F.batch_norm`` over the members'
    channels laid side by side (N, S·C) — per member and channel the same mean and variance
    over the batch, the same running-statistics update. Only plain MLPs qualify (see
    ``supports``); every other model keeps the vmap path.
    """

    def __init__(self, template: nn.Module) -> None:
        self.layers: list[tuple[str, bool, Any, _BatchNorm | None, str, bool]] = []
        for i, block in enumerate(template.blocks):
            norm = None if block.skip_norm else block.norm
            self.layers.append(
                (
                    f"blocks.{i}.layer",
                    block.layer.bias is not None,
                    block.act,
                    norm,
                    f"blocks.{i}.norm",
                    block.pre,
                )
            )

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Plain Linear blocks with no norm or a tracking batch norm, no dropout or residual."""
        from normbench.models.mlp import MLP

        if type(model) is not MLP or model.residual:
            return False
        for block in model.blocks:
            if type(block.layer) is not nn.Linear or block.drop is not None:
                return False
            norm = block.norm
            if block.skip_norm:
                continue
            if not isinstance(norm, _BatchNorm) or norm.momentum is None:
                return False
            if not norm.track_running_stats or norm.affine != (norm.weight is not None):
                return False
        return True

    @staticmethod
    def _linear(p: dict, name: str, bias: bool, x: torch.Tensor) -> torch.Tensor:
        w = p[f"{name}.weight"].transpose(1, 2)
        if x.dim() == 2:  # the same inputs for every member (evaluation on the test split)
            y = torch.matmul(x, w)
            return y + p[f"{name}.bias"].unsqueeze(1) if bias else y
        if bias:
            return torch.baddbmm(p[f"{name}.bias"].unsqueeze(1), x, w)
        return torch.bmm(x, w)

    @staticmethod
    def _batch_norm(
        p: dict, b: dict, name: str, norm: _BatchNorm, x: torch.Tensor, training: bool
    ) -> torch.Tensor:
        S, N, C = x.shape
        flat = x.transpose(0, 1).reshape(N, S * C)
        weight = p[f"{name}.weight"].view(-1) if norm.affine else None
        bias = p[f"{name}.bias"].view(-1) if norm.affine else None
        # Views of the stacked buffers: the in-place running update lands in each member's row.
        mean, var = b[f"{name}.running_mean"].view(-1), b[f"{name}.running_var"].view(-1)
        if training:
            b[f"{name}.num_batches_tracked"].add_(1)
        y = F.batch_norm(flat, mean, var, weight, bias, training, norm.momentum, norm.eps)
        return y.view(N, S, C).transpose(0, 1)

    def __call__(
        self, p: dict, b: dict, x: torch.Tensor, training: bool, shared: bool
    ) -> torch.Tensor:
        """Outputs (S, N, K) for inputs (S, N, …) or, ``shared`` by all members, (N, …)."""
        start = 1 if shared else 2  # flatten each sample, as MLP.forward does
        if x.dim() > start + 1:
            x = x.flatten(start)
        for name, bias, act, norm, norm_name, pre in self.layers:
            x = self._linear(p, name, bias, x)
            if norm is None:
                x = act(x)
            elif pre:
                x = act(self._batch_norm(p, b, norm_name, norm, x, training))
            else:
                x = self._batch_norm(p, b, norm_name, norm, act(x), training)
        return self._linear(p, "head", True, x)


class Stack:
    """S member models as stacked parameters and buffers, with vmapped train/eval functions."""

    def __init__(self, members: list[nn.Module], loss_fn: Any, classification: bool) -> None:
        params, buffers = stack_module_state(members)
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        # A stateless copy on the meta device: functional_call only needs its structure and
        # its train/eval flags, the tensors come from the stacks.
        self.base = copy.deepcopy(members[0]).to("meta")
        self.size = len(members)
        self.classification = classification

        def train_loss(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return loss_fn(functional_call(self.base, (p, b), (xb,)).float(), yb)

        def eval_sums(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            # (loss sum, correct, labels scored): token labels that are IGNORE_INDEX do not count.
            out = functional_call(self.base, (p, b), (xb,)).float()
            correct, count = scored(out, yb) if classification else (None, xb.shape[0])
            loss = loss_fn(out, yb) * count
            correct = correct.float() if correct is not None else loss * 0
            scored_n = (
                count.float() if isinstance(count, torch.Tensor) else torch.full_like(loss, count)
            )
            return torch.stack((loss, correct, scored_n))

        self.train_losses = vmap(train_loss)
        self.eval_shared = vmap(eval_sums, in_dims=(0, 0, None, None))  # same data, all members
        self.eval_own = vmap(eval_sums)  # each member its own data (its probe subset)
        if GroupedMLP.supports(members[0]) and classification and loss_fn is F.cross_entropy:
            self._use_grouped(GroupedMLP(members[0]))

    def _use_grouped(self, grouped: GroupedMLP) -> None:
        """Replace the vmapped functions by grouped matmuls (same results up to rounding)."""

        def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # Per member: the mean over its batch, as F.cross_entropy(out[k], y[k]) gives.
            S, N, K = out.shape
            flat = F.cross_entropy(out.reshape(S * N, K), y.reshape(S * N), reduction="none")
            return flat.view(S, N).mean(1)

        def train_losses(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return cross_entropy(grouped(p, b, xb, training=True, shared=False), yb)

        def eval_sums(shared: bool) -> Any:
            def sums(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
                out = grouped(p, b, xb, training=False, shared=shared)
                if shared:
                    yb = yb.expand(out.shape[0], -1)
                loss = cross_entropy(out, yb) * out.shape[1]
                correct = (out.argmax(2) == yb).sum(1).float()
                return torch.stack((loss, correct, torch.full_like(loss, out.shape[1])), dim=1)

            return sums

        self.train_losses = train_losses
        self.eval_shared, self.eval_own = eval_sums(True), eval_sums(False)

    def member(self, k: int, template: nn.Module) -> nn.Module:
        """Member ``k`` as an ordinary module (a copy of ``template`` with its tensors)."""
        model = copy.deepcopy(template)
        state = {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, chunk: int, own: bool
    ) -> list[tuple[float, float | None]]:
        """Per member (loss, accuracy) over ``x`` — shared (N, …) or own (S, N, …)."""
        self.base.eval()
        total = torch.zeros(self.size, 3, device=x.device)
        n = x.shape[1] if own else x.shape[0]
        for start in range(0, n, chunk):
            if own:
                part = self.eval_own(
                    self.params,
                    self.buffers,
                    x[:, start : start + chunk],
                    y[:, start : start + chunk],
                )
            else:
                part = self.eval_shared(
                    self.params, self.buffers, x[start : start + chunk], y[start : start + chunk]
                )
            total += part
        self.base.train()
        values = total.tolist()  # the counts are whole numbers below 2**24: exact in float32
        return [
            (loss / count, (correct / count if self.classification else None))
            for loss, correct, count in values
        ]


def run_batched(
    config: dict[str, Any],
    seeds: list[int],
    split: Any,
    meta: dict[str, Any] | None = None,
    on_progress: Any = None,
) -> list[dict[str, Any]]:
    """Train ``seeds`` of one resolved variant together; one record per seed, in order.

    If the stacked model cannot be set up or trained at all (an exception, not a divergence),
    every seed is trained separately instead, so a failure stays that seed's own.
    """
    try:
        if len(seeds) == 1:  # vmap over one member takes other kernels: pair it with itself
            return _run_batched(config, seeds * 2, split, meta, on_progress)[:1]
        return _run_batched(config, seeds, split, meta, on_progress)
    except Exception as exc:  # the separate path records any real error per seed
        records = [run_variant(config, s, split, on_progress=on_progress, meta=meta) for s in seeds]
        for record in records:  # say why this variant did not run batched
            record["timing"]["batch_seeds_fallback"] = f"{error_text(exc)}"
        return records


@dataclass
class Group:
    """The S members being trained together and everything their steps share."""

    config: dict[str, Any]
    seeds: list[int]
    device: torch.device
    data: Any
    members: list[nn.Module]
    stack: Stack
    optimizer: Any
    schedule: Any
    loss_fn: Any
    num_params: int
    setup_seconds: float
    gens: list[torch.Generator]  # each member's own batch order
    x_probe: torch.Tensor  # (S, probe_size, …): each member's own training-probe subset
    y_probe: torch.Tensor
    records: list[dict[str, Any]]
    curves: list[dict[str, list]]
    alive: list[bool]
    steps_done: list[int]
    share: int  # distinct seeds: a lone seed trains paired with its copy and costs the group
    group_seconds: float = 0.0
    interval_ms: list[float] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.seeds)

    def permutations(self) -> torch.Tensor:
        """A new epoch's batch order for every member (same n, same batch: one epoch for all)."""
        n = self.data.x_train.shape[0]
        return torch.stack([torch.randperm(n, generator=g) for g in self.gens]).to(self.device)

    def diverged(self, k: int, step: int) -> None:
        """Member ``k``'s loss turned non-finite at ``step``: it stops, the others train on."""
        self.alive[k] = False
        self.steps_done[k] = step
        self.records[k].update(
            status="diverged",
            diverged_at_step=step,
            error=f"training loss became non-finite at step {step}",
        )


def _set_up(
    config: dict[str, Any], seeds: list[int], split: Any, meta: dict[str, Any] | None
) -> Group:
    """Build every member as a separate run of its seed would, then stack them."""
    training = config["training"]
    t_setup = time.perf_counter()
    device = resolve_device(training["device"])
    data = to_tensors(split, device)
    members = []
    for seed in seeds:  # the very initialisation a separate run of this seed gets
        seed_everything(seed)  # torch, numpy, random: the user's code may draw from any
        members.append(
            build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs).to(device)
        )
    loss_fn = loss_function(data.classification, data.y_train.dim() > 1)
    stack = Stack(members, loss_fn, data.classification)
    optimizer = make_optimizer(list(stack.params.values()), training)
    schedule = make_schedule(optimizer, training)
    setup = time.perf_counter() - t_setup
    n, batch = data.x_train.shape[0], training["batch_size"]
    if batch > n:
        raise ValueError(f"batch_size {batch} is larger than the training split ({n} samples)")
    probe_idx = torch.stack(
        [
            torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + s))[
                : training["probe_size"]
            ]
            for s in seeds
        ]
    ).to(device)
    return Group(
        config=config,
        seeds=seeds,
        device=device,
        data=data,
        members=members,
        stack=stack,
        optimizer=optimizer,
        schedule=schedule,
        loss_fn=loss_fn,
        num_params=sum(p.numel() for p in members[0].parameters() if p.requires_grad),
        setup_seconds=setup,
        gens=[torch.Generator().manual_seed(s) for s in seeds],
        x_probe=data.x_train[probe_idx],
        y_probe=data.y_train[probe_idx],
        records=[new_record(config, s, meta, getattr(split, "info", None)) for s in seeds],
        curves=[{k: [] for k in CURVE_KEYS} for _ in seeds],
        alive=[True] * len(seeds),
        steps_done=[0] * len(seeds),
        share=len(set(seeds)),
    )


def _run_batched(
    config: dict[str, Any],
    seeds: list[int],
    split: Any,
    meta: dict[str, Any] | None,
    on_progress: Any,
) -> list[dict[str, Any]]:
    group = _set_up(config, seeds, split, meta)
    steps, eval_every = config["training"]["steps"], config["training"]["eval_every"]
    order = _Order(group.permutations(), 0)
    step = 0
    while step < steps and any(group.alive):
        # Train one evaluation interval (timed), then evaluate every live member.
        interval = min(eval_every, steps - step)
        loss_sum = _train_interval(group, order, step, interval)
        step += interval
        loss, acc = _evaluate(group, step, interval, loss_sum)
        if on_progress is not None:
            on_progress(step, steps, acc, loss)
    return [_finish(group, k) for k in range(group.size)]


@dataclass
class _Order:
    """Where the members are in their current epoch's batch order."""

    perm: torch.Tensor  # (S, n)
    pos: int


def _train_interval(group: Group, order: _Order, step: int, interval: int) -> torch.Tensor:
    """``interval`` steps of every member; their summed training losses (float64, on CPU)."""
    data, stack, S = group.data, group.stack, group.size
    batch, n = group.config["training"]["batch_size"], data.x_train.shape[0]
    sample_shape, target_shape = data.x_train.shape[1:], data.y_train.shape[1:]
    loss_sum = torch.zeros(S, dtype=torch.float64)
    loss_acc = torch.zeros(S, device=group.device)
    # On CPU the loss is read every step (divergence at its exact step, as a separate run
    # records it); on an accelerator it is summed on the device and read once per interval.
    sync_each_step = group.device.type == "cpu"
    synchronize(group.device)
    t0 = time.perf_counter()
    for _ in range(interval):
        if order.pos + batch > n:
            order.perm, order.pos = group.permutations(), 0
        # One gather of the S batches (index_select: the same rows, ~40 % faster than
        # advanced indexing with a 2-D index).
        idx = order.perm[:, order.pos : order.pos + batch].reshape(-1)
        order.pos += batch
        xb = data.x_train.index_select(0, idx).view(S, batch, *sample_shape)
        yb = data.y_train.index_select(0, idx).view(S, batch, *target_shape)
        losses = stack.train_losses(stack.params, stack.buffers, xb, yb)
        group.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        group.optimizer.step()
        if group.schedule is not None:
            group.schedule.step()
        step += 1
        if not sync_each_step:
            loss_acc += losses.detach()
            continue
        values = losses.detach()
        finite = torch.isfinite(values)
        if bool(finite.all()):  # the common case: one float64 add, nothing else
            loss_sum += values
            continue
        for k in range(S):
            if group.alive[k] and not bool(finite[k]):
                group.diverged(k, step)
        loss_sum += torch.where(finite, values.double(), 0.0)
    synchronize(group.device)
    elapsed = time.perf_counter() - t0
    group.group_seconds += elapsed
    group.interval_ms.append(1000 * elapsed / interval / group.share)
    if sync_each_step:
        return loss_sum
    sums = loss_acc.double().cpu()
    for k in range(S):
        if group.alive[k] and not math.isfinite(float(sums[k])):
            group.diverged(k, step)  # the interval's last step: the first we can see it
    return sums


def _evaluate(
    group: Group, step: int, interval: int, loss_sum: torch.Tensor
) -> tuple[float, float | None]:
    """Test split and training probe for every member; live members' curves get a point.

    Returns the first member's test (loss, accuracy), what the progress line shows."""
    data, chunk = group.data, group.config["training"]["eval_batch_size"]
    test = group.stack.evaluate(data.x_test, data.y_test, chunk, own=False)
    probe = group.stack.evaluate(group.x_probe, group.y_probe, chunk, own=True)
    for k in range(group.size):
        if not group.alive[k]:
            continue
        group.steps_done[k] = step
        c = group.curves[k]
        c["step"].append(step)
        c["train_loss"].append(_finite(float(loss_sum[k]) / interval))
        c["test_loss"].append(_finite(test[k][0]))
        c["test_acc"].append(test[k][1])
        c["train_probe_loss"].append(_finite(probe[k][0]))
        c["train_probe_acc"].append(probe[k][1])
        # A member's share of the group's time: what it cost, comparable across S.
        c["train_seconds"].append(group.group_seconds / group.share)
    return test[0]


def _finish(group: Group, k: int) -> dict[str, Any]:
    """Member ``k`` as the ordinary per-seed record a separate run writes."""
    config, training = group.config, group.config["training"]
    record, curve, seed = group.records[k], group.curves[k], group.seeds[k]
    record["device"] = str(group.device)
    timing: dict[str, Any] = {
        "train_seconds": group.group_seconds / group.share,
        "eval_seconds": 0.0,
        "probe_seconds": 0.0,
        "steps": group.steps_done[k],
        "setup_seconds": group.setup_seconds / group.share,
        "ms_per_step_stats": median_iqr(group.interval_ms),
        "batch_seeds": {"members": group.share, "group_train_seconds": group.group_seconds},
    }
    data = group.data
    if record["status"] == "ok" and training.get("profile_steps", 0) > 0:
        model = group.stack.member(k, group.members[k])
        opt = make_optimizer(model.parameters(), training)
        timing["breakdown"] = step_breakdown(
            model,
            opt,
            group.loss_fn,
            data.x_train,
            data.y_train,
            training,
            group.device,
            training["profile_steps"],
            seed,
        )
    timing["peak_memory_mb"] = peak_memory_mb(group.device)
    if record["status"] == "ok":
        member = group.stack.member(k, group.members[k])
        timing["memory"] = member_memory(member, training, group.loss_fn, data)
    timing["process_rss_mb"] = process_rss_mb()
    metrics, reached = summarize(
        curve,
        config["targets"],
        timing,
        record["status"],
        training["batch_size"],
        group.num_params,
    )
    metrics.update(breakdown_metrics(timing))
    record.update(curves=curve, metrics=metrics, targets=reached, timing=timing, diagnostics={})
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def member_memory(
    model: Any, training: dict[str, Any], loss_fn: Any, data: Any
) -> dict[str, float]:
    """A member's own memory, as a separate run accounts it (optimizer state included).

    The stacked optimizer's state is not the member's, so one step on a copy with a fresh
    optimizer fills state of the same shapes; the member itself is untouched.
    """
    import copy

    model = copy.deepcopy(model).train()
    opt = make_optimizer(model.parameters(), training)
    batch = training["batch_size"]
    loss_fn(model(data.x_train[:batch]).float(), data.y_train[:batch]).backward()
    opt.step()
    return model_memory(model, opt, loss_fn, data.x_train, data.y_train, batch)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
