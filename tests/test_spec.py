"""Suite loading, validation messages with locations, grid expansion and variant identity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import SuiteError
from normbench.spec import load_suite

runner = CliRunner()

BASE = """\
name: t
dataset:
  name: synthetic-blobs
model:
  kind: mlp
  hidden: [16, 16]
  activation: relu
  norm: none
training:
  lr: 0.1
  batch_size: 32
  steps: 20
  eval_every: 10
  seeds: 2
grid:
  norm: [none, batch, layer]
  placement: [pre, post]
exclude:
  - {norm: none, placement: post}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_expansion_names_and_ids(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, BASE))
    names = [v.name for v in suite.variants]
    assert names == [
        "norm=none,placement=pre",
        "norm=batch,placement=pre",
        "norm=batch,placement=post",
        "norm=layer,placement=pre",
        "norm=layer,placement=post",
    ]
    assert suite.seeds == [0, 1]
    ids = [v.id for v in suite.variants]
    assert len(set(ids)) == 5 and all(len(i) == 10 for i in ids)
    # Same configuration → same id, whatever the file; a changed setting → a new id.
    again = load_suite(write(tmp_path, BASE.replace("name: t", "name: other"), "b.yaml"))
    assert [v.id for v in again.variants] == ids
    changed = load_suite(write(tmp_path, BASE.replace("steps: 20", "steps: 30"), "c.yaml"))
    assert not set(v.id for v in changed.variants) & set(ids)
    # Seeds are not part of the id.
    seeds = load_suite(write(tmp_path, BASE.replace("seeds: 2", "seeds: [5, 7]"), "d.yaml"))
    assert [v.id for v in seeds.variants] == ids and seeds.seeds == [5, 7]


def test_resolved_config_fills_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, BASE))
    cfg = suite.variants[1].config
    assert cfg["model"]["norm"]["kind"] == "batch" and "momentum" in cfg["model"]["norm"]
    assert cfg["training"]["optimizer"]["name"] == "sgd"
    assert "seeds" not in cfg["training"]
    assert cfg["dataset"]["name"] == "synthetic-blobs"


