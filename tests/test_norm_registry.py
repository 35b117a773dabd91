"""A norm registered from one place (``register_norm``) reaches every command; README agrees."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from registry_norms import ENTRY, NAME, PairScale
from typer.testing import CliRunner

from normbench import api
from normbench.cli import app
from normbench.errors import OptionError
from normbench.execute.plan import usable_cores
from normbench.execute.run_plan import plan_run
from normbench.norms import NORMS, NormContext, check_norm, make, register_norm, resolve_norm
from normbench.spec import Suite, load_suite

runner = CliRunner()

SUITE = """\
name: reg
dataset:
  name: synthetic-blobs
  input_norm: zscore
model:
  kind: mlp
  hidden: [{width}, {width}]
  activation: relu
  norm: {norm}
training:
  optimizer: sgd
  lr: 0.1
  batch_size: 16
  steps: 1
  eval_every: 1
  seeds: 1
  device: cpu
"""


@pytest.fixture
def registered() -> Iterator[None]:
    """The test norm in the registry for one test, removed afterwards (other tests see 18)."""
    register_norm(ENTRY)
    try:
        yield
    finally:
        NORMS.pop(NAME)


def _suite(tmp_path: Path, norm: str, width: int = 8) -> Path:
    path = tmp_path / "reg.yaml"
    path.write_text(SUITE.format(norm=norm, width=width))
    return path


def test_registered_norm_is_listed(registered: None) -> None:
    result = runner.invoke(app, ["list", "norms", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows)[-1] == NAME
    assert rows[NAME]["options"] == "gain=1 (float in [0, 10]), shift=true (bool)"
    assert rows[NAME]["models"] == "mlp, cnn"


def test_registered_norm_is_in_the_schema(registered: None) -> None:
    from normbench.suite_schema import build_schema

    doc = build_schema()
    norm = doc["properties"]["model"]["properties"]["norm"]
    assert norm["anyOf"][0]["enum"] == list(NORMS) and NAME in norm["anyOf"][0]["enum"]
    (rule,) = [
        r["then"]
        for r in norm["anyOf"][1]["allOf"]
        if r["if"]["properties"]["kind"]["const"] == NAME
    ]
    assert set(rule["properties"]) == {"kind", "gain", "shift"}
    assert rule["additionalProperties"] is False
    jsonschema = pytest.importorskip("jsonschema")
    from normbench.yamlsrc import parse_yaml

    validator = jsonschema.Draft202012Validator(doc)
    good = parse_yaml(SUITE.format(norm=f"{{kind: {NAME}, gain: 2}}", width=8), "s.yaml")[0]
    assert list(validator.iter_errors(good)) == []
    for bad in (f"{{kind: {NAME}, gain: 11}}", f"{{kind: {NAME}, gainz: 1}}"):
        data = parse_yaml(SUITE.format(norm=bad, width=8), "s.yaml")[0]
        assert list(validator.iter_errors(data)), bad


def test_registered_norm_is_validated(registered: None, tmp_path: Path) -> None:
    spec = resolve_norm({"kind": NAME, "gain": "2"})
    assert spec == {"kind": NAME, "gain": 2.0, "shift": True}
    assert runner.invoke(app, ["validate", str(_suite(tmp_path, NAME))]).exit_code == 0
    cases = {
        f"{{kind: {NAME}, gain: 11}}": "norm.gain: must be <= 10, got 11 (float in [0, 10])",
        f"{{kind: {NAME}, gain: x}}": "norm.gain: must be a number",
        f"{{kind: {NAME}, gainz: 1}}": "option 'gainz'",
        f"{{kind: {NAME}, gain: 0, shift: false}}": "gain 0 without shift outputs zeros",
        "pairscale": f"did you mean '{NAME}'?",
        "pair-nrom": f"did you mean '{NAME}'?",
    }
    for norm, message in cases.items():
        result = runner.invoke(app, ["validate", str(_suite(tmp_path, norm))])
        assert result.exit_code == 2 and message in result.output, (norm, result.output)
    odd = runner.invoke(app, ["validate", str(_suite(tmp_path, NAME, width=7))])
    assert odd.exit_code == 2 and "every width must be even, not 7" in odd.output
    rnn = NormContext(model="rnn", widths=(8,), spatial=0, batch_size=16, placement="pre")
    with pytest.raises(OptionError, match="works with mlp, cnn models only, not rnn"):
        check_norm(NAME, rnn)


def test_registered_norm_trains_in_process(registered: None, tmp_path: Path) -> None:
    # In-process: worker processes do not see a registration made here (see register_norm),
    # so the default keeps such a run here even when its size would pick workers.
    def big(norm: str) -> Suite:
        text = _suite(tmp_path, norm).read_text()
        text = text.replace("steps: 1\n", "steps: 200000\n").replace("seeds: 1", "seeds: 4")
        (tmp_path / "big.yaml").write_text(text)
        return load_suite(tmp_path / "big.yaml")

    if usable_cores() > 1:  # a built-in norm of that size would train in workers
        assert not plan_run(big("layer"), tmp_path / "plan").in_process
    assert plan_run(big(f"{{kind: {NAME}, gain: 2}}"), tmp_path / "plan").in_process
    suite = load_suite(_suite(tmp_path, f"{{kind: {NAME}, gain: 2}}"))
    outcome = api.run_suite(suite, tmp_path / "runs")
    assert outcome.exit_code == 0, outcome.records
    manifest = json.loads((outcome.run_dir.path / "manifest.json").read_text())
    assert manifest["execution"]["in_process"] is True
    (record,) = outcome.records
    assert record["status"] == "ok", record
    model = record["config"]["model"]
    assert model["norm"] == {"kind": NAME, "gain": 2.0, "shift": True}
    assert isinstance(make(8, model["norm"]), PairScale)


def test_centres_per_channel_drops_the_bias_before_the_norm(registered: None) -> None:
    from normbench.models.common import keeps_bias

    spec = resolve_norm(NAME)
    assert not keeps_bias(spec, "pre") and keeps_bias(spec, "post")
    NORMS[NAME] = replace(ENTRY, centres_per_channel=False)
    assert keeps_bias(spec, "pre")


def test_register_refuses_contradictions(registered: None) -> None:
    with pytest.raises(ValueError, match=r"taken by norm 'test_pair_scale'"):
        register_norm(ENTRY)
    with pytest.raises(ValueError, match=r"'bn' is taken by norm 'batch'"):
        register_norm(replace(ENTRY, name="other", aliases=("bn",)))
    with pytest.raises(ValueError, match="lower case"):
        register_norm(replace(ENTRY, name="Other", aliases=()))
    with pytest.raises(ValueError, match="layouts must be some of"):
        register_norm(replace(ENTRY, name="other", aliases=(), layouts=("nowhere",)))
    with pytest.raises(ValueError, match=r"is not 'package.module:Class'"):
        register_norm(replace(ENTRY, name="other", aliases=(), cls="PairScale"))
    with pytest.raises(OptionError, match="unknown norm 'other'"):
        resolve_norm("other")


def test_every_norm_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("\n## Norms\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert set(NORMS) <= listed, f"README '## Norms' lacks {sorted(set(NORMS) - listed)}"


# Options that fit the 8-channel, 6-example tensors below (defaults assume wider layers).
_FIT = {
    "group": {"groups": 4},
    "decorrelated_batch": {"group_size": 4},
    "ghost_batch": {"ghost_size": 3},
}


@pytest.mark.parametrize("name", [n for n in NORMS if n != "custom"])
def test_centres_per_channel_says_what_the_norm_does(name: str) -> None:
    # The trait is right when a per-channel shift of the input (a bias before the norm) leaves
    # the training-mode output unchanged; a norm that forgets it keeps a redundant bias.
    import torch

    entry = NORMS[name]
    x = torch.randn((6, 8, 3, 4) if entry.needs_spatial else (6, 8), dtype=torch.float64)
    shift = torch.randn(8, dtype=torch.float64).view((1, -1) + (1,) * (x.dim() - 2))
    outputs = []
    for inputs in (x, x + shift):
        torch.manual_seed(0)  # the same draws for the noisy norms
        module = make(8, {"kind": name, **_FIT.get(name, {})}).double()
        torch.manual_seed(1)
        outputs.append(module(inputs).detach())
    assert torch.allclose(*outputs, atol=1e-9) == entry.centres_per_channel
