"""A model kind registered from one module (``register_model``) reaches every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_models import ENTRY, NAME
from typer.testing import CliRunner

from normbench.cli import app
from normbench.data.registry import load_dataset, view_for_model
from normbench.execute.plan import estimated_seconds
from normbench.models.catalog import MODELS, register_model
from normbench.spec import load_suite

runner = CliRunner()

SUITE = """\
name: toyrun
dataset: {{name: synthetic-blobs, input_norm: zscore}}
model: {{kind: {kind}, width: {width}, norm: layer}}
training: {{optimizer: sgd, lr: 0.1, batch_size: 16, steps: 2, eval_every: 1, seeds: 1,
            device: cpu}}
grid:
  norm: [none, layer, batch]
"""


@pytest.fixture
def registered() -> Iterator[None]:
    """The toy kind in the registry for one test, removed afterwards."""
    register_model(ENTRY)
    try:
        yield
    finally:
        MODELS.pop(NAME)


def _suite(tmp_path: Path, kind: str = NAME, width: int = 8) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(SUITE.format(kind=kind, width=width))
    return path


def test_a_registered_kind_is_listed_and_in_the_schema(registered: None) -> None:
    rows = json.loads(runner.invoke(app, ["list", "models", "--format", "json"]).output)
    toy = next(r for r in rows if r["name"] == NAME)
    assert "width=8 (int >= 1)" in toy["keys"] and toy["placements"] == "pre, post"
    from normbench.suite_schema import build_schema

    model = build_schema()["properties"]["model"]
    assert NAME in model["properties"]["kind"]["enum"]
    (rule,) = [
        r for r in model["allOf"] if r["if"].get("properties", {}).get("kind") == {"const": NAME}
    ]
    assert "width" in rule["then"]["properties"]


def test_a_registered_kind_is_validated_with_did_you_mean(registered: None, tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(_suite(tmp_path))]).exit_code == 0
    typo = runner.invoke(app, ["validate", str(_suite(tmp_path, kind="toyy"))])
    assert typo.exit_code == 2 and "did you mean 'toy'" in typo.output, typo.output
    odd = runner.invoke(app, ["validate", str(_suite(tmp_path, width=7))])
    assert odd.exit_code == 2 and "width must be even, got 7" in odd.output, odd.output
    wrong = _suite(tmp_path)
    wrong.write_text(wrong.read_text().replace("width: 8", "widht: 8"))
    result = runner.invoke(app, ["validate", str(wrong)])
    assert result.exit_code == 2 and "did you mean 'width'" in result.output, result.output


def test_a_registered_kind_views_plans_runs_and_reports(registered: None, tmp_path: Path) -> None:
    split = view_for_model(load_dataset({"name": "synthetic-blobs"}), NAME)
    assert split.x_train.ndim == 2 and split.view == NAME
    suite = load_suite(_suite(tmp_path))
    assert all(estimated_seconds(v.config) > 0 for v in suite.variants)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(_suite(tmp_path)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in out.glob("toyrun/*/results/*.json")]
    assert len(records) == 3 and all(r["status"] == "ok" for r in records), records
    report = runner.invoke(app, ["report", str(next((out / "toyrun").iterdir()))])
    assert report.exit_code == 0 and "layer" in report.output
