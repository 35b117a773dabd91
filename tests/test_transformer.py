"""The transformer kind: per-token norms, each placement's formula, causal masking, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_suite
from torch import nn

from normbench.models import build
from normbench.models.catalog import MODELS, resolve_model
from normbench.models.transformer import _apply
from normbench.norms import make, resolve_norm
from normbench.train.optim import lr_factor, make_optimizer, param_groups

PLACEMENTS = tuple(MODELS["transformer"].placements)


def _cfg(placement: str = "pre", norm: str = "layer", **extra: object) -> dict:
    raw = {"kind": "transformer", "d_model": 8, "layers": 2, "heads": 2, "placement": placement}
    raw["norm"] = resolve_norm("none" if placement == "none" else norm)
    cfg, _ = resolve_model({**raw, **extra}, "sequence")
    return cfg


def test_layer_and_rms_normalise_each_token_over_its_channels() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    layer = make(8, resolve_norm("layer")).double()
    expected = nn.LayerNorm(8, eps=1e-5).double()(x)
    torch.testing.assert_close(_apply(layer, x), expected)
    rms = make(8, resolve_norm("rms")).double()
    torch.testing.assert_close(_apply(rms, x), x / torch.sqrt(x.pow(2).mean(-1, True) + 1e-6))
    # batch norm: statistics over batch × positions, per channel
    batch = make(8, resolve_norm("batch")).double()
    flat = x.reshape(-1, 8)
    mu, var = flat.mean(0), flat.var(0, unbiased=False)
    torch.testing.assert_close(_apply(batch, x), (x - mu) / torch.sqrt(var + 1e-5))


def _reference(model: nn.Module, x: torch.Tensor, placement: str) -> torch.Tensor:
    """The placements' formulas written out, on the model's own sublayers and norms."""
    h = model.embed_inputs(x)
    for b in model.blocks:
        for f, n_in, n_out in ((b.attn, b.norm1, b.out1), (b.mlp, b.norm2, b.out2)):
            if placement == "pre":
                h = h + f(_apply(n_in, h))
            elif placement == "post":
                h = _apply(n_in, h + f(h))
            elif placement == "peri":
                h = h + _apply(n_out, f(_apply(n_in, h)))
            elif placement == "deepnorm":
                h = _apply(n_in, (2 * len(model.blocks)) ** 0.25 * h + f(h))
            else:
                h = h + f(h)
    if placement in ("pre", "peri"):
        h = _apply(model.final, h)
    return model.head(h.mean(1))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_each_placement_computes_its_formula(placement: str) -> None:
    torch.manual_seed(0)
    model = build(_cfg(placement), (6, 3), 4).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(model(x), _reference(model, x, placement))
    slots = [n for b in model.blocks for n in (b.norm1, b.norm2, b.out1, b.out2)]
    norms = [n for n in [*slots, model.final] if n is not None]
    # pre: 2 per block + final; peri: 4 per block + final; post/deepnorm: 2 per block; none: 0
    assert len(norms) == {"pre": 5, "peri": 9, "post": 4, "deepnorm": 4, "none": 0}[placement]


def test_deepnorm_scales_the_ffn_value_and_output_weights_at_init() -> None:
    torch.manual_seed(0)
    plain = build(_cfg("post"), (6, 3), 4)
    torch.manual_seed(0)
    deep = build(_cfg("deepnorm"), (6, 3), 4)
    beta = (8 * 2) ** -0.25
    torch.testing.assert_close(deep.blocks[0].fc1.weight, plain.blocks[0].fc1.weight * beta)
    torch.testing.assert_close(
        deep.blocks[1].attn.qkv.weight[16:], plain.blocks[1].attn.qkv.weight[16:] * beta
    )
    torch.testing.assert_close(
        deep.blocks[1].attn.qkv.weight[:16], plain.blocks[1].attn.qkv.weight[:16]
    )


def test_a_future_token_cannot_change_a_past_logit() -> None:
    torch.manual_seed(0)
    cfg, _ = resolve_model(
        {"kind": "transformer", "d_model": 8, "heads": 2, "norm": resolve_norm("layer")},
        "tokens",
    )
    assert cfg["causal"] is True and cfg["readout"] == "tokens"
    model = build(cfg, (6,), 11).eval()
    x = torch.randint(0, 11, (1, 6)).float()
    changed = x.clone()
    changed[0, 4] = (x[0, 4] + 1) % 11
    a, b = model(x), model(changed)
    assert a.shape == (1, 6, 11)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    bidirectional = build({**cfg, "causal": False}, (6,), 11).eval()
    assert not torch.allclose(bidirectional(x)[:, :4], bidirectional(changed)[:, :4])


def test_readouts_qk_norm_patches_and_tied_embeddings() -> None:
    torch.manual_seed(0)
    image = build(_cfg(readout="cls", patch=7, qk_norm=True), (1, 28, 28), 10)
    assert image(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert image.pos.shape == (1, 16 + 1, 8)  # 4 × 4 patches and the class token
    assert isinstance(image.blocks[0].attn.q_norm, nn.LayerNorm)
    with pytest.raises(ValueError, match="patch 5 must divide the 28×28 images"):
        build(_cfg(patch=5), (1, 28, 28), 10)
    cfg, _ = resolve_model(
        {"kind": "transformer", "d_model": 8, "heads": 2, "tie_embeddings": True}, "tokens"
    )
    cfg["norm"] = resolve_norm("rms")
    lm = build(cfg, (5,), 13)
    assert lm.head.weight is lm.embed.weight


def test_warmup_and_cosine_to_a_floor() -> None:
    factors = [lr_factor(s, 10, 4, True, 0.1) for s in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0) and factors[-1] > 0.1
    assert lr_factor(10, 10, 4, True, 0.1) == pytest.approx(0.1)
    assert lr_factor(7, 10, 2, False, 0.0) == 1.0


def test_decay_matrices_leaves_norms_biases_and_embeddings_alone() -> None:
    cfg, _ = resolve_model({"kind": "transformer", "d_model": 8, "heads": 2}, "tokens")
    cfg["norm"] = resolve_norm("layer")
    model = build(cfg, (5,), 13)
    groups = param_groups(model, "matrices", 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert names and all(n.endswith("weight") and "norm" not in n for n in names)
    assert "embed.weight" not in names and "pos" not in names
    assert not any(n.endswith("bias") for n in names)
    training = {
        "optimizer": {
            "name": "adamw",
            "weight_decay": 0.1,
            "decay": "matrices",
            "betas": [0.9, 0.95],
            "eps": 1e-8,
        },
        "lr": 1e-3,
        "lr_mult": 1.0,
        "batch_size": 4,
    }
    opt = make_optimizer(model, training)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


TRANSFORMER_SUITE = """\
name: tr
dataset: {{name: mnist1d, num_samples: 400}}
model: {{kind: transformer, d_model: 16, layers: 1, heads: 2}}
training: {{optimizer: adamw, lr: 0.003, batch_size: 16, steps: {steps}, eval_every: {steps},
            seeds: 1, warmup_steps: 1, eval_batch_size: 100, probe_size: 50}}
