"""Custom models and datasets: the factory contract, norm swapping, pre-flight checks, probes."""

from __future__ import annotations

import json
from pathlib import Path

import custom_models as cm
import pytest
import torch
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import OptionError
from normbench.models.custom import build_custom
from normbench.models.swap import check_fit, find_sites, swap_norms, trace_sites
from normbench.norms import NORMS, make, resolve_norm

runner = CliRunner()

SUITE = """\
name: mine
dataset:
  name: custom
  target: "custom_models:images"
model:
  kind: custom
  target: "custom_models:{factory}"
  {norm}
training:
  optimizer: adam
  lr: 0.01
  batch_size: 16
  steps: 30
  eval_every: 10
  seeds: 2
  device: cpu
{extra}
"""


def suite(tmp_path: Path, factory: str = "mixed_net", norm: str = "", extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(factory=factory, norm=norm, extra=extra))
    return path


def run(tmp_path: Path, path: Path, *args: str):
    return runner.invoke(
        app,
        [
            "run",
            str(path),
            "--out",
            str(tmp_path / "runs"),
            "--no-report",
            "--format",
            "json",
            "-q",
            "--workers",
            "1",
            *args,
        ],
    )


def records(tmp_path: Path) -> dict[tuple[str, int], dict]:
    (run_dir,) = sorted((tmp_path / "runs" / "mine").iterdir())
    out = {}
    for f in sorted((run_dir / "results").glob("*.json")):
        r = json.loads(f.read_text())
        out[(r["variant_name"], r["seed"])] = r
    return out


# --- swapping every registry norm into a model with 1-D and 2-D batch norms ---------------------

SWAPPABLE = [n for n, e in NORMS.items() if not e.wraps_layer and n != "custom"]
# Where the registry norm cannot sit in MixedNet (BatchNorm2d(8) on (N, 8, 6, 6), BatchNorm1d(12)
# on (N, 12)) at batch size 16, and the phrase that says why (group norm fits: groups auto keeps
# two channels a group on the (N, 12) features).
REFUSED = {
    "instance": ("'bn'", "needs a spatial axis"),
    "frn": ("'bn'", "needs a spatial axis"),
    "cross_norm": ("'bn'", "needs a spatial axis"),
    "decorrelated_batch": ("'features.1'", "group_size 16 must divide"),
    "ghost_batch": ("'features.1'", "ghost_size 32 must divide batch_size 16"),
}


def mixed_sites() -> tuple[torch.nn.Module, list, torch.Tensor]:
    torch.manual_seed(0)
    model = cm.mixed_net(3, (1, 6, 6))
    sites = find_sites(model, None)
    x = torch.randn(16, 1, 6, 6)
    trace_sites(model, sites, x)
    return model, sites, x


def test_sites_record_path_class_channels_and_dimensionality() -> None:
    _, sites, _ = mixed_sites()
    assert [(s.path, s.old, s.features, s.spatial) for s in sites] == [
        ("features.1", "BatchNorm2d(8)", 8, 2),
        ("bn", "BatchNorm1d(12)", 12, 0),
    ]


@pytest.mark.parametrize("kind", SWAPPABLE)
def test_each_registry_norm_replaces_both_batch_norms_or_is_refused_with_a_sentence(
    kind: str,
) -> None:
    model, sites, x = mixed_sites()
    norm = resolve_norm(kind)
    if kind in REFUSED:
        where, why = REFUSED[kind]
        with pytest.raises(OptionError) as err:
            check_fit(sites, norm, batch_size=16)
        assert where in err.value.message and why in err.value.message
        assert f"by norm '{kind}'" in err.value.message
        return
    check_fit(sites, norm, batch_size=16)
    swaps = swap_norms(model, sites, norm)
    assert [s["path"] for s in swaps] == ["features.1", "bn"]
    for path, width in (("features.1", 8), ("bn", 12)):  # what the registry builds for the width
        assert repr(model.get_submodule(path)) == repr(make(width, norm))
    out = model.train()(x)
    assert out.shape == (16, 3) and torch.isfinite(out).all()
    assert model.eval()(x).shape == (16, 3)


