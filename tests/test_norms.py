"""Tests for the norm registry, validation and every norm layer (formulas checked by hand)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normbench.errors import OptionError
from normbench.models.catalog import MODELS, NORM_LAYOUTS
from normbench.norms import (
    NORMS,
    NormContext,
    check_custom_importable,
    check_norm,
    make,
    norm_rows,
    resolve_norm,
    wrap,
)

C = 8  # channels in every test tensor: small keeps the suite fast on a shared 2-core machine
SHAPES = {2: (6, C), 3: (6, C, 5), 4: (6, C, 3, 4)}

# Options each norm needs to fit C = 8 channels (defaults assume wider layers).
FIT = {
    "group": {"groups": 4},
    "decorrelated_batch": {"group_size": 4},
    "ghost_batch": {"ghost_size": 3},
    "custom": {"target": "normbench.norms.layers:BatchNorm"},
    "cross_norm": {"p": 1.0},
}


def spec_for(name: str, **extra: object) -> dict:
    return resolve_norm({"kind": name, **FIT.get(name, {}), **extra})


def ranks_for(name: str) -> list[int]:
    return [3, 4] if NORMS[name].needs_spatial else [2, 3, 4]


CASES = [(name, rank) for name in NORMS for rank in ranks_for(name)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- registry ------------------------------------------------------------------------------


def test_catalog_does_not_import_torch() -> None:
    code = (
        "import normbench.norms.catalog, normbench.norms, sys; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_registry_entries_are_consistent() -> None:
    for name, entry in NORMS.items():
        assert entry.name == name
        assert set(entry.models) <= set(MODELS) and entry.models
        assert set(entry.layouts) <= set(NORM_LAYOUTS)
        assert entry.summary and ":" in entry.cls
        assert entry.wraps_layer == (name == "weight")
    rows = norm_rows()
    assert [r["name"] for r in rows] == list(NORMS)
    batch = next(r for r in rows if r["name"] == "batch")
    assert "momentum=0.1" in batch["options"] and "affine=per_feature" in batch["options"]
    assert set(rows[0]) == {"name", "models", "layouts", "options", "summary"}


@pytest.mark.parametrize("name", list(NORMS))
def test_resolve_is_idempotent_and_json_safe(name: str) -> None:
    import json

    spec = spec_for(name)
    assert spec["kind"] == name
    assert resolve_norm(spec) == spec
    assert json.loads(json.dumps(spec)) == spec


# --- every norm builds and runs -----------------------------------------------------------


@pytest.mark.parametrize(("name", "rank"), CASES)
def test_forward_backward_eval(name: str, rank: int) -> None:
    module = make(C, spec_for(name))
    x = torch.randn(SHAPES[rank], requires_grad=True)
    y = module(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    module.eval()
    with torch.no_grad():
        y_eval = module(x)
    assert y_eval.shape == x.shape and torch.isfinite(y_eval).all()


@pytest.mark.parametrize("name", list(NORMS))
def test_runs_under_bfloat16_autocast(name: str) -> None:
    # The training loop may run under autocast: a float32 module then sees bf16 activations.
    module = make(C, spec_for(name))
    x = torch.randn(SHAPES[ranks_for(name)[-1]], dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
    y.float().sum().backward()
    assert y.shape == x.shape and torch.isfinite(x.grad).all()
    module.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert torch.isfinite(module(x)).all()


AFFINE_NORMS = [n for n, e in NORMS.items() if "affine" in e.option_map]


@pytest.mark.parametrize("name", AFFINE_NORMS)
@pytest.mark.parametrize("mode", ["none", "per_feature", "linear"])
def test_affine_modes(name: str, mode: str) -> None:
    rank = ranks_for(name)[0]
    x = torch.randn(SHAPES[rank], requires_grad=True)
    module = make(C, spec_for(name, affine=mode))
    n_params = sum(p.numel() for p in module.parameters())
    # Parameters outside the affine step: FRN's TLU threshold τ, DyT's α, Derf's α and shift.
    extra = {"frn": C, "dyt": 1, "derf": 2}.get(name, 0)
    bias = 0 if name == "rms" else C  # RMSNorm has a gain only unless bias: true
    expected = {"none": 0, "per_feature": C + bias, "linear": C * C + bias}[mode] + extra
    assert n_params == expected
    y = module(x)
    y.sum().backward()
    # Every recovery step starts as the identity, so all three modes agree at init.
    torch.manual_seed(1)
    reference = make(C, spec_for(name, affine="none"))
    torch.manual_seed(1)
    again = make(C, spec_for(name, affine=mode))
    torch.manual_seed(2)
    y_ref = reference(x)
    torch.manual_seed(2)
    assert torch.allclose(again(x), y_ref, atol=1e-5)
    assert x.grad is not None


def test_affine_bool_spelling() -> None:
    assert resolve_norm({"kind": "batch", "affine": True})["affine"] == "per_feature"
    assert resolve_norm({"kind": "batch", "affine": False})["affine"] == "none"


# --- standard norms: fast paths equal torch's modules --------------------------------------


def test_batch_is_torch_batchnorm() -> None:
    from torch.nn.modules.batchnorm import _BatchNorm

    module = make(C, "batch")
    assert isinstance(module, _BatchNorm)
    for rank, ref in ((2, nn.BatchNorm1d(C)), (3, nn.BatchNorm1d(C)), (4, nn.BatchNorm2d(C))):
        module, x = make(C, "batch"), torch.randn(SHAPES[rank])
        assert torch.equal(module(x), ref(x))
        assert torch.equal(module.running_var, ref.running_var)
        ref.reset_running_stats()


def test_layer_norm_axes() -> None:
    x = torch.randn(SHAPES[2])
    assert torch.allclose(make(C, "layer")(x), nn.LayerNorm(C)(x), atol=1e-6)
    # Conv inputs: statistics over (C, *spatial) per example, per-channel affine.
    module = make(C, "layer")
    with torch.no_grad():
        module.weight.copy_(torch.randn(C))
        module.bias.copy_(torch.randn(C))
    x = torch.randn(SHAPES[4])
    flat = x.flatten(1)
    z = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(
        flat.var(1, unbiased=False, keepdim=True) + 1e-5
    )
    expected = z.view_as(x) * module.weight.view(1, C, 1, 1) + module.bias.view(1, C, 1, 1)
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_group_and_instance_match_torch() -> None:
    x = torch.randn(SHAPES[4])
    assert torch.allclose(
        make(C, {"kind": "group", "groups": 2})(x), nn.GroupNorm(2, C)(x), atol=1e-6
    )
    ref = nn.InstanceNorm2d(C, affine=True)
    assert torch.allclose(make(C, "instance")(x), ref(x), atol=1e-5)


def test_rms_formula() -> None:
    module = make(C, {"kind": "rms", "bias": True})
    with torch.no_grad():
        module.weight.copy_(torch.randn(C))
        module.bias.copy_(torch.randn(C))
    x = torch.randn(SHAPES[2])
    rms = torch.sqrt(x.square().mean(1, keepdim=True) + 1e-6)
    assert torch.allclose(module(x), x / rms * module.weight + module.bias, atol=1e-5)
    x = torch.randn(SHAPES[3])
    rms = torch.sqrt(x.square().mean((1, 2), keepdim=True) + 1e-6)
    expected = x / rms * module.weight.view(1, C, 1) + module.bias.view(1, C, 1)
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_weight_norm_wraps_layer() -> None:
    assert isinstance(make(C, "weight"), nn.Identity)
    layer = nn.Linear(5, C)
    before = layer.weight.detach().clone()
    x = torch.randn(4, 5)
    y0 = layer(x)
    wrapped = wrap(layer, "weight")
    assert torch.allclose(wrapped(x), y0, atol=1e-6)  # g starts at ‖v‖: same function
    params = wrapped.parametrizations.weight
    g, v = params.original0, params.original1
    assert g.shape == (C, 1)
    assert torch.allclose(g.squeeze(1), before.norm(dim=1))
    with torch.no_grad():
        g.mul_(2.0)
    assert torch.allclose(wrapped.weight, g * v / v.norm(dim=1, keepdim=True))  # w = g·v/‖v‖
    conv = nn.Conv2d(3, C, 3)
    assert wrap(conv, "weight") is conv and hasattr(conv, "parametrizations")
    plain = nn.Linear(5, C)
    assert wrap(plain, "batch") is plain and not hasattr(plain, "parametrizations")


def test_custom_builds_class_with_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_norms.py").write_text(
        textwrap.dedent("""
        import torch
        class Scale(torch.nn.Module):
            def __init__(self, num_features, factor=1.0):
                super().__init__()
                self.num_features, self.factor = num_features, factor
            def forward(self, x):
                return x * self.factor
        VALUE = 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = resolve_norm({"kind": "custom", "target": "my_norms:Scale", "factor": 2.5})
    check_custom_importable(spec)
    module = make(C, spec)
    assert module.num_features == C and module.factor == 2.5
    x = torch.randn(SHAPES[2])
    assert torch.equal(module(x), 2.5 * x)
    with pytest.raises(OptionError, match=r"not a torch\.nn\.Module subclass") as err:
        check_custom_importable(resolve_norm({"kind": "custom", "target": "my_norms:VALUE"}))
    assert err.value.path == ("target",)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:Norm", "cannot import custom norm target 'no_such_module_xyz:Norm'"),
        ("normbench.norms.layers:NoSuchNorm", "has no attribute 'NoSuchNorm'"),
        ("broken_mod_xyz:Norm", "raised ZeroDivisionError"),
    ],
)
def test_custom_import_errors(
    target: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_mod_xyz.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = resolve_norm({"kind": "custom", "target": target})
    with pytest.raises(OptionError, match=message) as err:
        check_custom_importable(spec)
    assert err.value.path == ("target",)


# --- research norms against their formulas --------------------------------------------------


def bn_ref(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    dims = (0, *range(2, x.dim()))
    view = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dims).view(view)
    var = x.var(dims, unbiased=False).view(view)
    return (x - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_batch_reference_equals_torch_batchnorm(rank: int) -> None:
    ours = make(C, "batch_reference")
    ref = nn.BatchNorm2d(C) if rank == 4 else nn.BatchNorm1d(C)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.5)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.5)
    target = torch.randn(SHAPES[rank])
    for _ in range(4):  # several training steps: running stats *and* γ, β move
        x = torch.randn(SHAPES[rank]) * 3 + 1
        y_ours, y_ref = ours(x), ref(x)
        assert torch.allclose(y_ours, y_ref, atol=1e-5)
        for y, opt in ((y_ours, opt_ours), (y_ref, opt_ref)):
            opt.zero_grad()
            F.mse_loss(y, target).backward()
            opt.step()
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-5)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-5)
    assert torch.allclose(ours.affine.weight, ref.weight, atol=1e-5)
    ours.eval()
    ref.eval()
    x = torch.randn(SHAPES[rank])
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_batch_renorm_formula_and_schedule() -> None:
    spec = spec_for(
        "batch_renorm",
        affine="none",
        r_max=2.0,
        d_max=0.5,
        r_max_start=2,
        r_max_end=6,
        d_max_start=0,
        d_max_end=4,
        momentum=0.2,
    )
    module = make(C, spec)
    # Schedule: r_max 1 until step 2, linear to 2 at step 6; d_max 0 → 0.5 over steps 0..4.
    expected = {0: (1.0, 0.0), 2: (1.0, 0.25), 4: (1.5, 0.5), 6: (2.0, 0.5), 9: (2.0, 0.5)}
    for step, (r_lim, d_lim) in expected.items():
        module.num_steps.fill_(step)
        r, d = module.limits()
        assert r.item() == pytest.approx(r_lim) and d.item() == pytest.approx(d_lim)

    module.num_steps.fill_(4)  # limits r_max = 1.5, d_max = 0.5
    mu = torch.randn(C)
    sigma = torch.rand(C) + 0.5
    module.running_mean.copy_(mu)
    module.running_std.copy_(sigma)
    x = (torch.randn(SHAPES[3]) * 2 + 0.3).requires_grad_()
    y = module(x)
    mean_b = x.mean((0, 2))
    std_b = torch.sqrt(x.var((0, 2), unbiased=False) + 1e-5)
    r = (std_b / sigma).clamp(1 / 1.5, 1.5).detach()
    d = ((mean_b - mu) / sigma).clamp(-0.5, 0.5).detach()
    manual = (x - mean_b.view(1, C, 1)) / std_b.view(1, C, 1) * r.view(1, C, 1) + d.view(1, C, 1)
    assert torch.allclose(y, manual, atol=1e-5)
    assert (r == 1.5).any() or (r == 1 / 1.5).any() or (d.abs() == 0.5).any()  # clipping hit
    # r and d carry no gradient: backprop matches the detached manual formula.
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gm,) = torch.autograd.grad(manual, x, g)
    assert torch.allclose(gx, gm, atol=1e-5)
    assert module.num_steps.item() == 5
    assert torch.allclose(module.running_mean, mu + 0.2 * (mean_b.detach() - mu), atol=1e-6)
    assert torch.allclose(module.running_std, sigma + 0.2 * (std_b.detach() - sigma), atol=1e-6)
    # Eval: running statistics, and the step counter stays put.
    module.eval()
    x = torch.randn(SHAPES[3])
    expected_eval = (x - module.running_mean.view(1, C, 1)) / module.running_std.view(1, C, 1)
    assert torch.allclose(module(x), expected_eval, atol=1e-6)
    assert module.num_steps.item() == 5