grid:
{grid}
"""
EVERY = (
    "  norm: [none, layer, rms, batch, {kind: group, groups: 4}, dyt, derf, power]\n"
    "  placement: [pre, post, peri, deepnorm]"
)


def test_every_norm_and_placement_trains_a_step(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, TRANSFORMER_SUITE.format(steps=1, grid=EVERY))
    result = run_cli("run", suite, "--out", tmp_path / "out", "--no-report", "-q")
    assert result.returncode == 0, result.stderr
    records = [json.loads(p.read_text()) for p in tmp_path.glob("out/tr/*/results/*.json")]
    assert len(records) == 32
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]


def test_a_transformer_gives_the_same_numbers_in_process_in_workers_and_resumed(
    tmp_path: Path,
) -> None:
    text = TRANSFORMER_SUITE.format(steps=4, grid="  norm: [layer, rms]")
    suite = write_suite(tmp_path, text)

    def finals(out: Path, *flags: object) -> list[float]:
        result = run_cli("run", suite, "--out", out, "--no-report", "-q", *flags)
        assert result.returncode == 0, result.stderr
        records = sorted((out / "tr").glob("*/results/*.json"))
        return [json.loads(p.read_text())["metrics"]["final_train_loss"] for p in records]

    here = finals(tmp_path / "a", "--workers", "1")
    assert here == finals(tmp_path / "b", "--workers", "2")
    assert all(math.isfinite(v) for v in here)
    run_dir = next((tmp_path / "a" / "tr").iterdir())
    sorted((run_dir / "results").glob("*.json"))[0].unlink()
    assert finals(tmp_path / "a", "--resume", run_dir) == here


def test_the_schema_offers_each_kind_its_own_placements() -> None:
    from normbench.suite_schema import model_schema

    rules = dict(zip(MODELS, model_schema()["allOf"], strict=True))
    transformer = rules["transformer"]["then"]["properties"]["placement"]
    assert set(transformer["enum"]) == set(PLACEMENTS)
    assert rules["cnn"]["then"]["properties"]["placement"]["enum"] == ["pre", "post"]


def test_layer_stats_records_each_block_and_leaves_training_alone(tmp_path: Path) -> None:
    text = TRANSFORMER_SUITE.format(steps=4, grid="  placement: [pre, post]")
    plain = write_suite(tmp_path, text, "plain.yaml")
    watched = write_suite(
        tmp_path, text.replace("grid:", "diagnostics: [layer_stats]\ngrid:"), "watched.yaml"
    )

    def records(suite: Path) -> list[dict]:
        out = tmp_path / suite.stem
        result = run_cli("run", suite, "--out", out, "--no-report", "-q", "--workers", "1")
        assert result.returncode == 0, result.stderr
        return [json.loads(p.read_text()) for p in sorted(out.glob("tr/*/results/*.json"))]

    base, seen = records(plain), records(watched)
    assert [r["curves"]["train_loss"] for r in base] == [r["curves"]["train_loss"] for r in seen]
    for r in seen:
        stats = r["diagnostics"]["layer_stats"]
        assert stats["step"][0] == 0 and len(stats["rms"][0]) == 1  # one block
        assert len(stats["init_grad_norms"]) == 1 and stats["init_grad_norms"][0] > 0
        assert stats["attn_logit_max"][-1][0] > 0
        assert r["metrics"]["attn_logit_max_peak"] >= r["metrics"]["attn_logit_max_final"]


def test_group_norm_with_one_channel_per_group_on_tokens_is_refused() -> None:
    from normbench.errors import OptionError
    from normbench.norms import NormContext, check_norm

    tokens = NormContext(
        model="transformer", widths=(32,), spatial=0, batch_size=8, placement="pre"
    )
    with pytest.raises(OptionError, match="one value per group"):
        check_norm(resolve_norm({"kind": "group", "groups": 32}), tokens)
    check_norm(resolve_norm("group"), tokens)  # auto keeps two channels a group on (N, C)
    norm = make(32, resolve_norm("group"))
    norm(torch.randn(4, 32))
    assert norm.num_groups == 16  # decided at the first (N, C) forward
    conv = make(32, resolve_norm("group"))
    conv(torch.randn(4, 32, 5))
    assert conv.num_groups == 32
    spatial = NormContext(model="cnn", widths=(32,), spatial=2, batch_size=8, placement="pre")
    check_norm(resolve_norm({"kind": "group", "groups": 32}), spatial)  # over space: allowed


def test_placements_without_a_norm_that_build_one_model_are_named(tmp_path: Path) -> None:
    from normbench.spec import load_suite

    # The warning's premise, checked on built models: with norm none, pre, post, peri and none
    # compute the same function; DeepNorm's α and β still change it.
    x = torch.randn(2, 6, 3)
    outputs = {}
    for placement in PLACEMENTS:
        torch.manual_seed(0)
        outputs[placement] = build(_cfg(placement, "none"), (6, 3), 4)(x)
    for placement in ("post", "peri", "none"):
        torch.testing.assert_close(outputs[placement], outputs["pre"], rtol=0, atol=0)
    assert not torch.equal(outputs["deepnorm"], outputs["pre"])
    suite = write_suite(
        tmp_path,
        "name: twins\ndataset: {name: text, context: 8}\n"
        "model: {kind: transformer, d_model: 8, layers: 1, heads: 2}\n"
        "training: {steps: 1, batch_size: 2}\n"
        "grid:\n  norm: [none, layer]\n  placement: [pre, post, peri, deepnorm]\n",
    )
    warnings = [w for w in load_suite(suite).warnings if "train the same model" in w]
    assert len(warnings) == 1
    assert "'norm=none,placement=pre', 'norm=none,placement=post' and " in warnings[0]
    assert "deepnorm" not in warnings[0] and "layer" not in warnings[0]