def test_group_norm_fits_once_the_groups_divide_the_channels() -> None:
    model, sites, x = mixed_sites()
    norm = resolve_norm({"kind": "group", "groups": 4})
    check_fit(sites, norm, batch_size=16)
    swap_norms(model, sites, norm)
    assert isinstance(model.bn, torch.nn.GroupNorm) and model.bn.num_groups == 4
    assert model(x).shape == (16, 3)


def test_swap_by_class_and_by_module_path_pattern() -> None:
    model = cm.mixed_net(3, (1, 6, 6))
    assert [s.path for s in find_sites(model, ["BatchNorm1d"])] == ["bn"]
    assert [s.path for s in find_sites(model, ["features.*"])] == ["features.1"]
    assert [s.path for s in find_sites(model, ["torch.nn.BatchNorm2d", "b?"])] == [
        "features.1",
        "bn",
    ]


def test_a_channels_last_layer_norm_is_replaced_on_its_last_axis() -> None:
    torch.manual_seed(0)
    model = cm.SeqNet(2, (5, 3))
    sites = find_sites(model, None)
    x = torch.randn(8, 5, 3)
    trace_sites(model, sites, x)
    assert sites[0].channels_last and sites[0].shape == (8, 8, 5) and sites[0].spatial == 1
    swap_norms(model, sites, resolve_norm("batch"))
    model.train()(x)
    bn = model.norm.norm  # ChannelsLast → BatchNorm over the 8 features, statistics over N and T
    assert bn.running_mean.shape == (8,)
    assert model(x).shape == (8, 2)


# --- norm: keep, determinism ---------------------------------------------------------------------


def test_norm_keep_is_the_factorys_model_bit_for_bit() -> None:
    cfg = {
        "kind": "custom",
        "target": "custom_models:mixed_net",
        "options": {},
        "swap": None,
        "norm": {"kind": "keep"},
    }
    torch.manual_seed(3)
    kept = build_custom(cfg, (1, 6, 6), 3)
    torch.manual_seed(3)
    plain = cm.mixed_net(3, (1, 6, 6))
    assert repr(kept) == repr(plain)
    a, b = kept.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(16, 1, 6, 6)
    assert torch.equal(kept.train()(x), plain.train()(x))
    assert [s["new"] for s in kept.normbench_swaps] == ["kept", "kept"]


def test_runs_are_deterministic_and_record_what_was_replaced(tmp_path: Path) -> None:
    grid = "grid:\n  norm: [keep, layer, {kind: group, groups: 4}]"
    path = suite(tmp_path, extra=grid)
    for _ in range(2):
        assert run(tmp_path, path).exit_code == 0
    first, second = sorted((tmp_path / "runs" / "mine").iterdir())
    for f in sorted((first / "results").glob("*.json")):
        a, b = json.loads(f.read_text()), json.loads((second / "results" / f.name).read_text())
        assert a["status"] == "ok", a["error"]
        assert a["curves"]["train_loss"] == b["curves"]["train_loss"]
        assert a["curves"]["test_acc"] == b["curves"]["test_acc"]
        new = {
            "norm=keep": "kept",
            "norm=layer": "layer",
            "norm=group[groups=4]": "group(groups=4)",
        }
        assert a["model_swaps"] == [
            {"path": "features.1", "old": "BatchNorm2d(8)", "new": new[a["variant_name"]]},
            {"path": "bn", "old": "BatchNorm1d(12)", "new": new[a["variant_name"]]},
        ]


# --- exit 2 before training ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "norm", "phrase"),
    [
        (
            "raising",
            "",
            "custom model factory 'custom_models:raising' raised ValueError: no weights",
        ),
        ("not_a_module", "", "returned a list, not an nn.Module"),
        (
            "wrong_outputs",
            "",
            "returns (16, 6) for a batch of shape (16, 1, 6, 6), but the dataset needs (16, 3)",
        ),
        (
            "mixed_net",
            "norm: instance",
            "cannot replace 'bn' (BatchNorm1d(12), input (N, 12)) by norm "
            "'instance': it needs a spatial axis",
        ),
        ("mixed_net", "norm: {kind: group, groups: 32}", "groups 32 must divide"),
    ],
)
def test_bad_models_exit_2_before_training(
    tmp_path: Path, factory: str, norm: str, phrase: str
) -> None:
    result = run(tmp_path, suite(tmp_path, factory, norm))
    assert result.exit_code == 2, result.output
    assert phrase in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_validate_checks_importability_and_signature_without_building(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(suite(tmp_path, "no_input_shape"))])
    assert result.exit_code == 2
    assert (
        "model.target: custom model factory 'custom_models:no_input_shape' cannot be called "
        "as no_input_shape(num_outputs=…, input_shape=…, **options)" in result.output
    )
    result = runner.invoke(app, ["validate", str(suite(tmp_path, "missing"))])
    assert result.exit_code == 2 and "has no attribute 'missing'" in result.output
    # The factory raising is found only by building it: plain validate passes.
    assert runner.invoke(app, ["validate", str(suite(tmp_path, "raising"))]).exit_code == 0


