"""Diagnostic entries resolve (probe, plot, metrics); the metric traits drive reports as before."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from normbench.analysis.compare import metric_change
from normbench.metric_traits import Metric
from normbench.metrics import METRICS, is_timing, timing_of
from normbench.report import plots
from normbench.report.document import THROUGHPUT_METRICS
from normbench.report.tables import noisy_mark
from normbench.train.diag_catalog import DIAGNOSTICS, Diagnostic

# What decided "timing" before the trait existed, kept here to prove nothing moved.
OLD_TIMING_UNITS = ("s", "ms", "samples/s", "ratio")  # compare: log-value tests, machine warning
OLD_INTERVAL_METRICS = {"samples_per_sec", "ms_per_step"}  # tables: "(noisy)" from timing_noisy
OLD_THROUGHPUT_METRICS = (  # report: the throughput section, in this order
    "samples_per_sec",
    "ms_per_step",
    "forward_ms",
    "backward_ms",
    "optimizer_ms",
    "train_seconds",
    "num_params",
)

SUITE = """\
name: registry
dataset:
  name: synthetic-blobs
model:
  kind: mlp
  hidden: [8, 8]
  activation: relu
  norm: batch
training:
  optimizer: momentum
  lr: 0.05
  batch_size: 16
  steps: 4
  eval_every: 2
  eval_batch_size: 50
  profile_steps: 0
  seeds: 1
  device: cpu
diagnostics: [{names}]
"""


def _split() -> SimpleNamespace:
    """A small learnable 3-class problem (a DataSplit look-alike), so no dataset is loaded."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 160)
    x = rng.normal(size=(160, 12)).astype(np.float32)
    x[:, :3] += 2.0 * np.eye(3, dtype=np.float32)[y]
    return SimpleNamespace(
        x_train=x[:96],
        y_train=y[:96],
        x_test=x[96:],
        y_test=y[96:],
        task="classification",
        num_outputs=3,
        layout="vector",
    )


# --- entries -----------------------------------------------------------------------------------


def test_every_probe_resolves_to_a_probe_class() -> None:
    from normbench.train import probes as P

    for name in DIAGNOSTICS:
        cls = P.probe_class(name)
        assert isinstance(cls, type) and issubclass(cls, P._Probe), name
    with pytest.raises(KeyError, match="no probe for diagnostic 'nope'"):
        P.probe_class("nope")


def test_every_plot_resolves_and_follows_the_catalog() -> None:
    drawn = plots.diagnostic_plots()
    assert [name for name, _ in drawn] == [d.name for d in DIAGNOSTICS.values() if d.plot]
    assert [name for name, _ in drawn] == [
        "activations",
        "grad_norms",
        "ics",
        "landscape",
        "layer_stats",
    ]
    for name, fn in drawn:
        assert fn is getattr(plots, DIAGNOSTICS[name].plot or ""), name


def test_an_unknown_plot_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    typo = dataclasses.replace(DIAGNOSTICS["ics"], name="zz_typo", plot="plot_icss")
    monkeypatch.setitem(DIAGNOSTICS, "zz_typo", typo)
    with pytest.raises(LookupError, match="plot_icss"):
        plots.diagnostic_plots()


def test_a_malformed_entry_fails_when_declared() -> None:
    base = DIAGNOSTICS["shift"]
    with pytest.raises(ValueError, match=r"package\.module:Class"):
        Diagnostic(base.name, base.summary, base.options, base.metrics, probe="ShiftProbe")
    with pytest.raises(ValueError, match="function name"):
        Diagnostic(
            base.name, base.summary, base.options, base.metrics, probe=base.probe, plot="a-b"
        )
    with pytest.raises(ValueError, match="unknown timing kind"):
        Metric("zz", False, "ms", "a typo in the kind", timing="walll")  # type: ignore[arg-type]


def test_every_declared_metric_is_registered_with_its_traits() -> None:
    for d in DIAGNOSTICS.values():
        for m in d.metrics:
            assert METRICS.get(m.name) is m, m.name
            assert m.source == d.name, m.name


def test_every_metric_a_probe_emits_is_declared_and_has_traits(tmp_path: Path) -> None:
    from normbench.spec import load_suite
    from normbench.train import probes as P
    from normbench.train.loop import run_variant

    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(names=", ".join(DIAGNOSTICS)))
    (variant,) = load_suite(path).variants
    config = variant.config
    probes = P.build_probes(config["diagnostics"], config)
    emitted: dict[str, set[str]] = {}

    def spy(name: str, probe: Any) -> None:
        original = probe.result

        def result(ctx: Any, metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            data, out = original(ctx, metrics)
            emitted[name] = set(out)
            return data, out

        probe.result = result

    for name, probe in zip(config["diagnostics"], probes, strict=True):
        spy(name, probe)
    record = run_variant(config, 0, _split(), probes=probes)
    assert record["status"] == "ok", record["error"]
    assert set(emitted) == set(DIAGNOSTICS)
    for name, names in emitted.items():
        assert names == {m.name for m in DIAGNOSTICS[name].metrics}, name
        assert names <= set(METRICS), name


# --- the timing trait --------------------------------------------------------------------------


def test_the_timing_trait_is_what_the_units_decided_before() -> None:
    for m in METRICS.values():
        assert is_timing(m.name) == (m.unit in OLD_TIMING_UNITS), m.name
    assert is_timing("seconds_to_target.test_acc") and not is_timing("steps_to_target.test_acc")
    assert not is_timing("zz_unregistered")


def test_the_timing_trait_drives_the_noisy_marks_as_before() -> None:
    stats = {"mean": 1.0, "n": 1, "values": [1.0]}
    noisy = {"metrics": dict.fromkeys(METRICS, stats), "timing_noisy": True}
    assert {m for m in METRICS if noisy_mark(noisy, m)} == OLD_INTERVAL_METRICS
    rel = {"metrics": dict.fromkeys(METRICS, stats), "rel_cost_noisy": True}
    assert {m for m in METRICS if noisy_mark(rel, m)} == {"rel_ms_per_step"}
    assert timing_of("rel_ms_per_step") == "relative"


def test_the_timing_trait_drives_the_throughput_section_as_before() -> None:
    assert THROUGHPUT_METRICS == OLD_THROUGHPUT_METRICS


def test_the_timing_trait_drives_compare_significance_as_before() -> None:
    def side(values: list[float]) -> dict[str, Any]:
        return {"mean": sum(values) / len(values), "n": len(values), "values": values}

    a, b = side([100.0, 110.0, 90.0]), side([50.0, 55.0, 45.0])
    for name, m in METRICS.items():
        info = {"higher_is_better": m.higher_is_better, "unit": m.unit}
        test = metric_change(name, info, a, b).test
        assert test == ("welch-log" if m.unit in OLD_TIMING_UNITS else "welch"), name


# --- layering ----------------------------------------------------------------------------------


def test_the_catalog_is_a_lower_layer_and_torch_free() -> None:
    # A fresh interpreter: diag_catalog first (the order that once needed a late import), then
    # every reader; the catalog alone must pull in neither analysis, report nor torch.
    code = (
        "import sys; import normbench.train.diag_catalog; "
        "bad = [m for m in sys.modules if m.startswith(('normbench.analysis', "
        "'normbench.report')) or m == 'torch']; assert not bad, bad; "
        "import normbench.gates, normbench.analysis.query, normbench.report.plots; "
        "from normbench.metrics import METRICS; "
        "assert METRICS['ics_cos_mean'].higher_is_better and 'shift_drop' in METRICS; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
