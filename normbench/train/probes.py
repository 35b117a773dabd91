"""Diagnostics probes: measurements hooked into the training loop that never train.

Every probe implements ``normbench.train.context.Probe``. Three rules keep the training run the
same with or without diagnostics:

* a probe never changes the real model (parameters, gradients, buffers such as BN running
  statistics) nor the optimizer: what needs a training-mode forward/backward or an update
  runs on a deep copy, or saves and restores the buffers it could touch;
* probe code runs under ``isolated_rng``: noise norms (noisy BN, CrossNorm) draw from torch's
  global generator, which the probe's own forwards must not advance;
* probe data come from their own seeded generators, never from the training generator.

Cadence: ``activations`` measures the model *state* at step 0 and at every evaluation (the
state after that many updates). The backward probes (``grad_norms``, ``ics``, ``landscape``)
measure the gradient of training step ``k`` (computed on the parameters after ``k − 1``
updates, on step ``k``'s batch, before clipping) at step 1 and at every evaluation step.
``every: N`` replaces "every evaluation" by "every N steps". ``eval_gap`` and ``shift`` run
once, on the final model.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from normbench.models.sites import resolve_layer
from normbench.spread import finite_or_none
from normbench.train.context import ProbeContext, evaluate, scored
from normbench.train.diag_catalog import DIAGNOSTICS
from normbench.train.optim import make_optimizer
from normbench.usercode import error_text

# Offsets added to the seed for the probes' own generators (the loop uses 10_000 + seed for
# its train probe batch), so probe data are fixed per seed and independent of training.
ACTIVATIONS_SEED = 20_000
EVAL_GAP_SEED = 30_000

Metrics = dict[str, Any]


# --- small pure helpers -------------------------------------------------------------------------


def eval_points(total: int, eval_every: int) -> list[int]:
    """The steps after which the loop evaluates: multiples of ``eval_every``, and the last."""
    points = list(range(eval_every, total + 1, eval_every))
    if total >= 1 and (not points or points[-1] != total):
        points.append(total)
    return points


def backward_cadence(total: int, eval_every: int, every: int | None) -> set[int]:
    """Training steps whose gradient a backward probe looks at: step 1, then the cadence."""
    if total < 1:
        return set()
    steps = eval_points(total, eval_every) if every is None else range(every, total + 1, every)
    return {1, *steps}


def percentiles(x: torch.Tensor, q: Sequence[float]) -> torch.Tensor:
    """``numpy.percentile(x, q)`` (linear interpolation) over all elements, as float64.

    On the CPU numpy itself does it (a partial sort, ~4× faster than torch's full sort); on
    an accelerator, sort once and interpolate (torch.quantile refuses inputs above 2**24
    elements, which a CNN probe batch can exceed). A NaN anywhere makes every percentile
    NaN, like numpy.
    """
    x = x.detach().flatten()
    if x.device.type == "cpu":
        return torch.from_numpy(np.percentile(x.numpy(), list(q)).astype(np.float64))
    return sorted_percentiles(x, q)


def sorted_percentiles(x: torch.Tensor, q: Sequence[float]) -> torch.Tensor:
    """``percentiles`` with torch ops only, on x's device: one sort, linear interpolation."""
    s = x.detach().flatten().sort().values.double()  # NaNs sort last
    pos = (
        torch.tensor([float(p) for p in q], dtype=torch.float64, device=s.device)
        * (s.numel() - 1)
        / 100
    )
    lo = pos.floor().long()
    hi = pos.ceil().long()
    out = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return torch.where(s[-1].isnan(), torch.full_like(out, math.nan), out)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def current_lr(ctx: ProbeContext) -> float:
    """The learning rate of this step (a schedule may have moved it from the effective lr)."""
    return float(ctx.optimizer.param_groups[0]["lr"]) if ctx.optimizer is not None else ctx.lr


def block_weights(block: nn.Module) -> list[nn.Parameter]:
    """A hidden block's layer weights (Linear/Conv, or an RNN's input and hidden maps).

    Everything in the block except its norm modules (``norm``, ``norm_x``, ``norm_h``,
    ``norm_out``); weight-normalised layers contribute their (g, v) parameters.
    """
    return [p for n, p in block.named_parameters() if p.requires_grad and not n.startswith("norm")]


def _flat_grad(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """The parameters' gradients as one vector (a missing gradient counts as zeros)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )


def snapshot_buffers(model: nn.Module) -> list[torch.Tensor]:
    """Copies of every buffer (running statistics, step counters)."""
    return [b.detach().clone() for b in model.buffers()]


@torch.no_grad()
def restore_buffers(model: nn.Module, saved: Sequence[torch.Tensor]) -> None:
    """Write ``snapshot_buffers`` copies back, in place (bitwise)."""
    for b, s in zip(model.buffers(), saved, strict=True):
        b.copy_(s)


@contextmanager
def isolated_rng(device: torch.device) -> Iterator[Callable[[], None]]:
    """Leave torch's global RNG as it was on entry; yield ``rewind`` to reset it to that state.

    Rewinding before each forward pass of a probe gives every pass the same noise (noise
    norms), so differences between passes come from the parameters alone.
    """
    cuda = device.type == "cuda"
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    )
    with torch.random.fork_rng(devices=devices):
        cpu_state = torch.get_rng_state()
        cuda_states = [torch.cuda.get_rng_state(d) for d in devices]

        def rewind() -> None:
            torch.set_rng_state(cpu_state)
            for d, state in zip(devices, cuda_states, strict=True):
                torch.cuda.set_rng_state(state, d)

        yield rewind


def split_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Index batches of ``batch_size``; a shorter remainder joins the previous batch.

    So no statistic comes from a tiny batch; a split smaller than one batch is one batch.
    """
    batches = list(order.split(batch_size))
    if len(batches) > 1 and batches[-1].numel() < batch_size:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


# --- probes -------------------------------------------------------------------------------------


class _Probe:
    """No-op defaults for the ``Probe`` protocol.

    Every probe is built as ``Class(options, config)`` (see ``build_probe``); those that need
    nothing from the run's configuration accept it and ignore it.
    """

    def backward_steps(self, total_steps: int, eval_every: int) -> set[int]:
        return set()

    def after_backward(
        self, step: int, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor
    ) -> None:
        return None

    def on_eval(self, step: int, ctx: ProbeContext) -> None:
        return None

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        raise NotImplementedError


# --- activations --------------------------------------------------------------------------------


def capture_act_inputs(
    model: nn.Module, layer: int | str, x: torch.Tensor, train: bool
) -> list[torch.Tensor]:
    """What ``resolve_layer`` points at, for one forward of ``x`` (one per call: RNN steps).

    ``train`` uses batch statistics (the network the optimizer sees); the buffers it would
    update are restored, and the model's mode, gradients and the global RNG are untouched.
    """
    captured: list[torch.Tensor] = []
    module, where, _ = resolve_layer(model, layer)
    if where == "input":
        handle = module.register_forward_pre_hook(
            lambda _m, args: captured.append(args[0].detach())
        )
    else:
        handle = module.register_forward_hook(lambda _m, _args, out: captured.append(out.detach()))
    was_training = model.training
    saved = snapshot_buffers(model) if train else None
    try:
        with torch.no_grad(), isolated_rng(x.device):
            model.train(train)
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
        if saved is not None:
            restore_buffers(model, saved)
    return captured


def act_percentiles(
    captured: Sequence[torch.Tensor], q: Sequence[float], unit: int = 0
) -> torch.Tensor:
    """(2, len(q)): percentiles pooled over every unit (and position, time step), and of one unit.

    The unit is channel ``unit`` (axis 1) over the batch and any spatial positions / steps,
    Ioffe & Szegedy's "typical sigmoid".
    """
    pooled = torch.cat([t.flatten() for t in captured])
    one = torch.cat([t.select(1, unit).flatten() for t in captured])
    return torch.stack([percentiles(pooled, q), percentiles(one, q)])


class ActivationsProbe(_Probe):
    """Percentiles of the input to one block's non-linearity, on a fixed test probe batch."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        self.layer_opt: int | str = opts["layer"]
        self.q = [float(p) for p in opts["percentiles"]]
        self.every = opts["every"]
        self.size = int(opts["probe_size"])
        self.train = opts["mode"] == "train"
        self.total = 0
        self.at: set[int] = set()
        self.x: torch.Tensor | None = None
        self.steps: list[int] = []
        self.rows: list[torch.Tensor] = []  # (2, len(q) + 1): pooled / unit 0, last column = median

    def backward_steps(self, total_steps: int, eval_every: int) -> set[int]:
        self.total = total_steps
        if self.every is None:
            return set()
        # The state after s updates is what the backward of step s + 1 sees (before its update).
        self.at = {s + 1 for s in range(self.every, total_steps, self.every)}
        return self.at

    def on_eval(self, step: int, ctx: ProbeContext) -> None:
        if self.every is None or step % self.every == 0 or step == self.total:
            self._record(step, ctx)

    def after_backward(
        self, step: int, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor
    ) -> None:
        # The loop calls every probe at the union of their steps: keep to ours.
        if step in self.at and (not self.steps or self.steps[-1] != step - 1):
            self._record(step - 1, ctx)

    def _record(self, step: int, ctx: ProbeContext) -> None:
        if self.x is None:
            n = ctx.data.x_test.shape[0]
            gen = torch.Generator().manual_seed(ACTIVATIONS_SEED + ctx.seed)
            idx = torch.randperm(n, generator=gen)[: self.size].to(ctx.data.x_test.device)
            self.x = ctx.data.x_test[idx]
        captured = capture_act_inputs(ctx.model, self.layer_opt, self.x, self.train)
        self.steps.append(step)
        self.rows.append(act_percentiles(captured, [*self.q, 50.0]))

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        layer = resolve_layer(ctx.model, self.layer_opt)[2]
        data: dict[str, Any] = {
            "step": self.steps,
            "layer": layer,
            "percentiles": self.q,
            "values": [],
            "unit": 0,
            "unit_values": [],
            "mode": "train" if self.train else "eval",
        }
        out: Metrics = {"act_p50_final": None, "act_spread_final": None, "act_p50_drift": None}
        if not self.rows:
            return {"activations": data}, out
        rows = torch.stack(self.rows).cpu().tolist()
        data["values"] = finite_or_none([r[0][:-1] for r in rows])
        data["unit_values"] = finite_or_none([r[1][:-1] for r in rows])
        medians = finite_or_none([r[0][-1] for r in rows])
        last = data["values"][-1]
        lo, hi = self.q.index(min(self.q)), self.q.index(max(self.q))
        drift = [abs(m - medians[0]) for m in medians if m is not None and medians[0] is not None]
        out["act_p50_final"] = medians[-1]
        out["act_spread_final"] = last[hi] - last[lo] if None not in (last[hi], last[lo]) else None
        out["act_p50_drift"] = max(drift) if drift else None
        return {"activations": data}, out


# --- gradient norms -----------------------------------------------------------------------------


class _BackwardProbe(_Probe):
    """A probe that measures right after backward at its own steps (see ``backward_cadence``)."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        self.every = opts["every"]
        self.at: set[int] = set()
        self.steps: list[int] = []
        self.rows: list[torch.Tensor] = []  # kept on the device: no host sync inside a step

    def backward_steps(self, total_steps: int, eval_every: int) -> set[int]:
        self.at = backward_cadence(total_steps, eval_every, self.every)
        return self.at

    def after_backward(
        self, step: int, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor
    ) -> None:
        # The loop calls every probe at the union of their steps: keep to ours.
        if step in self.at:
            self.steps.append(step)
            self.rows.append(self.measure(ctx, xb, yb))

    def measure(self, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GradNormsProbe(_BackwardProbe):
    """ℓ2 norm of every trainable parameter's gradient, right after backward."""

    names: tuple[str, ...] = ()

    def measure(self, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        named = [(n, p) for n, p in ctx.model.named_parameters() if p.requires_grad]
        self.names = tuple(n for n, _ in named)
        zero = torch.zeros((), device=xb.device)
        # A parameter the step did not reach has no gradient: it counts as zero.
        return torch.stack(
            [
                torch.linalg.vector_norm(p.grad).float() if p.grad is not None else zero
                for _, p in named
            ]
        )

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        values = torch.stack(self.rows).cpu().double() if self.rows else torch.zeros(0, 0)
        total = float(values[-1].square().sum().sqrt()) if self.rows else None
        data = {
            "step": self.steps,
            "layers": list(self.names),
            "values": finite_or_none(values.tolist()),
        }
        return {"grad_norms": data}, {"grad_norm_final": finite_or_none(total)}


# --- internal covariate shift -------------------------------------------------------------------


def optimizer_twin(
    optimizer: torch.optim.Optimizer | None, twin: nn.Module, training: dict[str, Any], lr: float
) -> tuple[torch.optim.Optimizer, str]:
    """An optimizer over ``twin`` in the real one's state (deep-copied), and the rule used.

    Falls back to plain SGD (θ ← θ − lr·g, lr = this step's) when the real optimizer cannot
    be rebuilt over the copy (a hand-built optimizer in a test, say).
    """
    if optimizer is not None:
        try:
            opt = make_optimizer(twin, training)
            opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
            return opt, "optimizer"
        except (KeyError, ValueError, TypeError):
            pass
    return torch.optim.SGD(twin.parameters(), lr=lr), "sgd"


def ics_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The units ICS indexes: a built-in model's hidden blocks; in any other model its
    top-level children that have trainable parameters (``conv1``, ``layer1``, …, ``fc``)."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        return [(f"blocks.{i}", b) for i, b in enumerate(blocks)]
    return [
        (name, child)
        for name, child in model.named_children()
        if any(p.requires_grad for p in child.parameters())
    ]


def resolve_ics_layers(model: nn.Module, layers: Sequence[int | str] | None) -> list[str]:
    """Module paths of the chosen units, in parameter order (``LookupError`` when absent)."""
    units = ics_units(model)
    if layers is None:
        paths = [name for name, _ in units]
    else:
        paths = []
        for layer in layers:
            if isinstance(layer, str):
                try:
                    model.get_submodule(layer)
                except AttributeError:
                    raise LookupError(f"the model has no module '{layer}'") from None
                paths.append(layer)
            else:
                if not units:
                    raise LookupError("the model has no parametrised units to index")
                paths.append(units[layer % len(units)][0])
    order = {id(p): k for k, p in enumerate(model.parameters())}

    def first(path: str) -> int:
        return min((order[id(p)] for p in model.get_submodule(path).parameters()), default=-1)

    return sorted(dict.fromkeys(paths), key=first)


def _unit_weights(model: nn.Module, path: str) -> list[nn.Parameter]:
    module = model.get_submodule(path)
    if path.startswith("blocks.") and hasattr(module, "act"):
        return block_weights(module)  # a built-in block: its layer, without the norm
    return [p for p in module.parameters() if p.requires_grad]


def internal_covariate_shift(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    training: dict[str, Any],
    lr: float,
    loss_fn: Any,
    xb: torch.Tensor,
    yb: torch.Tensor,
    layers: Sequence[int | str],
) -> tuple[torch.Tensor, str]:
    """Santurkar et al. Def. 2.1 for each unit in ``layers`` (block indices or module paths,
    taken in parameter order): rows (‖G−G′‖₂, cos).

    G = gradient of the unit's weights on (xb, yb); G′ = the same after every parameter
    registered before the unit took this step's update (with the optimizer's own rule, on a
    copy whose optimizer state is a copy: momentum buffers / Adam moments are used but the
    real ones never move). Updates are applied in parameter order, so one copy serves every
    unit. Gradient clipping and loss scaling are not applied to that update.
    """
    layers = resolve_ics_layers(model, layers)
    with isolated_rng(xb.device) as rewind:
        twin = copy.deepcopy(model).train()
        buffers = snapshot_buffers(twin)

        def backward() -> None:
            rewind()
            restore_buffers(twin, buffers)  # batch renorm's output depends on its buffers
            twin.zero_grad(set_to_none=True)
            loss_fn(twin(xb).float(), yb).backward()

        backward()
        params = list(twin.parameters())
        order = {id(p): k for k, p in enumerate(params)}
        step_grad = {p: p.grad for p in params if p.grad is not None}
        g0 = {path: _flat_grad(_unit_weights(twin, path)) for path in layers}
        opt, rule = optimizer_twin(optimizer, twin, training, lr)
        rows, updated = [], 0  # params[:updated] have taken their update
        for path in layers:
            first = min((order[id(p)] for p in twin.get_submodule(path).parameters()), default=0)
            if first > updated:
                twin.zero_grad(set_to_none=True)
                for p in params[updated:first]:
                    p.grad = step_grad.get(p)
                opt.step()
                updated = first
                backward()
            elif first == 0:  # the first unit: no earlier layer took an update, so G′ = G
                rows.append(torch.tensor([0.0, 1.0], device=xb.device))
                continue
            g1 = _flat_grad(_unit_weights(twin, path))
            g = g0[path]
            cos = torch.dot(g, g1) / (g.norm() * g1.norm())
            rows.append(torch.stack([(g - g1).norm(), cos]))
    return torch.stack(rows), rule


class IcsProbe(_BackwardProbe):
    """Internal covariate shift at chosen units (block indices or module paths) and steps."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        super().__init__(opts, config)
        self.layers_opt = opts["layers"]
        self.layers: list[str] = []
        self.free: set[str] = set()
        self.rule = "optimizer"

    def measure(self, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if not self.layers:
            self.layers = resolve_ics_layers(ctx.model, self.layers_opt)
            order = {id(p): k for k, p in enumerate(ctx.model.parameters())}
            self.free = {
                path
                for path in self.layers  # units with no earlier parameter
                if min(
                    (order[id(p)] for p in ctx.model.get_submodule(path).parameters()), default=0
                )
                == 0
            }
        rows, self.rule = internal_covariate_shift(
            ctx.model,
            ctx.optimizer,
            ctx.config["training"],
            current_lr(ctx),
            ctx.loss_fn,
            xb,
            yb,
            self.layers,
        )
        return rows

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        rows = torch.stack(self.rows).cpu().double().tolist() if self.rows else []  # (S, L, 2)
        l2 = finite_or_none([[r[0] for r in step] for step in rows])
        cos = finite_or_none([[r[1] for r in step] for step in rows])
        data = {
            "step": self.steps,
            "layers": list(self.layers),
            "l2": l2,
            "cosine": cos,
            "update": self.rule,
        }
        # The first unit is ICS-free by definition; averaging it in would only dilute the others.
        keep = [j for j, path in enumerate(self.layers) if path not in self.free] or list(
            range(len(self.layers))
        )
        out = {
            "ics_l2_mean": _mean([row[j] for row in l2 for j in keep]),
            "ics_cos_mean": _mean([row[j] for row in cos for j in keep]),
        }
        return {"ics": data}, out


# --- loss landscape -----------------------------------------------------------------------------


def loss_landscape(
    model: nn.Module,
    loss_fn: Any,
    xb: torch.Tensor,
    yb: torch.Tensor,
    lr: float,
    etas: Sequence[float],
) -> torch.Tensor:
    """Santurkar §3.2 along g = ∇L(θ) on (xb, yb): rows (L(θ−ηg), ‖∇L(θ−ηg)−∇L(θ)‖, β) per η.

    η = multiple × ``lr``; β = ‖∇L(θ−ηg)−∇L(θ)‖ / ‖ηg‖. Train mode (batch statistics, as the
    step sees it), on a copy, with the same noise for every pass: evaluation only.
    """
    with isolated_rng(xb.device) as rewind:
        twin = copy.deepcopy(model).train()
        params = [p for p in twin.parameters() if p.requires_grad]
        buffers = snapshot_buffers(twin)

        def loss_and_grad() -> tuple[torch.Tensor, list[torch.Tensor]]:
            rewind()
            restore_buffers(twin, buffers)
            twin.zero_grad(set_to_none=True)
            loss = loss_fn(twin(xb).float(), yb)
            loss.backward()
            return loss.detach(), [
                p.grad if p.grad is not None else torch.zeros_like(p) for p in params
            ]

        _, g = loss_and_grad()
        theta = [p.detach().clone() for p in params]
        g_norm = torch.stack([t.norm() for t in g]).norm()
        rows = []
        for multiple in etas:
            eta = multiple * lr
            with torch.no_grad():
                for p, t, gi in zip(params, theta, g, strict=True):
                    p.copy_(t).add_(gi, alpha=-eta)
            loss, grad = loss_and_grad()
            diff = torch.stack([(a - b).norm() for a, b in zip(grad, g, strict=True)]).norm()
            rows.append(torch.stack([loss, diff, diff / (eta * g_norm)]))
    return torch.stack(rows)


def eta_grid(eta_min: float, eta_max: float, points: int) -> list[float]:
    """``points`` evenly spaced multiples of the learning rate over [eta_min, eta_max]."""
    if points == 1:
        return [float(eta_min)]
    return [eta_min + (eta_max - eta_min) * k / (points - 1) for k in range(points)]


class LandscapeProbe(_BackwardProbe):
    """Loss range, gradient predictiveness and effective β-smoothness along the gradient."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        super().__init__(opts, config)
        self.etas = eta_grid(opts["eta_min"], opts["eta_max"], opts["points"])
        self.lrs: list[float] = []

    def measure(self, ctx: ProbeContext, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.lrs.append(current_lr(ctx))
        return loss_landscape(ctx.model, ctx.loss_fn, xb, yb, self.lrs[-1], self.etas)

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        rows = (
            torch.stack(self.rows).cpu().double()
            if self.rows
            else torch.zeros(0, len(self.etas), 3)
        )
        loss, diff, beta = rows[..., 0], rows[..., 1], rows[..., 2]

        def span(t: torch.Tensor) -> list[list[float | None]]:
            return finite_or_none(torch.stack([t.min(1).values, t.max(1).values], 1).tolist())

        data = {
            "step": self.steps,
            "eta": self.etas,
            "lr": self.lrs,
            "loss_range": span(loss),
            "grad_pred": span(diff),
            "beta_smoothness": finite_or_none(beta.max(1).values.tolist()),
        }
        widths = [
            [hi - lo if None not in (lo, hi) else None for lo, hi in data[k]]
            for k in ("loss_range", "grad_pred")
        ]
        betas = [b for b in data["beta_smoothness"] if b is not None]
        out = {
            "loss_range_mean": _mean(widths[0]),
            "grad_pred_mean": _mean(widths[1]),
            "beta_smoothness_max": max(betas) if betas else None,
        }
        return {"landscape": data}, out


# --- evaluation-mode gap ------------------------------------------------------------------------


def has_running_stats(module: nn.Module) -> bool:
    """A norm that keeps an exponential moving average: a ``momentum`` and buffers of its own."""
    return hasattr(module, "momentum") and next(module.buffers(recurse=False), None) is not None


@torch.no_grad()
def precise_stats_model(model: nn.Module, x: torch.Tensor, batch_size: int) -> nn.Module:
    """A copy whose running statistics are recomputed on ``x`` (Wu & Johnson's precise BN).

    Train-mode forwards of ``x`` in batches of ``batch_size`` with frozen weights; each norm's
    k-th update uses momentum 1/k, so its running statistics end as the equal-weight mean of
    the per-batch statistics (torch BN: batch means and unbiased variances), whatever they
    held before (non-finite values are cleared first) — the same cumulative average as torch's
    ``momentum=None``, but it also works for the research norms that update with
    ``lerp_(stat, momentum)``. ``x`` is used in
    whole batches (the remainder is dropped, unless ``x`` is smaller than one batch).
    """
    twin = copy.deepcopy(model).train()
    handles = []
    for module in twin.modules():
        if has_running_stats(module):
            # Weight 1 on the first batch forgets the old value, except a NaN/inf (0·NaN = NaN).
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
            for buf in module.buffers(recurse=False):
                if buf.is_floating_point():
                    buf.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            calls = [0]

            def count(mod: nn.Module, _args: Any, calls: list[int] = calls) -> None:
                calls[0] += 1
                mod.momentum = 1.0 / calls[0]

            handles.append(module.register_forward_pre_hook(count))
    n = x.shape[0] if x.shape[0] < batch_size else x.shape[0] // batch_size * batch_size
    for start in range(0, n, batch_size):
        twin(x[start : start + batch_size])
    for handle in handles:
        handle.remove()
    return twin.eval()


@torch.no_grad()
def batch_stats_eval(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    classification: bool,
    batch_size: int,
    seed: int,
) -> tuple[float, float | None]:
    """Mean loss and accuracy with batch statistics: train-mode forwards of shuffled batches.

    Shuffled with a fixed generator, since a split sorted by class would give biased batch
    statistics; run on a copy so the model's running statistics do not move.
    """
    twin = copy.deepcopy(model).train()
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).to(x.device)
    total_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    count: torch.Tensor | int = 0
    for idx in split_batches(order, batch_size):
        out = twin(x[idx]).float()
        weight: torch.Tensor | int = idx.numel()
        if classification:
            hits, weight = scored(out, y[idx])
            correct += hits
        total_loss += loss_fn(out, y[idx]).double() * weight
        count += weight
    n = float(count)
    return float(total_loss) / n, (float(correct) / n if classification else None)


def _guarded(
    name: str, notes: list[str], fn: Callable[[], tuple[float, float | None]]
) -> tuple[float | None, float | None]:
    """Run one evaluation; a non-finite loss or an error becomes (None, None) plus a note."""
    try:
        loss, acc = fn()
    except (RuntimeError, ValueError) as exc:
        notes.append(f"{name}: failed ({error_text(exc)})")
        return None, None
    if not math.isfinite(loss):
        notes.append(f"{name}: non-finite outputs (loss {loss})")
        return None, None
    return loss, acc


class EvalGapProbe(_Probe):
    """Test accuracy with running, batch and precisely recomputed statistics, at the end."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any]) -> None:
        self.batch_size = opts["batch_size"] or config["training"]["batch_size"]
        self.precise_samples = int(opts["precise_samples"])
        self.chunk = config["training"]["eval_batch_size"]

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        d, model, notes = ctx.data, ctx.model, []
        with isolated_rng(d.x_test.device):
            running = _guarded(
                "running_stats",
                notes,
                lambda: evaluate(
                    model, d.x_test, d.y_test, ctx.loss_fn, d.classification, self.chunk
                ),
            )
            batch = _guarded(
                "batch_stats",
                notes,
                lambda: batch_stats_eval(
                    model,
                    d.x_test,
                    d.y_test,
                    ctx.loss_fn,
                    d.classification,
                    self.batch_size,
                    EVAL_GAP_SEED + ctx.seed,
                ),
            )
            n = d.x_train.shape[0]
            gen = torch.Generator().manual_seed(EVAL_GAP_SEED + 1 + ctx.seed)
            idx = torch.randperm(n, generator=gen)[: min(self.precise_samples, n)].to(
                d.x_train.device
            )
            used = (
                idx.numel()
                if idx.numel() < self.batch_size
                else idx.numel() // self.batch_size * self.batch_size
            )
            precise = _guarded(
                "precise_stats",
                notes,
                lambda: evaluate(
                    precise_stats_model(model, d.x_train[idx], self.batch_size),
                    d.x_test,
                    d.y_test,
                    ctx.loss_fn,
                    d.classification,
                    self.chunk,
                ),
            )
            domain = (None, None)
            if d.domain_test is not None:  # two-domain data: also batches from one domain each
                domain = _guarded(
                    "domain_batch_stats",
                    notes,
                    lambda: domain_batch_stats_eval(
                        model, d, ctx.loss_fn, self.batch_size, EVAL_GAP_SEED + 2 + ctx.seed
                    ),
                )
        data = {
            "acc_running_stats": running[1],
            "acc_batch_stats": batch[1],
            "acc_precise_stats": precise[1],
            "loss_running_stats": running[0],
            "loss_batch_stats": batch[0],
            "loss_precise_stats": precise[0],
            "batch_size": self.batch_size,
            "precise_samples": used,
            "notes": notes,
        }
        gap = batch[1] - running[1] if None not in (batch[1], running[1]) else None
        out = {
            "acc_running_stats": running[1],
            "acc_batch_stats": batch[1],
            "acc_precise_stats": precise[1],
            "eval_gap": gap,
        }
        if d.domain_test is not None:
            data.update(acc_domain_batch_stats=domain[1], loss_domain_batch_stats=domain[0])
        # null, never missing, where the data has one domain (ARCHITECTURE: result record)
        out["acc_domain_batch_stats"] = domain[1]
        out["domain_eval_gap"] = (
            domain[1] - running[1] if None not in (domain[1], running[1]) else None
        )
        return {"eval_gap": data}, out


def domain_batch_stats_eval(
    model: nn.Module, d: Any, loss_fn: Any, batch_size: int, seed: int
) -> tuple[float, float | None]:
    """Batch-statistics evaluation with every batch drawn from one domain (Irpan's fix: each
    domain normalised by its own statistics); loss and accuracy weighted by domain size."""
    total_loss, correct, n = 0.0, 0.0, d.x_test.shape[0]
    for value in d.domain_test.unique().tolist():
        rows = torch.nonzero(d.domain_test == value).flatten().to(d.x_test.device)
        loss, acc = batch_stats_eval(
            model,
            d.x_test[rows],
            d.y_test[rows],
            loss_fn,
            d.classification,
            batch_size,
            seed + value,
        )
        total_loss += loss * rows.numel()
        correct += (acc or 0.0) * rows.numel()
    return total_loss / n, (correct / n if d.classification else None)


# --- covariate shift of the inputs --------------------------------------------------------------


class ShiftProbe(_Probe):
    """Test accuracy on x·scale + offset, in eval mode, at the end."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any]) -> None:
        self.scale, self.offset = float(opts["scale"]), float(opts["offset"])
        self.chunk = config["training"]["eval_batch_size"]

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        d, notes = ctx.data, []
        with isolated_rng(d.x_test.device):
            loss, acc = _guarded(
                "shift",
                notes,
                lambda: evaluate(
                    ctx.model,
                    d.x_test * self.scale + self.offset,
                    d.y_test,
                    ctx.loss_fn,
                    d.classification,
                    self.chunk,
                ),
            )
        clean = metrics.get("final_test_acc")
        data = {
            "scale": self.scale,
            "offset": self.offset,
            "test_acc": acc,
            "test_loss": loss,
            "clean_test_acc": clean,
            "notes": notes,
        }
        drop = clean - acc if None not in (clean, acc) else None
        return {"shift": data}, {"shift_test_acc": acc, "shift_drop": drop}


# --- per-block statistics -------------------------------------------------------------------------


def block_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Any) -> list:
    """ℓ2 norm of each block's parameter gradient for one batch, on a copy of ``model`` (the
    model's own gradients, buffers and the RNG are left as they were)."""
    twin = copy.deepcopy(model).train()
    with isolated_rng(x.device):
        twin.zero_grad(set_to_none=True)
        loss_fn(twin(x), y).backward()
    norms = []
    for block in twin.blocks:
        grads = [p.grad.detach().flatten() for p in block.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.cat(grads))) if grads else 0.0)
    return norms


class LayerStatsProbe(_Probe):
    """Per block: output RMS and peak |activation|, the largest attention logit (modules with a
    ``watch`` flag record ``max_logit``), and, at the start, gradient norms. A model without
    ``blocks`` records nothing (the pre-flight check tells)."""

    def __init__(self, opts: dict[str, Any], config: dict[str, Any]) -> None:
        self.size, self.every = opts["probe_size"], opts["every"]
        self.steps: list[int] = []
        self.rms: list[list[float]] = []
        self.peak: list[list[float]] = []
        self.logits: list[list[float | None]] = []
        self.init_grads: list[float] = []

    def on_eval(self, step: int, ctx: ProbeContext) -> None:
        blocks = getattr(ctx.model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            return
        if self.every and step % self.every and step:
            return
        x, y = ctx.data.x_train[: self.size], ctx.data.y_train[: self.size]
        if not self.steps:
            self.init_grads = block_grad_norms(ctx.model, x, y, ctx.loss_fn)
        outputs: list[torch.Tensor] = []
        handles = [b.register_forward_hook(lambda _m, _a, out: outputs.append(out)) for b in blocks]
        attn = [m for m in ctx.model.modules() if hasattr(m, "watch") and hasattr(m, "max_logit")]
        was_training = ctx.model.training
        try:
            for m in attn:
                m.watch = True
            with torch.no_grad(), isolated_rng(x.device):
                ctx.model.eval()
                ctx.model(x)
        finally:
            ctx.model.train(was_training)
            for h in handles:
                h.remove()
            for m in attn:
                m.watch = False
        self.steps.append(step)
        self.rms.append([float(o.float().pow(2).mean().sqrt()) for o in outputs])
        self.peak.append([float(o.float().abs().max()) for o in outputs])
        self.logits.append([m.max_logit for m in attn])

    def result(self, ctx: ProbeContext, metrics: Metrics) -> tuple[dict[str, Any], Metrics]:
        data = {
            "step": self.steps,
            "rms": finite_or_none(self.rms),
            "peak": finite_or_none(self.peak),
            "attn_logit_max": finite_or_none(self.logits),
            "init_grad_norms": finite_or_none(self.init_grads),
        }
        last_rms = self.rms[-1] if self.rms else []
        logits = [max(row) for row in self.logits if row]
        grads = self.init_grads
        out = {
            "act_rms_growth_final": last_rms[-1] / last_rms[0]
            if len(last_rms) > 1 and last_rms[0] > 0
            else None,
            "act_peak_final": max(self.peak[-1]) if self.peak and self.peak[-1] else None,
            "attn_logit_max_final": logits[-1] if logits else None,
            "attn_logit_max_peak": max(logits) if logits else None,
            "init_grad_growth": grads[-1] / grads[0] if len(grads) > 1 and grads[0] > 0 else None,
        }
        return {"layer_stats": data}, {k: finite_or_none(v) for k, v in out.items()}


# --- registry -----------------------------------------------------------------------------------


def probe_class(name: str) -> Callable[[dict[str, Any], dict[str, Any]], _Probe]:
    """The probe a diagnostic's catalog entry names (``"package.module:Class"``), imported."""
    if name not in DIAGNOSTICS:
        raise KeyError(f"no probe for diagnostic '{name}'")
    module, _, attr = DIAGNOSTICS[name].probe.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_probe(name: str, opts: dict[str, Any], config: dict[str, Any]) -> _Probe:
    """One probe from its resolved options (``diag_catalog.resolve_diagnostics``)."""
    return probe_class(name)(opts, config)


def build_probes(diagnostics: dict[str, dict[str, Any]], config: dict[str, Any]) -> list[_Probe]:
    """Fresh probes (they keep per-run state) for a resolved ``diagnostics`` mapping, in order."""
    return [build_probe(name, opts, config) for name, opts in diagnostics.items()]
