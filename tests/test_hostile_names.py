"""Names a report must survive: very long, wide (CJK), with control characters, or ambiguous."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from normbench.cli import app
from normbench.naming import clip, display_width, printable
from normbench.report.synthetic import make_run
from normbench.report.width import fit_table, max_line_width


def _run(path: Path, placement: str) -> Path:
    return make_run(
        path,
        norms=("none", "batch"),
        placements=("pre", placement),
        lr_mults=(1, 5),
        seeds=2,
        steps=300,
        eval_every=100,
        exclude_none_post=False,
    )


def test_a_very_long_variant_name_still_gives_a_report(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", "x" * 3000)
    out = run_cli("report", run)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert (run / "report.html").is_file() and list((run / "plots").glob("*.png"))


def test_wide_values_fit_the_terminal_by_display_width(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", "正規化の位置を後ろに置いた場合の比較実験" * 3)
    out = run_cli("report", run)
    assert out.returncode == 0, out.stderr
    assert max_line_width(out.stdout) <= 100, max(out.stdout.splitlines(), key=display_width)
    assert "Glyph" not in out.stderr  # no font warnings for the CJK labels


def test_fit_table_pads_and_wraps_by_columns_not_characters() -> None:
    rows = [["正規化" * 20, "1.0"], ["batch", "2.0"], ["ｆｕｌｌｗｉｄｔｈ" * 5, "3.0"]]
    text = fit_table("t", ["name", "value"], rows, numeric={1}, width=60)
    assert max_line_width(text) <= 60
    # Numbers right-aligned in one column: their last characters share a display column.
    ends = {display_width(line) for line in text.splitlines() if line.endswith(".0")}
    assert len(ends) == 1


def test_control_and_bidi_characters_are_shown_not_obeyed() -> None:
    text = fit_table("t", ["name"], [["\x1b[2Jcleared"], ["abc\u202edcba"], ["tab\there"]])
    assert "\x1b" not in text and "\u202e" not in text and "\t" not in text
    assert "\\x1b[2Jcleared" in text and "abc\\u202edcba" in text
    assert printable("plain, 漢字") == "plain, 漢字"


def test_clip_keeps_both_ends_within_the_width() -> None:
    name = "norm=batch,placement=" + "漢" * 100 + ",lr_mult=30"
    short = clip(name, 48)
    assert display_width(short) <= 48 and short.startswith("norm=batch") and short.endswith("30")
    assert clip("short", 48) == "short"


CLASH = """\
name: clash
dataset:
  name: custom
  target: "custom_models:images"
model:
  kind: custom
  target: "custom_models:mixed_net"
  norm: keep
training:
  steps: 10
  eval_every: 5
  seeds: 1
  device: cpu
grid:
  model.options.hidden: [12, "12"]
"""


@pytest.mark.parametrize(
    ("values", "shown"),
    [('[12, "12"]', "12"), ('[true, "true"]', "true"), ('[[1, 2], "[1,2]"]', "[1,2]")],
)
def test_two_variants_can_never_share_a_name(tmp_path: Path, values: str, shown: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(CLASH.replace('[12, "12"]', values))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:15" in result.output and "model.options.hidden" in result.output
    assert f"both read '{shown}'" in result.output and "Traceback" not in result.output


def test_equal_values_written_alike_are_one_variant(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(CLASH.replace('[12, "12"]', "[12, 16]"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_control_characters_in_names_keep_junit_parseable(tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    run = _run(tmp_path / "run", "esc\x1b[31mred\x07")
    xml = tmp_path / "junit.xml"
    out = run_cli("compare", run, run, "--fail-on", "final_test_acc:-0.5", "--junit-xml", xml)
    assert out.returncode == 0, out.stderr
    names = [c.get("classname") for c in ET.parse(xml).getroot().iter("testcase")]
    assert any("esc\\x1b[31mred\\x07" in n for n in names)
    assert "\x1b" not in out.stdout  # the terminal table shows the escape, not the colour


def test_error_lines_show_control_characters_as_escapes(tmp_path: Path) -> None:
    out = run_cli("report", tmp_path / "no\x1b[2Jsuch")
    assert out.returncode == 2
    assert "\x1b" not in out.stderr and "no\\x1b[2Jsuch" in out.stderr