def test_validate_show_model_prints_every_replaced_layer(tmp_path: Path) -> None:
    path = suite(tmp_path, extra="grid:\n  norm: [keep, layer]")
    result = runner.invoke(app, ["validate", "--show-model", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "norm=layer: custom_models:mixed_net, input (N, 1, 6, 6) → output (N, 3)" in result.output
    )
    assert "features.1  BatchNorm2d(8) → layer" in result.output
    assert "bn          BatchNorm1d(12) → kept" in result.output
    bad = runner.invoke(app, ["validate", "--show-model", str(suite(tmp_path, "raising"))])
    assert bad.exit_code == 2 and "raised ValueError" in bad.output


def test_the_target_module_is_found_next_to_the_suite(tmp_path: Path) -> None:
    (tmp_path / "nb_next_to_suite.py").write_text(
        "from torch import nn\n"
        "def net(num_outputs, input_shape, width=4):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(36, width), nn.LayerNorm(width),\n"
        "                         nn.ReLU(), nn.Linear(width, num_outputs))\n"
    )
    text = SUITE.format(factory="x", norm="norm: rms", extra="").replace(
        "custom_models:x", "nb_next_to_suite:net"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run(tmp_path, path, "--set", "training.seeds=1")
    assert result.exit_code == 0, result.output
    (record,) = records(tmp_path).values()
    assert record["status"] == "ok"
    assert record["model_swaps"] == [{"path": "2", "old": "LayerNorm(4)", "new": "rms"}]


# --- custom datasets ------------------------------------------------------------------------------


def test_a_custom_loader_returning_a_numpy_tuple_trains(tmp_path: Path) -> None:
    text = SUITE.format(factory="SeqNet", norm="norm: batch", extra="").replace(
        "custom_models:images", "custom_models:sequences"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run(tmp_path, path, "--set", "training.seeds=1")
    assert result.exit_code == 0, result.output
    (record,) = records(tmp_path).values()
    assert record["status"] == "ok" and record["metrics"]["final_test_acc"] is not None


def test_a_broken_loader_exits_2_with_a_sentence(tmp_path: Path) -> None:
    text = SUITE.format(factory="mixed_net", norm="", extra="").replace(
        "custom_models:images", "custom_models:broken_loader"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run(tmp_path, path)
    assert result.exit_code == 2
    assert "custom dataset loader 'custom_models:broken_loader' returned str" in result.output
    assert not (tmp_path / "runs").exists()


# --- diagnostics address layers by module path ----------------------------------------------------


def test_probes_by_module_path_on_a_custom_model(tmp_path: Path) -> None:
    diags = (
        "diagnostics:\n  activations: {layer: act}\n  ics: {layers: [features, fc, head]}\n"
        "  grad_norms: {}\n  eval_gap: {}"
    )
    path = suite(tmp_path, norm="norm: batch", extra=diags)
    result = run(tmp_path, path, "--set", "training.seeds=1")
    assert result.exit_code == 0, result.output
    (record,) = records(tmp_path).values()
    d = record["diagnostics"]
    assert d["activations"]["layer"] == "act" and len(d["activations"]["values"]) == 4
    assert d["ics"]["layers"] == ["features", "fc", "head"]
    assert d["ics"]["l2"][0][0] == 0.0 and d["ics"]["l2"][0][1] > 0
    assert "features.0.weight" in d["grad_norms"]["layers"]
    assert d["eval_gap"]["acc_running_stats"] is not None
    # The report and its diagnostic plots work from the run directory, as for built-in models.
    (run_dir,) = (tmp_path / "runs" / "mine").iterdir()
    report = runner.invoke(app, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    assert {"activations.png", "ics.png", "grad_norms.png"} <= {
        p.name for p in (run_dir / "plots").iterdir()
    }


def test_an_index_counts_the_norm_sites_and_a_bad_path_exits_2(tmp_path: Path) -> None:
    path = suite(tmp_path, norm="norm: layer", extra="diagnostics:\n  activations: {layer: -1}")
    assert run(tmp_path, path, "--set", "training.seeds=1").exit_code == 0
    (record,) = records(tmp_path).values()
    assert record["diagnostics"]["activations"]["layer"] == "bn"
    bad = suite(tmp_path, extra="diagnostics:\n  ics: {layers: [features, nope]}")
    result = run(tmp_path / "b", bad)
    assert result.exit_code == 2
    assert "diagnostics.ics.layers[1]: the model has no module 'nope'" in result.output


def test_a_custom_norm_class_is_swapped_in_like_a_registry_norm(tmp_path: Path) -> None:
    path = suite(tmp_path, norm="norm: {kind: custom, target: 'custom_norms:Scale', init: 0.5}")
    assert run(tmp_path, path, "--set", "training.seeds=1").exit_code == 0
    (record,) = records(tmp_path).values()
    assert record["status"] == "ok"
    assert [s["new"] for s in record["model_swaps"]] == [
        "custom(target=custom_norms:Scale, init=0.5)"
    ] * 2


def test_nothing_to_swap_and_keep_on_a_built_in_model_are_refused(tmp_path: Path) -> None:
    result = run(tmp_path, suite(tmp_path, "plain_mlp", "norm: layer"))
    assert result.exit_code == 2 and "has no normalisation layer to replace by norm 'layer'" in (
        result.output
    )
    assert run(tmp_path, suite(tmp_path, "plain_mlp", "norm: keep")).exit_code == 0
    text = (
        "name: b\ndataset: {name: synthetic-blobs}\nmodel: {kind: mlp, hidden: [4], norm: keep}\n"
    )
    (tmp_path / "b.yaml").write_text(text)
    result = runner.invoke(app, ["validate", str(tmp_path / "b.yaml")])
    assert result.exit_code == 2 and "which this mlp model has not" in result.output


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet-norms.yaml"


def test_the_example_suite_builds_and_swaps_the_resnets_batch_norms() -> None:
    result = runner.invoke(app, ["validate", "--show-model", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output and "8 variants × 2 seeds" in result.output
    assert "layers.2.shortcut.1  BatchNorm1d(64) → group(groups=8)" in result.output
    assert "bn1                  BatchNorm1d(16) → kept" in result.output
    # Its BatchNorm1d layers see (N, C, L): instance norm fits there, unlike on (N, C).
    from normbench.api import check_models
    from normbench.spec import load_suite

    checks = check_models(load_suite(EXAMPLE, ["norm=instance"]))
    assert len(checks) == 2 and all(len(c.swaps) == 9 for c in checks.values())
    assert {s["new"] for c in checks.values() for s in c.swaps} == {"instance"}


def test_a_loader_that_does_not_take_its_options_fails_validation(tmp_path: Path) -> None:
    text = SUITE.format(factory="mixed_net", norm="", extra="").replace(
        'target: "custom_models:images"', 'target: "custom_models:images"\n  options: {size: 3}'
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        "dataset.options.size: custom dataset loader 'custom_models:images' cannot be called "
        "as images(**options): got an unexpected keyword argument 'size'" in result.output
    )


def test_a_preflight_error_is_located_like_a_load_time_one(tmp_path: Path) -> None:
    # The suite's own line map (and its --set flags) place the error, as validation does.
    bad = suite(tmp_path, extra="diagnostics:\n  ics: {layers: [features, nope]}")
    line = bad.read_text().splitlines().index("  ics: {layers: [features, nope]}") + 1
    result = run(tmp_path / "b", bad)
    assert result.exit_code == 2
    assert f"{bad}:{line}: diagnostics.ics.layers[1]: the model has no module" in result.output
    flag = run(tmp_path / "c", suite(tmp_path), "--set", "diagnostics.ics.layers=[fc,nope]")
    assert flag.exit_code == 2
    assert "--set diagnostics.ics.layers=[fc,nope]: diagnostics.ics.layers[1]" in flag.output
