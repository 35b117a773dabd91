"""Diagnostics: stored structures, reference computations, no side effects, validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from normbench.cli import app
from normbench.spec import load_suite
from normbench.train import probes as P
from normbench.train.diag_catalog import DIAGNOSTICS
from normbench.train.loop import ProbeContext, loss_function, run_variant, to_tensors
from normbench.train.optim import make_optimizer

runner = CliRunner()

SUITE = """\
name: diag
dataset:
  name: {dataset}
model:
  kind: {kind}
  {shape}
  activation: sigmoid
  norm: {norm}
  placement: {placement}
training:
  optimizer: {optimizer}
  lr: 0.05
  batch_size: 16
  steps: {steps}
  eval_every: {eval_every}
  eval_batch_size: 50
  profile_steps: 0
  seeds: 1
  device: cpu
diagnostics: {diagnostics}
"""

SHAPES = {"mlp": "hidden: [8, 8, 8]", "cnn": "channels: [4, 4]", "rnn": "hidden: 6\n  layers: 2"}


def make_split(layout: str = "vector", n_train: int = 192, n_test: int = 100) -> SimpleNamespace:
    """A small 3-class problem as numpy arrays (a DataSplit look-alike)."""
    rng = np.random.default_rng(0)
    shape = {"vector": (12,), "sequence": (1, 12), "rnn": (6, 2)}[layout]
    y = rng.integers(0, 3, n_train + n_test)
    x = rng.normal(size=(n_train + n_test, *shape)).astype(np.float32)
    x.reshape(len(x), -1)[:, :3] += 2.0 * np.eye(3, dtype=np.float32)[y]  # learnable signal
    return SimpleNamespace(
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        task="classification",
        num_outputs=3,
        layout="vector" if layout == "vector" else "sequence",
    )


def resolved(
    tmp_path: Path,
    diagnostics: Any,
    kind: str = "mlp",
    norm: str = "batch",
    placement: str = "pre",
    optimizer: str = "momentum",
    steps: int = 30,
    eval_every: int = 10,
) -> dict[str, Any]:
    """One variant's resolved config, through the real suite loader."""
    dataset = (
        "synthetic-blobs" if kind == "mlp" else "mnist1d"
    )  # only validated: tests bring their data
    text = SUITE.format(
        dataset=dataset,
        kind=kind,
        shape=SHAPES[kind],
        norm=norm,
        placement=placement,
        optimizer=optimizer,
        steps=steps,
        eval_every=eval_every,
        diagnostics=json.dumps(diagnostics),
    )
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    (variant,) = load_suite(path).variants
    return variant.config


def run(config: dict[str, Any], split: SimpleNamespace, seed: int = 0) -> dict[str, Any]:
    probes = P.build_probes(config["diagnostics"], config) if config["diagnostics"] else None
    record = run_variant(config, seed, split, probes=probes)
    assert record["status"] == "ok", record["error"]
    return record


def context(
    config: dict[str, Any], split: SimpleNamespace, steps: int = 3, optimizer: bool = True
) -> ProbeContext:
    """A model trained for a few steps, with its optimizer, wrapped as the loop's ProbeContext."""
    from normbench.models import build

    torch.manual_seed(0)
    data = to_tensors(split, torch.device("cpu"))
    model = build(config["model"], tuple(data.x_train.shape[1:]), data.num_outputs)
    opt = make_optimizer(model.parameters(), config["training"])
    loss_fn = loss_function(True)
    for k in range(steps):
        xb, yb = data.x_train[16 * k : 16 * (k + 1)], data.y_train[16 * k : 16 * (k + 1)]
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    return ProbeContext(
        model, data, loss_fn, config["training"]["lr"], config, 0, opt if optimizer else None
    )


