"""The loop's fast paths compute exactly what the plain module calls compute."""

from __future__ import annotations

import copy

import pytest
import torch

from normbench.models import build
from normbench.norms.catalog import resolve_norm


def mlp(norm: str, placement: str = "pre", residual: bool = False) -> torch.nn.Module:
    cfg = {
        "kind": "mlp",
        "hidden": [16, 16],
        "activation": "sigmoid",
        "norm": resolve_norm(norm),
        "placement": placement,
        "init": "default",
        "init_std": 0.01,
        "residual": residual,
    }
    torch.manual_seed(0)
    return build(cfg, (12,), 3)


@pytest.mark.parametrize(
    "norm, placement", [("none", "pre"), ("batch", "pre"), ("batch", "post"), ("layer", "post")]
)
def test_direct_block_path_equals_the_block_modules(norm: str, placement: str) -> None:
    fast = mlp(norm, placement)
    slow = copy.deepcopy(fast)
    # A hook on a block switches that model to the Block modules' own forward.
    calls = []
    slow.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(32, 12)
    for model in (fast, slow):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(model(x), torch.arange(32) % 3)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert calls, "the hooked model must have taken the Block path"
    for a, b in zip(fast.state_dict().values(), slow.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    fast.eval(), slow.eval()
    assert torch.equal(fast(x), slow(x))


def test_a_hook_on_the_activation_still_fires() -> None:
    model = mlp("batch")
    seen = []
    model.blocks[1].act.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    model(torch.randn(8, 12))
    assert seen == [torch.Size([8, 16])]