def test_batch_renorm_starts_as_batch_norm() -> None:
    module = make(C, spec_for("batch_renorm", affine="none"))
    x = torch.randn(SHAPES[2]) * 5
    assert torch.allclose(module(x), bn_ref(x), atol=1e-5)  # r_max = 1, d_max = 0 at step 0


def test_noisy_batch_follows_algorithm_1() -> None:
    spec = spec_for("noisy_batch", affine="none")
    module = make(C, spec)
    x = torch.randn(SHAPES[4])
    torch.manual_seed(123)
    y = module(x)
    # Replay the draws in the same order from the same seed.
    torch.manual_seed(123)
    a = bn_ref(x)
    mu = (torch.rand(C) * 2 - 1) * 0.5
    sigma = 1.0 + 0.25 * torch.rand(C)
    m = mu.view(1, C, 1, 1) + (torch.rand_like(a) * 2 - 1) * 0.1
    s = sigma.view(1, C, 1, 1) + torch.randn_like(a) * 0.1
    assert torch.allclose(y, s * a + m, atol=1e-5)
    assert mu.abs().max() <= 0.5 and (sigma >= 1).all() and (sigma <= 1.25).all()
    # Noise is per sample and position (H, W treated as batch), not shared.
    assert not torch.allclose(y[0], y[1])
    module.eval()
    assert torch.equal(module(x), module.bn(x))  # no noise in eval


