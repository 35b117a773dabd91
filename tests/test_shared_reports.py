"""Reports people share: every text from a run is inert in HTML, markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from test_people import browser  # noqa: F401  (the headless Chromium fixture)

from normbench.report.interactive import JS, script_json
from normbench.report.render import BENCH, LISTING, REPORT, Table, csv_cell, render
from normbench.report.synthetic import make_run

# A swept value that runs script when parsed as HTML (no comma: it is one grid value).
XSS = "<img src=x onerror=window.nbPwned=1>"
SCRIPT = "</script><script>window.nbPwned=2</script>"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from normbench.report.api import write_report

    run = make_run(
        tmp_path_factory.mktemp("xss") / "run",
        norms=("none", "batch"),
        placements=("pre", XSS, SCRIPT),
        lr_mults=(1,),
        seeds=2,
        steps=300,
        eval_every=100,
        exclude_none_post=False,
    )
    write_report(run, warn=lambda m: None)
    return run


def test_the_page_script_never_parses_data_as_html() -> None:
    assert "innerHTML" not in JS and "outerHTML" not in JS and "insertAdjacentHTML" not in JS
    assert "document.write" not in JS


def test_script_json_cannot_close_its_element() -> None:
    data = {"name": "</script><!--<script>" + XSS + " & \u2028"}
    text = script_json(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


def test_hover_and_legend_show_a_tag_as_text_in_chromium(browser, hostile_report: Path) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get((hostile_report / "report.html").as_uri())
    legend = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#nb-legend button")]
    assert any(XSS in t for t in legend) and any(SCRIPT in t for t in legend)
    svg = browser.find_elements(By.CSS_SELECTOR, ".nb-panel svg")[0]
    seen = ""
    for dx in (-150, -60, 0, 60, 150):  # hover across the curves: every read-out is built
        ActionChains(browser).move_to_element_with_offset(svg, dx, 0).perform()
        tip = browser.find_elements(By.CSS_SELECTOR, ".nb-tip")[0]
        assert tip.is_displayed()
        seen += tip.text
        # The read-out holds text, swatches, <b> and <br> only: no element came from the data.
        tags = browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('*')).map(e => e.tagName)", tip
        )
        assert set(tags) <= {"B", "BR", "SPAN"}
    assert XSS in seen and SCRIPT in seen  # shown literally
    assert browser.execute_script("return window.nbPwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_markdown_report_is_inert(hostile_report: Path) -> None:
    md = (hostile_report / "report.md").read_text()
    assert "<script" not in md and "<img" not in md and "</script" not in md
    assert "&lt;img src=x onerror=window.nbPwned=1>" in md


# Dollars open a formula in matplotlib's mathtext and on GitHub; this one does not even parse.
MATH = "$\\frac{1}{$ a_b^c $x$ \\"


def test_dollars_and_backslashes_are_drawn_and_written_literally(tmp_path: Path) -> None:
    from normbench.report.api import write_report

    run = make_run(
        tmp_path / "run", norms=("none", "batch"), placements=("pre", MATH), lr_mults=(1,),
        seeds=2, steps=200, eval_every=100, exclude_none_post=False,
    )  # fmt: skip
    warnings: list[str] = []
    write_report(run, warn=warnings.append)  # mathtext raised "Expected \\frac{num}{den}"
    assert not warnings, warnings
    assert (run / "plots" / "curves_step.png").is_file()
    md = (run / "report.md").read_text()
    assert "\\$\\\\frac{1}{\\$ a_b^c \\$x\\$ \\\\" in md  # every $ and \\ escaped
    assert re.search(r"(?<!\\)\$", md) is None  # no $ left that could open a formula


HOSTILE_ROWS = [
    ["a|b", "1"],
    ["line\nbreak | forged | row", "2"],
    ["ends with \\", "3"],
    ["<script>alert(1)</script>", "4"],
    ["x\r\ny\u2028z", "5"],
]


def _gfm_cells(line: str) -> list[str]:
    """Split a GitHub table row the way cmark-gfm does: ``\\x`` escapes x, ``|`` separates."""
    cells, cur, i = [], "", 0
    body = line.strip()[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cur += body[i : i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += body[i]
        i += 1
    return [*cells, cur]


@pytest.mark.parametrize("style", [REPORT, BENCH, LISTING], ids=["report", "bench", "listing"])
def test_markdown_cells_cannot_forge_rows_columns_or_markup(style) -> None:  # type: ignore[no-untyped-def]
    table = Table("t", ["name", "n"], [list(r) for r in HOSTILE_ROWS], style=style)
    lines = render(table, "markdown").splitlines()
    assert len(lines) == 2 + len(HOSTILE_ROWS)  # header, rule, one line per row
    assert all(len(_gfm_cells(line)) == 2 for line in lines)
    assert "<script" not in "\n".join(lines)


def test_latex_cells_stay_one_row() -> None:
    for style in (REPORT, BENCH):
        table = Table("t\nx", ["name", "n"], [list(r) for r in HOSTILE_ROWS], style=style)
        text = render(table, "latex")
        body = [ln for ln in text.splitlines() if ln.rstrip().endswith("\\\\")]
        assert len(body) == 1 + len(HOSTILE_ROWS)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-0.5", "-0.5"),  # a plain number written as text stays a number
        ("1e-3", "1e-3"),
        ("norm=batch", "norm=batch"),
        (-3, -3),
        (2.5, 2.5),
    ],
)
def test_csv_cell_neutralises_formulas(value, cell) -> None:  # type: ignore[no-untyped-def]
    assert csv_cell(value) == cell


def test_csv_export_of_a_hostile_run(tmp_path: Path) -> None:
    from conftest import run_cli

    run = make_run(
        tmp_path / "run",
        norms=("none",),
        placements=("=1+1", "@SUM(A1)"),
        lr_mults=(1,),
        seeds=1,
        steps=200,
        eval_every=100,
        exclude_none_post=False,
    )
    out = run_cli("report", str(run), "--format", "csv", "--curves")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    cells = {c for r in rows for c in r.values()}
    assert "'=1+1" in cells and "'@SUM(A1)" in cells
    assert not any(re.match(r"[=+@]", c) for c in cells)