def backward_on(ctx: ProbeContext, start: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Leave a fresh gradient on the model, as the loop does before ``after_backward``."""
    xb, yb = ctx.data.x_train[start : start + 16], ctx.data.y_train[start : start + 16]
    ctx.model.zero_grad(set_to_none=True)
    ctx.loss_fn(ctx.model(xb), yb).backward()
    return xb, yb


def state_of(ctx: ProbeContext) -> dict[str, Any]:
    """Everything a probe must not touch: parameters, buffers, gradients, optimizer state."""
    return {
        "model": {k: v.clone() for k, v in ctx.model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in ctx.model.parameters()],
        "optim": copy.deepcopy(ctx.optimizer.state_dict()) if ctx.optimizer else None,
        "rng": torch.get_rng_state(),
        "training": ctx.model.training,
    }


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor):
            return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list | tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return a == b

    for key in before:
        assert same(before[key], after[key]), f"the probe changed the {key}"


# --- structures ----------------------------------------------------------------------------------


def test_every_diagnostic_stores_its_structure(tmp_path: Path) -> None:
    names = ["activations", "grad_norms", "ics", "landscape", "eval_gap", "shift", "layer_stats"]
    record = run(resolved(tmp_path, names), make_split())
    json.dumps(record, allow_nan=False)  # storable as is
    d = record["diagnostics"]
    assert list(d) == names

    act = d["activations"]
    assert (
        act["step"] == [0, 10, 20, 30] and act["layer"] == 2 and act["percentiles"] == [15, 50, 85]
    )
    assert [len(v) for v in act["values"]] == [3] * 4 and [len(v) for v in act["unit_values"]] == [
        3
    ] * 4
    assert all(v[0] <= v[1] <= v[2] for v in act["values"])

    grads = d["grad_norms"]
    assert grads["step"] == [1, 10, 20, 30]
    assert grads["layers"][0] == "blocks.0.layer.weight" and grads["layers"][-1] == "head.bias"
    assert [len(v) for v in grads["values"]] == [len(grads["layers"])] * 4

    ics = d["ics"]
    assert ics["step"] == [1, 10, 20, 30] and ics["layers"] == ["blocks.0", "blocks.1", "blocks.2"]
    assert [len(v) for v in ics["l2"]] == [3] * 4 and [len(v) for v in ics["cosine"]] == [3] * 4
    assert ics["update"] == "optimizer"

    land = d["landscape"]
    assert land["step"] == [1, 10, 20, 30] and len(land["eta"]) == 8
    assert land["eta"][0] == 0.5 and land["eta"][-1] == 4.0
    assert len(land["loss_range"]) == len(land["grad_pred"]) == len(land["beta_smoothness"]) == 4
    assert all(lo <= hi for lo, hi in land["loss_range"] + land["grad_pred"])

    gap = d["eval_gap"]
    for key in ("acc_running_stats", "acc_batch_stats", "acc_precise_stats"):
        assert 0.0 <= gap[key] <= 1.0
    assert gap["notes"] == [] and gap["batch_size"] == 16 and gap["precise_samples"] == 192

    metric_names = {m.name for diag in DIAGNOSTICS.values() for m in diag.metrics}
    assert metric_names <= set(record["metrics"])
    # The single-domain metrics apply to two-domain data only: null here, never missing;
    # so are the attention metrics without attention (this MLP).
    two_domain_only = {"acc_domain_batch_stats", "domain_eval_gap"}
    attention_only = {"attn_logit_max_final", "attn_logit_max_peak"}
    absent = two_domain_only | attention_only
    assert all(record["metrics"][m] is not None for m in metric_names - absent)
    assert all(record["metrics"][m] is None for m in absent)
    stats = d["layer_stats"]
    assert stats["step"] == [0, 10, 20, 30] and [len(r) for r in stats["rms"]] == [3] * 4
    assert len(stats["init_grad_norms"]) == 3 and stats["attn_logit_max"] == [[]] * 4


def test_every_option_sets_the_cadence(tmp_path: Path) -> None:
    diags = {"activations": {"every": 7}, "grad_norms": {"every": 7}, "landscape": {"points": 2}}
    d = run(resolved(tmp_path, diags), make_split())["diagnostics"]
    assert d["activations"]["step"] == [0, 7, 14, 21, 28, 30]  # and the final state
    assert d["grad_norms"]["step"] == [1, 7, 14, 21, 28]
    assert d["landscape"]["step"] == [1, 10, 20, 30]


@pytest.mark.parametrize(
    ("kind", "norm", "placement"),
    [("cnn", "batch", "post"), ("rnn", "layer", "pre"), ("mlp", "weight", "pre")],
)
def test_diagnostics_work_for_every_model_family(
    tmp_path: Path, kind: str, norm: str, placement: str
) -> None:
    config = resolved(
        tmp_path,
        {"activations": None, "ics": None, "landscape": {"points": 2}},
        kind=kind,
        norm=norm,
        placement=placement,
        steps=4,
        eval_every=2,
    )
    split = make_split({"mlp": "vector", "cnn": "sequence", "rnn": "rnn"}[kind])
    d = run(config, split)["diagnostics"]
    assert d["activations"]["step"] == [0, 2, 4]
    assert len(d["ics"]["l2"]) == 3 and d["ics"]["l2"][0][0] == 0.0
    assert all(v is not None for row in d["ics"]["l2"] for v in row)
    assert all(b is not None for b in d["landscape"]["beta_smoothness"])


# --- activations --------------------------------------------------------------------------------


def test_percentiles_match_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    q = [0, 2.5, 15, 33.3, 50, 85, 100]
    for n in (1, 2, 7, 1000):
        x = torch.randn(n, generator=gen)
        expected = np.percentile(x.numpy(), q)
        np.testing.assert_allclose(P.percentiles(x, q).numpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(
            P.sorted_percentiles(x, q).numpy(), expected, rtol=1e-6
        )  # the GPU path
    for fn in (P.percentiles, P.sorted_percentiles):
        assert fn(torch.tensor([1.0, float("nan")]), [50]).isnan().all()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_activation_percentiles_are_those_of_the_sigmoid_input(tmp_path: Path, mode: str) -> None:
    config = resolved(tmp_path, {"activations": {"layer": 1, "mode": mode, "probe_size": 40}})
    ctx = context(config, make_split())
    probe = P.build_probes(config["diagnostics"], config)[0]
    probe.backward_steps(10, 10)
    before = state_of(ctx)
    probe.on_eval(0, ctx)
    assert_same_state(before, state_of(ctx))  # BN running statistics restored in train mode
    data, metrics = probe.result(ctx, {})
    act = data["activations"]

    # The same probe batch and the input of block 1's sigmoid, computed by hand on a copy.
    idx = torch.randperm(100, generator=torch.Generator().manual_seed(P.ACTIVATIONS_SEED))[:40]
    twin = copy.deepcopy(ctx.model).train(mode == "train")
    with torch.no_grad():
        h = twin.blocks[0](ctx.data.x_test[idx])
        z = twin.blocks[1].norm(twin.blocks[1].layer(h)).numpy()  # pre placement: Linear → BN → σ
    np.testing.assert_allclose(
        act["values"][0], np.percentile(z, [15, 50, 85]), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        act["unit_values"][0], np.percentile(z[:, 0], [15, 50, 85]), rtol=1e-6, atol=1e-7
    )
    assert act["step"] == [0] and act["layer"] == 1 and act["mode"] == mode
    assert metrics["act_p50_final"] == pytest.approx(np.percentile(z, 50))
    assert metrics["act_spread_final"] == pytest.approx(np.percentile(z, 85) - np.percentile(z, 15))
    assert metrics["act_p50_drift"] == 0.0


# --- internal covariate shift ------------------------------------------------------------------


def test_ics_is_zero_for_the_first_block_and_leaves_the_real_model_alone(tmp_path: Path) -> None:
    config = resolved(tmp_path, ["ics"], optimizer="momentum")
    ctx = context(config, make_split())
    xb, yb = backward_on(ctx)
    before = state_of(ctx)
    rows, rule = P.internal_covariate_shift(
        ctx.model, ctx.optimizer, config["training"], 0.05, ctx.loss_fn, xb, yb, [0, 1, 2]
    )
    assert_same_state(before, state_of(ctx))
    assert rule == "optimizer" and rows.shape == (3, 2)
    assert rows[0].tolist() == [0.0, 1.0]
    assert (rows[1:, 0] > 0).all() and (rows[1:, 1] < 1).all()


def test_ics_matches_a_hand_computation_with_plain_sgd(tmp_path: Path) -> None:
    config = resolved(tmp_path, ["ics"], optimizer="sgd")
    ctx = context(config, make_split())
    xb, yb = backward_on(ctx)
    rows, _ = P.internal_covariate_shift(
        ctx.model, ctx.optimizer, config["training"], 0.05, ctx.loss_fn, xb, yb, [0, 2]
    )
    # G for block 2, then blocks 0 and 1 take θ ← θ − lr·g and G′ is measured again.
    twin = copy.deepcopy(ctx.model)
    twin.zero_grad(set_to_none=True)
    ctx.loss_fn(twin(xb), yb).backward()
    g = torch.cat([p.grad.flatten() for p in P.block_weights(twin.blocks[2])])
    with torch.no_grad():
        for block in twin.blocks[:2]:
            for p in block.parameters():
                p -= 0.05 * p.grad
    twin.zero_grad(set_to_none=True)
    ctx.loss_fn(twin(xb), yb).backward()
    g1 = torch.cat([p.grad.flatten() for p in P.block_weights(twin.blocks[2])])
    assert rows[1, 0].item() == pytest.approx((g - g1).norm().item(), rel=1e-5)
    assert rows[1, 1].item() == pytest.approx(
        torch.nn.functional.cosine_similarity(g, g1, 0).item(), rel=1e-6
    )


# --- landscape ----------------------------------------------------------------------------------


def test_landscape_is_evaluation_only_bitwise(tmp_path: Path) -> None:
    config = resolved(tmp_path, ["landscape"], optimizer="adam")
    ctx = context(config, make_split())
    xb, yb = backward_on(ctx)
    before = state_of(ctx)
    rows = P.loss_landscape(ctx.model, ctx.loss_fn, xb, yb, 0.05, [0.5, 4.0])
    assert_same_state(before, state_of(ctx))
    assert rows.shape == (2, 3) and torch.isfinite(rows).all()

    # One point by hand: L(θ − ηg) on a copy, g the gradient the loop left on the model.
    twin = copy.deepcopy(ctx.model)  # (a deep copy has no .grad)
    with torch.no_grad():
        for p, real in zip(twin.parameters(), ctx.model.parameters(), strict=True):
            p -= 0.5 * 0.05 * real.grad
    assert rows[0, 0].item() == pytest.approx(ctx.loss_fn(twin(xb), yb).item(), rel=1e-5)
    g_norm = torch.cat([p.grad.flatten() for p in ctx.model.parameters()]).norm()
    assert rows[0, 2].item() == pytest.approx(
        rows[0, 1].item() / (0.5 * 0.05 * g_norm.item()), rel=1e-5
    )


def test_landscape_probe_leaves_the_training_run_unchanged(tmp_path: Path) -> None:
    """Probes see the real optimizer and model mid-run; the trained result must not move."""
    split = make_split()
    plain = run(resolved(tmp_path, []), split)
    probed = run(
        resolved(
            tmp_path,
            {"landscape": {"points": 2}, "ics": None, "grad_norms": None, "activations": None},
        ),
        split,
    )
    assert probed["curves"]["train_loss"] == plain["curves"]["train_loss"]
    assert probed["curves"]["test_acc"] == plain["curves"]["test_acc"]


# --- eval gap -----------------------------------------------------------------------------------


def test_precise_stats_are_the_mean_of_the_batch_statistics(tmp_path: Path) -> None:
    config = resolved(tmp_path, ["eval_gap"])
    ctx = context(config, make_split())
    bn = ctx.model.blocks[0].norm
    with torch.no_grad():
        bn.running_mean.fill_(123.0)  # whatever was there before must not matter
    before = state_of(ctx)
    x = ctx.data.x_train[:10]
    twin = P.precise_stats_model(
        ctx.model, x, 4
    )  # two whole batches of 4; the remainder is dropped
    assert_same_state(before, state_of(ctx))
    with torch.no_grad():
        a = [ctx.model.blocks[0].layer(x[i : i + 4]) for i in (0, 4)]
    mean = torch.stack([t.mean(0) for t in a]).mean(0)
    var = torch.stack([t.var(0, unbiased=True) for t in a]).mean(0)
    torch.testing.assert_close(twin.blocks[0].norm.running_mean, mean)
    torch.testing.assert_close(twin.blocks[0].norm.running_var, var)
    assert not twin.training


def test_eval_gap_reports_non_finite_running_stats_as_null(tmp_path: Path) -> None:
    config = resolved(tmp_path, ["eval_gap"])
    ctx = context(config, make_split())
    with torch.no_grad():
        ctx.model.blocks[1].norm.running_var.fill_(float("nan"))
    (probe,) = P.build_probes(config["diagnostics"], config)
    data, metrics = probe.result(ctx, {})
    gap = data["eval_gap"]
    assert gap["acc_running_stats"] is None and metrics["eval_gap"] is None
    assert len(gap["notes"]) == 1 and gap["notes"][0].startswith("running_stats: non-finite")
    assert 0 <= gap["acc_batch_stats"] <= 1 and 0 <= gap["acc_precise_stats"] <= 1
    assert ctx.model.blocks[1].norm.running_var.isnan().all()  # reported, not repaired


# --- shift, determinism ---------------------------------------------------------------------------


def test_identity_shift_equals_the_final_test_accuracy(tmp_path: Path) -> None:
    record = run(resolved(tmp_path, {"shift": {"scale": 1, "offset": 0}}), make_split())
    assert record["metrics"]["shift_test_acc"] == record["metrics"]["final_test_acc"]
    assert record["metrics"]["shift_drop"] == 0.0
    assert record["diagnostics"]["shift"]["clean_test_acc"] == record["metrics"]["final_test_acc"]


def test_runs_with_diagnostics_are_deterministic_and_do_not_perturb_noise(tmp_path: Path) -> None:
    # Noisy BN draws from the global RNG: the probes' own forwards must not advance it.
    diags = {
        "activations": None,
        "grad_norms": None,
        "ics": None,
        "landscape": {"points": 2},
        "eval_gap": None,
        "shift": None,
    }
    split = make_split()
    first = run(resolved(tmp_path, diags, norm="noisy_batch", steps=20), split)
    second = run(resolved(tmp_path, diags, norm="noisy_batch", steps=20), split)
    plain = run(resolved(tmp_path, [], norm="noisy_batch", steps=20), split)
    assert first["diagnostics"] == second["diagnostics"]
    assert (
        first["curves"]["train_loss"]
        == second["curves"]["train_loss"]
        == plain["curves"]["train_loss"]
    )
    timing_free = {
        k: v
        for k, v in first["metrics"].items()
        if "ms" not in k and "sec" not in k and "memory" not in k and "rss" not in k
    }
    assert timing_free == {k: second["metrics"][k] for k in timing_free}


# --- validation ---------------------------------------------------------------------------------

VALID = """\
name: v
dataset:
  name: synthetic-blobs
model:
  kind: mlp
  hidden: [8, 8]
  norm: {norm}
training:
  steps: 10
diagnostics:
{diagnostics}
"""

# (norm, diagnostics block, key path, words in the message, the line the error must point at)
BAD = [
    (
        "batch",
        "  activations:\n    layer: 2",
        "diagnostics.activations.layer",
        "layer 2 does not exist",
        "layer: 2",
    ),
    (
        "batch",
        "  ics:\n    layers: [0, -3]",
        "diagnostics.ics.layers[1]",
        "layer -3 does not exist",
        "layers:",
    ),
    (
        "batch",
        "  landscape:\n    points: 0",
        "diagnostics.landscape.points",
        "η grid would be empty",
        "points:",
    ),
    (
        "batch",
        "  landscape:\n    eta_min: -0.5",
        "diagnostics.landscape.eta_min",
        "must be positive",
        "eta_min:",
    ),
    (
        "batch",
        "  landscape:\n    eta_max: 0",
        "diagnostics.landscape.eta_max",
        "must be positive",
        "eta_max:",
    ),
    (
        "batch",
        "  landscape:\n    eta_min: 4\n    eta_max: 1",
        "diagnostics.landscape.eta_min",
        "must not exceed",
        "eta_min:",
    ),
    (
        "batch",
        "  activations:\n    percentiles: [15, 101]",
        "diagnostics.activations.percentiles",
        "between 0 and 100, got 101",
        "percentiles:",
    ),
    (
        "batch",
        "  activations:\n    percentiles: []",
        "diagnostics.activations.percentiles",
        "at least one",
        "percentiles:",
    ),
    ("none", "  eval_gap: {}", "diagnostics.eval_gap", "norm 'none' keeps none", "eval_gap:"),
    (
        "layer",
        "  - grad_norms\n  - eval_gap",
        "diagnostics[1]",
        "norm 'layer' keeps none",
        "- eval_gap",
    ),
    (
        "batch",
        "  activations:\n    layr: 1",
        "diagnostics.activations.layr",
        "did you mean 'layer'",
        "layr:",
    ),
    ("batch", "  - grad_norm", "diagnostics[0]", "did you mean 'grad_norms'", "- grad_norm"),
]


@pytest.mark.parametrize(
    ("norm", "diagnostics", "where", "words", "at"), BAD, ids=[b[2] for b in BAD]
)
def test_validate_refuses_bad_diagnostic_options(
    tmp_path: Path, norm: str, diagnostics: str, where: str, words: str, at: str
) -> None:
    text = VALID.format(norm=norm, diagnostics=diagnostics)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith(at))
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"{path}:{line}: {where}: " in message and words in message


def test_validate_accepts_every_diagnostic_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        VALID.format(norm="batch", diagnostics="\n".join(f"  - {d}" for d in DIAGNOSTICS))
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_list_metrics_shows_the_diagnostics_metrics() -> None:
    result = runner.invoke(app, ["list", "metrics"])
    assert result.exit_code == 0
    for diag in DIAGNOSTICS.values():
        for metric in diag.metrics:
            assert metric.name in result.output