def test_noisy_batch_is_deterministic_with_a_seed() -> None:
    x = torch.randn(SHAPES[2])
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        module = make(C, "noisy_batch")
        outs.append(module(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize("p", [1, 2, "inf"])
def test_lp_batch_formula(p: int | str) -> None:
    module = make(C, spec_for("lp_batch", p=p, affine="none", momentum=0.5))
    x = torch.randn(SHAPES[3]) * 2 + 1
    y = module(x)
    mean = x.mean((0, 2), keepdim=True)
    c = x - mean
    if p == 1:
        scale = c.abs().mean((0, 2), keepdim=True) + 1e-5
    elif p == 2:
        scale = torch.sqrt(c.square().mean((0, 2), keepdim=True) + 1e-5)
    else:
        scale = c.abs().amax((0, 2), keepdim=True) + 1e-5
    assert torch.allclose(y, c / scale, atol=1e-5)
    if p == 2:
        assert torch.allclose(y, bn_ref(x), atol=1e-5)  # ℓ2 is batch norm
    assert torch.allclose(module.running_mean, 0.5 * mean.flatten())
    assert torch.allclose(module.running_scale, 0.5 + 0.5 * scale.flatten())
    module.eval()
    x2 = torch.randn(SHAPES[3])
    expected = (x2 - module.running_mean.view(1, C, 1)) / module.running_scale.view(1, C, 1)
    assert torch.allclose(module(x2), expected, atol=1e-6)


@pytest.mark.parametrize("p", [1, 2, 2.0, "2", "inf", float("inf"), "INF"])
def test_lp_batch_p_spellings(p: object) -> None:
    assert resolve_norm({"kind": "lp_batch", "p": p})["p"] in (1, 2, "inf")


def test_frn_formula() -> None:
    module = make(C, "frn")
    with torch.no_grad():
        module.affine.weight.copy_(torch.randn(C))
        module.affine.bias.copy_(torch.randn(C))
        module.tau.copy_(torch.randn(C) * 0.1)
    x = torch.randn(SHAPES[4])
    nu2 = x.square().mean((2, 3), keepdim=True)
    view = (1, C, 1, 1)
    y = module.affine.weight.view(view) * x / torch.sqrt(nu2 + 1e-6) + module.affine.bias.view(view)
    assert torch.allclose(module(x), torch.maximum(y, module.tau.view(view)), atol=1e-5)
    no_tlu = make(C, {"kind": "frn", "tlu": False, "affine": "none"})
    assert torch.allclose(no_tlu(x), x / torch.sqrt(nu2 + 1e-6), atol=1e-6)
    with pytest.raises(ValueError, match="spatial"):
        module(torch.randn(SHAPES[2]))


def test_mean_only_batch_formula() -> None:
    module = make(C, spec_for("mean_only_batch", momentum=0.25))
    with torch.no_grad():
        module.bias.copy_(torch.randn(C))
    x = torch.randn(SHAPES[4]) + 2
    mean = x.mean((0, 2, 3))
    assert torch.allclose(
        module(x), x - mean.view(1, C, 1, 1) + module.bias.view(1, C, 1, 1), atol=1e-6
    )
    assert torch.allclose(module.running_mean, 0.25 * mean)
    module.eval()
    expected = x - module.running_mean.view(1, C, 1, 1) + module.bias.view(1, C, 1, 1)
    assert torch.allclose(module(x), expected, atol=1e-6)


@pytest.mark.parametrize("n", [6, 7])  # 6 = two ghost batches of 3; 7 leaves a chunk of 1
def test_ghost_batch_normalises_each_chunk(n: int) -> None:
    module = make(C, spec_for("ghost_batch", ghost_size=3, affine="none"))
    x = torch.randn(n, C, 4) * 2 + 1
    y = module(x)
    chunks = list(x.split(3))
    assert torch.allclose(y, torch.cat([bn_ref(c) for c in chunks]), atol=1e-5)
    means = torch.stack([c.mean((0, 2)) for c in chunks]).mean(0)
    variances = torch.stack([c.var((0, 2), unbiased=True) for c in chunks]).mean(0)
    assert torch.allclose(module.running_mean, 0.1 * means, atol=1e-6)
    assert torch.allclose(module.running_var, 0.9 + 0.1 * variances, atol=1e-5)
    module.eval()
    expected = (x - module.running_mean.view(1, C, 1)) / torch.sqrt(
        module.running_var.view(1, C, 1) + 1e-5
    )
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_cross_norm_swaps_statistics_between_pairs() -> None:
    from normbench.norms.research import CrossNorm

    for n in (6, 7):
        partner = CrossNorm.pairing(n)
        assert torch.equal(partner[partner], torch.arange(n))  # an involution
        assert (partner != torch.arange(n)).sum() == 2 * (n // 2)
    module = make(C, spec_for("cross_norm", p=1.0))
    x = torch.randn(SHAPES[4]) * (torch.rand(6, 1, 1, 1) * 3) + torch.randn(6, 1, 1, 1)
    torch.manual_seed(5)
    y = module(x)
    torch.manual_seed(5)
    torch.rand(())
    partner = CrossNorm.pairing(6)
    mean = x.mean((2, 3), keepdim=True)
    std = torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(y, (x - mean) / std * std[partner] + mean[partner], atol=1e-5)
    # Each example now carries its partner's channel statistics (up to ε).
    assert torch.allclose(y.mean((2, 3)), mean[partner].flatten(1), atol=1e-5)
    assert torch.allclose(y.std((2, 3), unbiased=False), std[partner].flatten(1), rtol=1e-3)
    module.eval()
    assert torch.equal(module(x), x)
    never = make(C, spec_for("cross_norm", p=0.0))
    assert torch.equal(never(x), x)


def test_decorrelated_batch_whitens_each_group() -> None:
    import scipy.linalg

    module = make(C, spec_for("decorrelated_batch", group_size=4, affine="none", eps=1e-5))
    mix = torch.randn(C, C)
    x = (torch.randn(64, C) @ mix.T).view(16, 4, C).transpose(1, 2) + 2.0  # (16, C, 4)
    x = x.double()
    module.double()
    y = module(x)
    cols = y.transpose(0, 1).reshape(C, -1)
    for g in range(2):
        block = cols[4 * g : 4 * g + 4]
        cov = block @ block.T / block.shape[1]
        assert torch.allclose(cov, torch.eye(4, dtype=cov.dtype), atol=1e-3)
        assert block.mean(1).abs().max() < 1e-8
    # ZCA: W = Σ^(−1/2) exactly (symmetric), checked against scipy.
    xs = x.transpose(0, 1).reshape(C, -1).numpy()[:4]
    xc = xs - xs.mean(1, keepdims=True)
    sigma = xc @ xc.T / xc.shape[1] + 1e-5 * np.eye(4)
    w = np.real(scipy.linalg.inv(scipy.linalg.sqrtm(sigma)))
    assert np.allclose(w @ xc, cols[:4].detach().numpy(), atol=1e-6)
    assert np.allclose(module.running_whiten[0].numpy(), 0.9 * np.eye(4) + 0.1 * w, atol=1e-8)
    module.eval()
    x2 = torch.randn(5, C, 4, dtype=torch.double)
    xs2 = x2.transpose(0, 1).reshape(2, 4, -1) - module.running_mean.view(2, 4, 1)
    expected = (module.running_whiten @ xs2).reshape(C, 5, 4).transpose(0, 1)
    assert torch.allclose(module(x2), expected)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ("batchnrom", (), "unknown norm 'batchnrom' — did you mean 'batch'?"),
        ({"kind": "grup"}, ("kind",), "did you mean 'group'?"),
        ({"groups": 8}, (), "needs 'kind'"),
        (3, (), "a name or a mapping"),
        (
            {"kind": "group", "grups": 8},
            ("grups",),
            "unknown norm 'group' option 'grups' — did you mean 'groups'?",
        ),
        ({"kind": "group", "groups": "eight"}, ("groups",), "must be an integer"),
        ({"kind": "group", "groups": True}, ("groups",), "must be an integer"),
        ({"kind": "group", "groups": 0}, ("groups",), "int or auto >= 1"),
        ({"kind": "batch", "momentum": 1.5}, ("momentum",), "<= 1"),
        ({"kind": "batch", "eps": 0}, ("eps",), "float > 0"),
        ({"kind": "batch", "eps": "tiny"}, ("eps",), "must be a number, got 'tiny'"),
        ({"kind": "batch", "affine": "full"}, ("affine",), "none, per_feature, linear"),
        (
            {"kind": "batch", "track_running_stats": "yes"},
            ("track_running_stats",),
            "true or false",
        ),
        ({"kind": "lp_batch", "p": 3}, ("p",), "one of 1, 2, inf"),
        ({"kind": "none", "eps": 1e-5}, ("eps",), "takes no options"),
        ({"kind": "custom"}, (), "needs option 'target'"),
        ({"kind": "custom", "target": "not a target"}, ("target",), "package.module:Class"),
        ({"kind": "custom", "target": "a:B", "bad-name": 1}, ("bad-name",), "identifiers"),
        ({"kind": "batch_renorm", "r_max_start": 10, "r_max_end": 5}, ("r_max_end",), "before"),
        ({"kind": "batch_renorm", "r_max": 0.5}, ("r_max",), ">= 1"),
    ],
)
def test_bad_options(value: object, path: tuple, message: str) -> None:
    with pytest.raises(OptionError) as err:
        resolve_norm(value)  # type: ignore[arg-type]
    assert err.value.path == path
    assert message in err.value.message


def test_check_norm_accepts_unresolved_names() -> None:
    check_norm("layer", ctx(batch_size=1))
    with pytest.raises(OptionError, match="batch statistics undefined"):
        check_norm("batch_renorm", ctx(batch_size=1))


def test_yaml_style_numbers_are_accepted() -> None:
    assert resolve_norm({"kind": "batch", "eps": "1e-3"})["eps"] == 1e-3
    assert resolve_norm({"kind": "group", "groups": 4.0})["groups"] == 4


def ctx(
    model: str = "mlp", widths: tuple[int, ...] = (16, 16), spatial: int = 0, batch_size: int = 32
) -> NormContext:
    return NormContext(
        model=model, widths=widths, spatial=spatial, batch_size=batch_size, placement="pre"
    )


@pytest.mark.parametrize(
    ("spec", "context", "path", "message"),
    [
        ({"kind": "group", "groups": 3}, ctx(widths=(12, 16)), ("groups",), "but not 16"),
        ({"kind": "group", "groups": 3}, ctx(widths=(12, 18)), None, None),
        ({"kind": "instance"}, ctx(), (), "cnn models only, not mlp"),
        ({"kind": "frn"}, ctx(model="rnn"), (), "spatial axis"),
        ({"kind": "cross_norm"}, ctx(), (), "cnn"),
        ({"kind": "instance"}, ctx(model="cnn", spatial=1), None, None),
        ({"kind": "batch"}, ctx(batch_size=1), (), "batch statistics undefined"),
        ({"kind": "decorrelated_batch"}, ctx(batch_size=1), (), "batch statistics undefined"),
        ({"kind": "layer"}, ctx(batch_size=1), None, None),
        (
            {"kind": "ghost_batch", "ghost_size": 16},
            ctx(batch_size=60),
            ("ghost_size",),
            "must divide batch_size 60",
        ),
        ({"kind": "ghost_batch", "ghost_size": 1}, ctx(batch_size=60), ("ghost_size",), ">= 2"),
        ({"kind": "ghost_batch", "ghost_size": 20}, ctx(batch_size=60), None, None),
        ({"kind": "decorrelated_batch"}, ctx(widths=(100,)), ("group_size",), "but not 100"),
        ({"kind": "decorrelated_batch", "group_size": 4}, ctx(widths=(100,)), None, None),
    ],
)
def test_check_norm(
    spec: dict, context: NormContext, path: tuple | None, message: str | None
) -> None:
    if path is None:
        check_norm(resolve_norm(spec), context)
        return
    with pytest.raises(OptionError) as err:
        check_norm(resolve_norm(spec), context)
    assert err.value.path == path
    assert message in err.value.message
