"""DyT, Derf and PowerNorm against their formulas, on (N, C) and token-shaped (N, C, L) inputs."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli

from normbench.norms import make


def _randomise(layer: torch.nn.Module, seed: int = 0) -> None:
    """Move every parameter off its initial value, so a formula that ignores one fails."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.view((1, -1) + (1,) * (ndim - 2))


@pytest.mark.parametrize("shape", [(6, 5), (4, 5, 7)])
def test_dyt_is_gamma_tanh_alpha_x_plus_beta(shape: tuple[int, ...]) -> None:
    layer = make(5, {"kind": "dyt", "alpha_init": 0.7})
    assert float(layer.alpha.detach()) == pytest.approx(0.7) and layer.alpha.numel() == 1
    _randomise(layer)
    x = torch.randn(shape) * 3
    gamma, beta = (_per_channel(t, x.dim()) for t in (layer.affine.weight, layer.affine.bias))
    torch.testing.assert_close(layer(x), gamma * torch.tanh(layer.alpha * x) + beta)


@pytest.mark.parametrize("shape", [(6, 5), (4, 5, 7)])
def test_derf_is_gamma_erf_alpha_x_plus_s_plus_beta(shape: tuple[int, ...]) -> None:
    layer = make(5, "derf")
    assert (float(layer.alpha.detach()), float(layer.shift.detach())) == (0.5, 0.0)
    _randomise(layer)
    x = torch.randn(shape) * 3
    gamma, beta = (_per_channel(t, x.dim()) for t in (layer.affine.weight, layer.affine.bias))
    expected = gamma * torch.erf(layer.alpha * x + layer.shift) + beta
    torch.testing.assert_close(layer(x), expected)
    assert {n for n, _ in layer.named_parameters()} == {
        "alpha",
        "shift",
        "affine.weight",
        "affine.bias",
    }


def _token_scaled(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(1, keepdim=True) + eps)


def test_powernorm_forward_running_statistics_and_eval() -> None:
    eps, a = 1e-5, 0.8
    layer = make(5, {"kind": "power", "warmup_steps": 2, "alpha_fwd": a, "affine": "none"})
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(4, 5, 3, generator=gen) * (i + 1) for i in range(4)]
    phi = torch.ones(5)
    for step, x in enumerate(xs, start=1):
        xt = _token_scaled(x, eps)
        batch = (xt * xt).mean((0, 2))  # quadratic mean per channel over batch and positions
        used = batch if step <= 2 else phi  # the batch's during warm-up, then the running one
        torch.testing.assert_close(layer(x), xt / torch.sqrt(_per_channel(used, 3) + eps))
        if step < 2:
            phi = phi * (step - 1) / step + batch / step
        phi = a * phi + (1 - a) * batch
        torch.testing.assert_close(layer.running_phi, phi)
    layer.eval()
    x = xs[0]
    xt = _token_scaled(x, eps)
    torch.testing.assert_close(layer(x), xt / torch.sqrt(_per_channel(phi, 3) + eps))
    torch.testing.assert_close(layer.running_phi, phi)  # eval leaves it alone


def test_powernorm_backward_is_the_approximate_one_with_its_running_statistic() -> None:
    eps, b = 1e-5, 0.7
    layer = make(
        4,
        {"kind": "power", "alpha_bwd": b, "token_scaling": False, "affine": "none"},
    )
    gen = torch.Generator().manual_seed(2)
    nu = torch.zeros(4)
    for _ in range(3):
        x = torch.randn(8, 4, generator=gen).requires_grad_(True)
        g = torch.randn(8, 4, generator=gen)
        z = layer(x)
        z.backward(g)
        batch = (x.detach() ** 2).mean(0)
        zz = x.detach() / torch.sqrt(batch + eps)
        gt = g - (1 - b) * nu * zz
        torch.testing.assert_close(x.grad, gt / torch.sqrt(batch + eps))
        nu = nu + (gt * zz).mean(0)
        torch.testing.assert_close(layer.ema_gz, nu)
    assert nu.abs().sum() > 0  # the running statistic moved, so the check above has teeth


def test_the_new_norms_are_listed() -> None:
    proc = run_cli("list", "norms")
    assert proc.returncode == 0, proc.stderr
    names = {line.strip() for line in proc.stdout.splitlines() if line and line[0] != " "}
    assert {"dyt", "derf", "power"} <= names
