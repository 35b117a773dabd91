"""Batched seeds: a variant's seeds trained as one stacked model equal separate runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normbench.api import plan_run
from normbench.execute.local import Batch, Task, group_tasks, load_split
from normbench.execute.plan import batch_unsupported, batches_seeds
from normbench.spec import load_suite
from normbench.train.batched import run_batched
from normbench.train.loop import run_variant

# Batched matmuls round in another order than one model's: over these short runs every loss
# agrees to this relative tolerance and every accuracy to one test example (1/128).
LOSS_RTOL = 1e-4
ACC_ATOL = 1 / 128 + 1e-9

SUITE = """\
name: batched
dataset: {{name: synthetic-blobs, num_train: 512, num_test: 128, features: 40}}
model: {{kind: mlp, hidden: [32, 32], norm: {norm}, activation: sigmoid}}
training: {{optimizer: {opt}, lr: 0.1, batch_size: 32, steps: 120, eval_every: 40, seeds: 3,
           device: cpu, profile_steps: 0, batch_seeds: auto}}
"""


def variant(tmp_path: Path, norm: str = "batch", opt: str = "momentum", text: str = SUITE):
    path = tmp_path / "s.yaml"
    path.write_text(text.format(norm=norm, opt=opt))
    return load_suite(path).variants[0]


def curves(record: dict) -> tuple:
    c = record["curves"]
    return tuple(
        tuple(c[k])
        for k in (
            "step",
            "train_loss",
            "test_loss",
            "test_acc",
            "train_probe_loss",
            "train_probe_acc",
        )
    )


@pytest.mark.parametrize(
    "norm, opt",
    [
        ("none", "sgd"),
        ("batch", "momentum"),
        ("layer", "adam"),
        ("rms", "adamw"),
        ("dyt", "adam"),
        ("derf", "momentum"),
    ],
)
def test_batched_members_equal_separate_runs(tmp_path: Path, norm: str, opt: str) -> None:
    v = variant(tmp_path, norm, opt)
    split = load_split(v.config)
    batched = run_batched(v.config, [0, 1, 2], split)
    for seed, member in zip([0, 1, 2], batched, strict=True):
        alone = run_variant(v.config, seed, split)
        assert member["seed"] == seed and member["status"] == alone["status"] == "ok"
        assert member["timing"]["batch_seeds"]["members"] == 3
        assert "batch_seeds_fallback" not in member["timing"]
        assert member["curves"]["step"] == alone["curves"]["step"]
        for key in ("train_loss", "test_loss", "train_probe_loss"):
            assert member["curves"][key] == pytest.approx(alone["curves"][key], rel=LOSS_RTOL)
        for key in ("test_acc", "train_probe_acc"):
            assert member["curves"][key] == pytest.approx(alone["curves"][key], abs=ACC_ATOL)
        assert set(member) == set(alone) and set(member["metrics"]) == set(alone["metrics"])


def test_batched_is_bit_identical_and_independent_of_the_other_members(tmp_path: Path) -> None:
    v = variant(tmp_path)
    split = load_split(v.config)
    full = run_batched(v.config, [0, 1, 2, 3], split)
    again = run_batched(v.config, [0, 1, 2, 3], split)
    assert [curves(r) for r in full] == [curves(r) for r in again]
    # What a shard or a resumed run trains: other companions, or a seed alone.
    for subset in ([2], [3, 1], [1, 0, 3]):
        part = run_batched(v.config, subset, split)
        assert [curves(r) for r in part] == [curves(full[s]) for s in subset]


def test_a_diverging_member_does_not_stop_the_others(tmp_path: Path) -> None:
    text = SUITE.replace("lr: 0.1", "lr: 8").replace("activation: sigmoid", "activation: relu")
    v = variant(tmp_path, "none", "momentum", text.replace("steps: 120", "steps: 60"))
    split = load_split(v.config)
    seeds = list(range(6))
    batched = run_batched(v.config, seeds, split)
    statuses = [r["status"] for r in batched]
    assert set(statuses) == {"ok", "diverged"}, "the test needs one diverging and one healthy seed"
    for member in batched:
        if member["status"] == "diverged":
            assert member["metrics"]["final_test_acc"] is None
            assert member["diverged_at_step"] is not None
        else:
            assert member["metrics"]["final_test_acc"] is not None
    # At lr 8 a healthy member's loss is chaotic: the stacked and the separate model's rounding
    # (which kernels a CPU runs decides it) moves it by several percent, so compare like with
    # like: the healthy members trained without the diverging ones, in the same stacked kernels,
    # are bit-identical — the diverging member touched nothing of theirs.
    healthy = [s for s, st in zip(seeds, statuses, strict=True) if st == "ok"]
    without = run_batched(v.config, healthy, split)
    assert [curves(r) for r in without] == [curves(batched[s]) for s in healthy]
    # A member diverges at the step its separate run does (it blows up within a few steps,
    # long before rounding differences can grow).
    first = next(s for s, st in zip(seeds, statuses, strict=True) if st == "diverged")
    alone = run_variant(v.config, first, split)
    assert alone["status"] == "diverged"
    assert alone["diverged_at_step"] == batched[first]["diverged_at_step"]


def test_auto_batches_only_what_it_supports(tmp_path: Path) -> None:
    default = variant(tmp_path, text=SUITE.replace(", batch_seeds: auto", "")).config
    assert not batches_seeds(default, 3, accelerator=False)  # off unless asked for
    config = variant(tmp_path).config
    assert batch_unsupported(config) is None
    assert batches_seeds(config, 3, accelerator=False)
    assert batches_seeds(config, 3, accelerator=True)  # device: cpu, whatever else is there
    on_auto = {**config, "training": {**config["training"], "device": "auto"}}
    assert batches_seeds(on_auto, 3, accelerator=False)
    assert not batches_seeds(on_auto, 3, accelerator=True)  # not measured on GPUs: auto is off
    assert not batches_seeds(config, 1, accelerator=False)
    group = variant(tmp_path, "{kind: group, groups: 4}").config
    assert batch_unsupported(group) == "norm 'group'" and not batches_seeds(
        group, 3, accelerator=False
    )
    forced = {**config, "training": {**config["training"], "batch_seeds": True}}
    assert batches_seeds(forced, 3, accelerator=True)
    off = {**config, "training": {**config["training"], "batch_seeds": False}}
    assert not batches_seeds(off, 3, accelerator=False)
    clipped = {**config, "training": {**config["training"], "grad_clip": 1.0}}
    assert batch_unsupported(clipped) == "grad_clip"


def test_batch_seeds_is_kept_out_of_the_variant_id(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(norm="batch", opt="sgd"))
    ids = {
        load_suite(path, [f"training.batch_seeds={x}"]).variants[0].id
        for x in ("auto", "true", "false")
    }
    assert len(ids) == 1
    bad = load_suite  # a wrong value is a located suite error
    with pytest.raises(Exception, match="batch_seeds"):
        bad(path, ["training.batch_seeds=sometimes"])


def test_plan_groups_seeds_and_records_the_choice(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        SUITE.format(norm="batch", opt="sgd") + "grid:\n  norm: [batch, {kind: group, groups: 4}]\n"
    )
    suite = load_suite(path)
    plan = plan_run(suite, tmp_path / "runs")
    suite = plan.suite  # planning fills in the threads
    batched_id, plain_id = suite.variants[0].id, suite.variants[1].id
    assert plan.batched == (batched_id,)
    assert plan.execution()["batch_seeds"] == [batched_id]
    units = plan.units()
    assert units[0].variant == suite.variants[0] and units[0].seeds == (0, 1, 2)
    assert units[0].data  # the data fingerprint the workers check their own copy against
    assert all(isinstance(u, Task) and u.variant.id == plain_id for u in units[1:])
    # Two workers: the batch is split so both get seeds; a lone seed is a batch of one.
    tasks = [Task(suite.variants[0], s) for s in (0, 1, 2)]
    assert group_tasks(tasks, [batched_id], 2) == [
        Batch(suite.variants[0], (0, 1)),
        Batch(suite.variants[0], (2,)),
    ]


def test_a_batched_run_writes_normal_records_and_resumes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from normbench.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(norm="batch", opt="sgd"))
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-report", "-q"])
    assert result.exit_code == 0, result.output
    run = next((out / "batched").iterdir())
    files = sorted((run / "results").glob("*.json"))
    assert len(files) == 3
    records = [json.loads(f.read_text()) for f in files]
    assert [r["seed"] for r in records] == [0, 1, 2]
    assert all(r["status"] == "ok" and r["timing"]["batch_seeds"]["members"] == 3 for r in records)
    before = {f.name: curves(json.loads(f.read_text())) for f in files}
    files[1].unlink()  # one seed lost: resume trains it alone, with the same numbers
    result = CliRunner().invoke(
        app, ["run", str(path), "--out", str(out), "--resume", "latest", "--no-report", "-q"]
    )
    assert result.exit_code == 0, result.output
    after = {
        f.name: curves(json.loads(f.read_text())) for f in sorted((run / "results").glob("*.json"))
    }
    assert after == before