def test_set_overrides_keys_and_pins_grid(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    suite = load_suite(path, ["training.steps=40", "norm=batch", "lr_mult=5"])
    assert {v.config["training"]["steps"] for v in suite.variants} == {40}
    assert {v.params["norm"] for v in suite.variants} == {"batch"}
    assert {v.config["training"]["lr_mult"] for v in suite.variants} == {5.0}
    # A pinned grid key keeps the variant's name and id as in the full run.
    full = {v.name: v.id for v in load_suite(path, ["training.steps=40", "lr_mult=5"]).variants}
    assert all(full[v.name] == v.id for v in suite.variants)


def test_aliases_and_dotted_grid_keys(tmp_path: Path) -> None:
    text = BASE.replace(
        "grid:\n  norm: [none, batch, layer]\n  placement: [pre, post]\n",
        "grid:\n  model.hidden: [[8], [8, 8]]\n  lr_mult: [1, 30]\n  optimizer: [sgd, adam]\n",
    )
    text = text.replace("exclude:\n  - {norm: none, placement: post}\n", "")
    suite = load_suite(write(tmp_path, text))
    assert len(suite.variants) == 8
    assert suite.variants[0].name == "model.hidden=[8],lr_mult=1,optimizer=sgd"


def test_norm_mapping_in_grid(tmp_path: Path) -> None:
    text = BASE.replace("norm: [none, batch, layer]", "norm: [none, {kind: group, groups: 4}]")
    suite = load_suite(write(tmp_path, text))
    assert any(v.name.startswith("norm=group[groups=4]") for v in suite.variants)


BAD = [
    # (description, transform of BASE, expected fragments)
    (
        "yaml syntax",
        lambda s: s.replace("hidden: [16, 16]", "hidden: [16, 16"),
        ["YAML syntax error"],
    ),
    (
        "wrong type",
        lambda s: s.replace("steps: 20", "steps: many"),
        [":12:", "training.steps", "expected an integer, got 'many'"],
    ),
    ("zero lr", lambda s: s.replace("lr: 0.1", "lr: 0"), [":10:", "training.lr", "greater than 0"]),
    ("negative lr", lambda s: s.replace("lr: 0.1", "lr: -1"), ["training.lr"]),
    ("zero steps", lambda s: s.replace("steps: 20", "steps: 0"), ["training.steps"]),
    ("zero batch", lambda s: s.replace("batch_size: 32", "batch_size: 0"), ["training.batch_size"]),
    (
        "unknown norm",
        lambda s: s.replace("[none, batch, layer]", "[none, batchnrom, layer]"),
        [":16:", "grid.norm[1]", "unknown norm 'batchnrom'", "did you mean 'batch'", "choose from"],
    ),
    (
        "unknown model",
        lambda s: s.replace("kind: mlp", "kind: transfomer"),
        ["model.kind", "unknown model kind 'transfomer'", "did you mean 'transformer'"],
    ),
    (
        "unknown dataset",
        lambda s: s.replace("name: synthetic-blobs", "name: mnist2d"),
        ["dataset", "mnist2d", "did you mean"],
    ),
    (
        "unknown activation",
        lambda s: s.replace("activation: relu", "activation: rleu"),
        ["model.activation", "did you mean 'relu'"],
    ),
    (
        "unknown key",
        lambda s: s.replace("  lr: 0.1", "  lrate: 0.1"),
        [":10:", "training.lrate", "unknown key 'lrate'", "choose from"],
    ),
    (
        "empty grid list",
        lambda s: s.replace("placement: [pre, post]", "placement: []"),
        ["grid.placement", "empty"],
    ),
    (
        "grid unknown path",
        lambda s: s.replace("placement: [pre, post]", "model.hiden: [[4]]").replace(
            "exclude:\n  - {norm: none, placement: post}\n", ""
        ),
        ["grid.model.hiden", "unknown key 'hiden'", "did you mean 'hidden'"],
    ),
    (
        "exclude everything",
        lambda s: s.replace(
            "{norm: none, placement: post}", "{placement: pre}\n  - {placement: post}"
        ),
        ["exclude", "every grid point"],
    ),
    (
        "custom import",
        lambda s: s.replace(
            "[none, batch, layer]", "[none, {kind: custom, target: 'no_such_mod:Norm'}]"
        ),
        ["grid.norm[1]", "no_such_mod"],
    ),
    (
        "batch size one",
        lambda s: s.replace("batch_size: 32", "batch_size: 1"),
        ["grid.norm[1]", "batch statistics"],
    ),
    (
        "groups",
        lambda s: s.replace("[none, batch, layer]", "[none, {kind: group, groups: 3}]"),
        ["grid.norm[1]", "groups"],
    ),
    (
        "instance on mlp",
        lambda s: s.replace("[none, batch, layer]", "[none, instance]"),
        ["grid.norm[1]", "instance"],
    ),
    ("bad suite name", lambda s: s.replace("name: t", "name: My Suite"), [":1:", "name"]),
    ("not a mapping", lambda s: "- just\n- a list\n", ["suite must be a YAML mapping"]),
]


@pytest.mark.parametrize(("desc", "transform", "fragments"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_located_sentence(
    tmp_path: Path, desc: str, transform, fragments: list[str]
) -> None:
    path = write(tmp_path, transform(BASE))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: file not found" in result.stderr


def test_exclude_matching_nothing_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE.replace("{norm: none, placement: post}", "{norm: layer, placement: sideways}"),
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert "exclude[0] matches no grid point" in result.stderr
    assert "6 variants × 2 seeds" in result.stdout


def test_set_error_names_the_flag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(write(tmp_path, BASE)), "--set", "training.steps=-3"])
    assert result.exit_code == 2
    assert "--set training.steps=-3" in result.stderr and "Traceback" not in result.stderr


def test_validate_and_help_do_not_import_torch(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    code = (
        "import sys; from typer.testing import CliRunner; from normbench.cli import app; "
        f"r = CliRunner().invoke(app, ['validate', {str(path)!r}]); assert r.exit_code == 0, "
        "r.output; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(app, ['list']); assert r.exit_code == 0, r.output; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_curated_suites_validate() -> None:
    suites = sorted(Path(__file__).parent.parent.glob("suites/*.yaml"))
    assert suites
    for path in suites:
        try:
            load_suite(path)
        except SuiteError as exc:  # pragma: no cover - the message is the point
            pytest.fail(str(exc))


def test_grid_over_whole_models(tmp_path: Path) -> None:
    text = BASE.replace(
        "grid:\n  norm: [none, batch, layer]\n  placement: [pre, post]\n",
        "grid:\n  model: [{kind: mlp, hidden: []}, {kind: mlp, hidden: [8]}]\n  norm: [none, "
        "batch]\n",
    )
    text = text.replace("exclude:\n  - {norm: none, placement: post}\n", "")
    suite = load_suite(write(tmp_path, text))
    assert [v.name for v in suite.variants][:2] == [
        "model=mlp[hidden=[]],norm=none",
        "model=mlp[hidden=[]],norm=batch",
    ]
    assert suite.variants[2].config["model"]["hidden"] == [8]
    assert suite.variants[2].config["model"]["activation"] == "relu"  # common keys are kept


def test_linear_lr_scaling(tmp_path: Path) -> None:
    from normbench.train.optim import effective_lr

    suite = load_suite(
        write(
            tmp_path, BASE.replace("  lr: 0.1\n", "  lr: 0.1\n  lr_batch_ref: 64\n  lr_mult: 2\n")
        )
    )
    assert effective_lr(suite.variants[0].config["training"]) == pytest.approx(0.1 * 2 * 32 / 64)


def test_eval_gap_skipped_for_norms_without_batch_stats(tmp_path: Path) -> None:
    text = BASE.replace("grid:", "diagnostics: [eval_gap]\ngrid:")
    suite = load_suite(write(tmp_path, text))
    by_name = {v.name: v.config["diagnostics"] for v in suite.variants}
    assert "eval_gap" in by_name["norm=batch,placement=pre"]
    assert "eval_gap" not in by_name["norm=layer,placement=pre"]
    assert any("eval_gap" in w and "norm=none,placement=pre" in w for w in suite.warnings)
    only_layer = text.replace("[none, batch, layer]", "[none, layer]")
    with pytest.raises(SuiteError, match="diagnostics"):
        load_suite(write(tmp_path, only_layer, "b.yaml"))
