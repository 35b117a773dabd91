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
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from normbench.models import build
from normbench.train.device import resolve_device, synchronize
from normbench.train.loop import (
    SCHEMA_VERSION,
    breakdown_metrics,
    loss_function,
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


def _record(
    config: dict[str, Any], seed: int, meta: dict[str, Any] | None, started: str
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        **(meta or {}),
        "seed": seed,
        "config": config,
        "status": "ok",
        "error": None,
        "diverged_at_step": None,
        "started": started,
    }


def _curves() -> dict[str, list]:
    return {
        k: []
        for k in (
            "step",
            "train_loss",
            "test_loss",
            "test_acc",
            "train_probe_loss",
            "train_probe_acc",
            "train_seconds",
        )
    }


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
            out = functional_call(self.base, (p, b), (xb,)).float()
            loss = loss_fn(out, yb) * xb.shape[0]
            correct = (out.argmax(1) == yb).sum().float() if classification else loss * 0
            return torch.stack((loss, correct))

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
                return torch.stack((loss, correct), dim=1)

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
        total = torch.zeros(self.size, 2, device=x.device)
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
        values = total.tolist()
        return [
            (loss / n, (correct / n if self.classification else None)) for loss, correct in values
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
            record["timing"]["batch_seeds_fallback"] = f"{type(exc).__name__}: {exc}"
        return records


def _run_batched(
    config: dict[str, Any],
    seeds: list[int],
    split: Any,
    meta: dict[str, Any] | None,
    on_progress: Any,
) -> list[dict[str, Any]]:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    training = config["training"]
    t_setup = time.perf_counter()
    device = resolve_device(training["device"])
    data = to_tensors(split, device)
    members = []
    for seed in seeds:  # the very initialisation a separate run of this seed gets
        torch.manual_seed(seed)
        members.append(
            build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs).to(device)
        )
    num_params = sum(p.numel() for p in members[0].parameters() if p.requires_grad)
    loss_fn = loss_function(data.classification)
    stack = Stack(members, loss_fn, data.classification)
    optimizer = make_optimizer(list(stack.params.values()), training)
    schedule = make_schedule(optimizer, training)
    setup = time.perf_counter() - t_setup

    steps, eval_every, batch = training["steps"], training["eval_every"], training["batch_size"]
    n = data.x_train.shape[0]
    if batch > n:
        raise ValueError(f"batch_size {batch} is larger than the training split ({n} samples)")
    S = len(seeds)
    share = len(set(seeds))  # a lone seed trains paired with its copy: it costs the whole group
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    probe_idx = torch.stack(
        [
            torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + s))[
                : training["probe_size"]
            ]
            for s in seeds
        ]
    ).to(device)
    x_probe, y_probe = data.x_train[probe_idx], data.y_train[probe_idx]

    def permutations() -> torch.Tensor:
        return torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)

    records = [_record(config, s, meta, started) for s in seeds]
    curves = [_curves() for _ in seeds]
    alive = [True] * S
    group_seconds, steps_done = 0.0, [0] * S
    interval_ms: list[float] = []
    chunk = training["eval_batch_size"]
    perm, pos, step = permutations(), 0, 0
    sync_each_step = device.type == "cpu"
    while step < steps and any(alive):
        interval = min(eval_every, steps - step)
        loss_sum = torch.zeros(S, dtype=torch.float64)
        loss_acc = torch.zeros(S, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(interval):
            if pos + batch > n:  # new epoch for every member at once (same n, same batch)
                perm, pos = permutations(), 0
            # One gather of the S batches (index_select: the same rows, ~40 % faster than
            # advanced indexing with a 2-D index).
            idx = perm[:, pos : pos + batch].reshape(-1)
            pos += batch
            xb = data.x_train.index_select(0, idx).view(S, batch, *data.x_train.shape[1:])
            yb = data.y_train.index_select(0, idx).view(S, batch, *data.y_train.shape[1:])
            losses = stack.train_losses(stack.params, stack.buffers, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            if sync_each_step:
                values = losses.detach()
                finite = torch.isfinite(values)
                if bool(finite.all()):  # the common case: one float64 add, nothing else
                    loss_sum += values
                    continue
                for k in range(S):
                    if alive[k] and not bool(finite[k]):
                        alive[k] = False
                        steps_done[k] = step
                        records[k].update(
                            status="diverged",
                            diverged_at_step=step,
                            error=f"training loss became non-finite at step {step}",
                        )
                loss_sum += torch.where(finite, values.double(), 0.0)
            else:
                loss_acc += losses.detach()
        synchronize(device)
        elapsed = time.perf_counter() - t0
        group_seconds += elapsed
        interval_ms.append(1000 * elapsed / interval / share)
        if not sync_each_step:
            sums = loss_acc.double().cpu()
            for k in range(S):
                if alive[k] and not math.isfinite(float(sums[k])):
                    alive[k] = False
                    steps_done[k] = step
                    records[k].update(
                        status="diverged",
                        diverged_at_step=step,
                        error=f"training loss became non-finite by step {step}",
                    )
            loss_sum = sums
        test = stack.evaluate(data.x_test, data.y_test, chunk, own=False)
        probe = stack.evaluate(x_probe, y_probe, chunk, own=True)
        for k in range(S):
            if not alive[k]:
                continue
            steps_done[k] = step
            c = curves[k]
            c["step"].append(step)
            c["train_loss"].append(_finite(float(loss_sum[k]) / interval))
            c["test_loss"].append(_finite(test[k][0]))
            c["test_acc"].append(test[k][1])
            c["train_probe_loss"].append(_finite(probe[k][0]))
            c["train_probe_acc"].append(probe[k][1])
            # A member's share of the group's time: what it cost, comparable across S.
            c["train_seconds"].append(group_seconds / share)
        if on_progress is not None:
            on_progress(step, steps, test[0][1], test[0][0])

    out = []
    for k, seed in enumerate(seeds):
        record, curve = records[k], curves[k]
        record["device"] = str(device)
        timing: dict[str, Any] = {
            "train_seconds": group_seconds / share,
            "eval_seconds": 0.0,
            "probe_seconds": 0.0,
            "steps": steps_done[k],
            "setup_seconds": setup / share,
            "ms_per_step_stats": median_iqr(interval_ms),
            "batch_seeds": {"members": share, "group_train_seconds": group_seconds},
        }
        if record["status"] == "ok" and training.get("profile_steps", 0) > 0:
            model = stack.member(k, members[k])
            opt = make_optimizer(model.parameters(), training)
            timing["breakdown"] = step_breakdown(
                model,
                opt,
                loss_fn,
                data.x_train,
                data.y_train,
                training,
                device,
                training["profile_steps"],
                seed,
            )
        timing["peak_memory_mb"] = peak_memory_mb(device)
        if record["status"] == "ok":
            timing["memory"] = member_memory(stack.member(k, members[k]), training, loss_fn, data)
        timing["process_rss_mb"] = process_rss_mb()
        metrics, reached = summarize(
            curve, config["targets"], timing, record["status"], training["batch_size"], num_params
        )
        metrics.update(breakdown_metrics(timing))
        record.update(curves=curve, metrics=metrics, targets=reached, timing=timing, diagnostics={})
        record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        out.append(record)
    return out


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
