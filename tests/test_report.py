"""Report files, plots, the HTML in headless Chromium, and the ``normbench report`` command."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normbench.cli import app
from normbench.report.api import build_report, write_report
from normbench.report.screenshot import check_page, find_chromium, screenshot
from normbench.report.synthetic import make_run

runner = CliRunner()
DIAGNOSTICS = ("activations", "grad_norms", "ics", "landscape")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("rep") / "run",
        steps=600,
        eval_every=100,
        diagnostics=DIAGNOSTICS,
        fail=[("norm=layer,placement=pre,lr_mult=1", 1)],
    )


@pytest.fixture(scope="module")
def written(run_path: Path) -> list[Path]:
    return write_report(run_path, warn=lambda m: None)


@pytest.fixture
def copy_run(run_path: Path, tmp_path: Path) -> Path:
    """A private copy of the results only, for tests that break files."""
    dst = tmp_path / "run"
    shutil.copytree(
        run_path, dst, ignore=shutil.ignore_patterns("plots", "report.*", "summary.json")
    )
    return dst


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# --- files ----------------------------------------------------------------------------------


def test_report_files(run_path: Path, written: list[Path]) -> None:
    names = {p.name for p in written}
    assert {"summary.json", "report.md", "report.html"} <= names
    for stem in ("curves_step", "curves_seconds", "lr_sensitivity", "throughput", *DIAGNOSTICS):
        assert f"{stem}.png" in names and f"{stem}.svg" in names, stem
        assert png_size(run_path / "plots" / f"{stem}.png")[0] > 300
        assert (run_path / "plots" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    assert all(p.exists() for p in written)


def test_report_markdown_links_exist(run_path: Path, written: list[Path]) -> None:
    md = (run_path / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 10 and all((run_path / link).exists() for link in links)
    for heading in (
        "## Answer",
        "## Across settings",
        "## Overview",
        "## Learning-rate robustness",
        "## Relative to norm=none",
        "## Convergence",
        "## All variants",
        "## Seed statistics",
        "## Diverged, failed and missing",
    ):
        assert heading in md
    assert "not reached" in md and "CUDA out of memory" in md


def test_report_html_is_self_contained(run_path: Path, written: list[Path]) -> None:
    page = (run_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 10
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch
    assert "<script" in page and not re.search(r"<script[^>]*\bsrc=", page)  # inline only
    for text in ("Environment", "synthetic CPU", "test_acc ≥ 0.9", "Learning-rate robustness"):
        assert text in page


def test_summary_json_round_trips(run_path: Path, written: list[Path]) -> None:
    summary = json.loads((run_path / "summary.json").read_text())
    assert summary["schema_version"] == 1 and len(summary["variants"]) == 15
    assert summary["analysis"]["reference"] == {"norm": "none"}
    v = summary["variants"][0]
    assert {
        "variant_id",
        "variant_name",
        "params",
        "config",
        "seeds",
        "counts",
        "metrics",
        "curves",
    } <= set(v)


def test_regression_run_and_broken_diagnostics(tmp_path: Path) -> None:
    """No accuracy curves (regression), no lr sweep, and a diagnostic of the wrong shape."""
    run = make_run(
        tmp_path / "reg",
        norms=("none", "batch"),
        placements=("pre",),
        lr_mults=(1,),
        seeds=2,
        steps=300,
        targets={"test_loss": 0.3},
        diagnostics=("activations",),
    )
    for f in (run / "results").glob("*.json"):
        rec = json.loads(f.read_text())
        rec["curves"].pop("test_acc", None)
        rec["metrics"]["final_test_acc"] = rec["metrics"]["best_test_acc"] = None
        rec["diagnostics"]["activations"]["values"] = "not a matrix"
        f.write_text(json.dumps(rec))
    warnings: list[str] = []
    summary, paths = build_report(run, warn=warnings.append)
    names = {p.name for p in paths}
    assert "curves_step.png" in names and "lr_sensitivity.png" not in names
    assert summary["analysis"]["lr_robustness"] == []
    assert "final_test_loss" in (run / "report.md").read_text()


# --- browser --------------------------------------------------------------------------------


def _need_chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("Chromium not installed (apt-get install -y chromium); CI is not set")
    return path


def test_html_renders_in_chromium(run_path: Path, written: list[Path], tmp_path: Path) -> None:
    chromium = _need_chromium()
    check = check_page(run_path / "report.html", chromium=chromium)
    assert check.images == 10
    assert check.broken == [] and all(w > 0 for w in check.widths)
    assert check.errors == []
    shot = screenshot(
        run_path / "report.html", tmp_path / "shot.png", width=1280, height=1600, chromium=chromium
    )
    assert png_size(shot) == (1280, 1600) and shot.stat().st_size > 20_000


def test_page_check_catches_a_broken_image(tmp_path: Path) -> None:
    chromium = _need_chromium()
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><html><head></head><body><img alt="bad" '
        'src="data:image/png;base64,AAAA"></body></html>'
    )
    check = check_page(page, chromium=chromium)
    assert check.broken == ["bad"] and not check.ok


# --- CLI ------------------------------------------------------------------------------------


def test_cli_report_writes_and_prints(copy_run: Path) -> None:
    result = invoke("report", copy_run, "--no-plots")
    assert result.exit_code == 0, result.stderr
    assert "final_test_acc" in result.stdout and "ok/div/fail" in result.stdout
    assert "report.html" in result.stderr
    assert (copy_run / "report.html").exists() and not (copy_run / "plots").exists()


def test_cli_formats_print_only(copy_run: Path) -> None:
    out = invoke("report", copy_run, "--format", "json")
    assert out.exit_code == 0 and json.loads(out.stdout)[0]["variant_name"]
    assert not (copy_run / "report.html").exists()  # a query writes nothing
    csv_out = invoke("report", copy_run, "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("variant_id,variant_name,norm,placement,lr_mult,ok")
    assert "\\begin{tabular}" in invoke("report", copy_run, "-f", "latex").stdout
    assert invoke("report", copy_run, "-f", "markdown").stdout.splitlines()[1].startswith("|")


def test_cli_pivot(copy_run: Path) -> None:
    out = invoke(
        "report",
        copy_run,
        "--pivot",
        "norm,placement",
        "--metric",
        "final_test_acc",
        "--format",
        "json",
    )
    assert out.exit_code == 0, out.stderr
    pv = json.loads(out.stdout)
    assert pv["column_key"] == "placement" and [r["key"]["norm"] for r in pv["rows"]] == [
        "none",
        "batch",
        "layer",
    ]
    table = invoke("report", copy_run, "--pivot", "norm", "--metric", "steps_to_target").stdout
    assert "steps_to_target" in table and "lr_mult=" in table


def test_cli_reference(copy_run: Path) -> None:
    out = invoke("report", copy_run, "--reference", "norm=none", "--format", "csv")
    assert out.exit_code == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert "speedup_steps_to_target" in header and "ratio_final_test_acc" in header
    assert "verdict_final_test_acc" in header and "effect_steps_to_target_ci_low" in header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pivot", "norm,activation"], "pivot key 'activation' was not swept in this run"),
        (
            ["--pivot", "norm", "--metric", "final_tst_acc"],
            "unknown metric 'final_tst_acc' — did you mean 'final_test_acc'",
        ),
        (["--reference", "norm=nothing"], "no variant has norm=nothing"),
        (
            ["--reference", "nrom=none"],
            "reference key 'nrom' was not swept in this run — did you mean 'norm'",
        ),
        (["--metric", "final_test_acc"], "--metric needs --pivot or --reference"),
    ],
)
def test_cli_bad_arguments(copy_run: Path, args: list[str], message: str) -> None:
    result = invoke("report", copy_run, "--format", "json", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_not_a_run_directory(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"normbench: error: {tmp_path} is not a normbench run directory (no manifest.json)"
    )
    missing = invoke("report", tmp_path / "nope")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_cli_corrupt_result_file(copy_run: Path) -> None:
    victim = sorted((copy_run / "results").glob("*.json"))[4]
    victim.write_text(victim.read_text()[:200])  # truncated mid-write
    result = invoke("report", copy_run, "--format", "json")
    assert result.exit_code == 0
    assert f"warning: {victim} is not a valid result file (truncated JSON" in result.stderr
    assert "skipped" in result.stderr and json.loads(result.stdout)
    strict = invoke("report", copy_run, "--strict", "--format", "json")
    assert strict.exit_code == 2 and victim.name in strict.stderr and "(--strict)" in strict.stderr


def test_cli_empty_results(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "has no readable result files" in result.stderr


def test_cli_help_has_example() -> None:
    result = invoke("report", "--help")
    assert result.exit_code == 0
    assert "Example: normbench report" in result.stdout and "--no-plots" in result.stdout


def test_report_never_imports_torch(copy_run: Path) -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom normbench.cli import app\n"
        f"r = CliRunner().invoke(app, ['report', {str(copy_run)!r}, '--no-plots'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
