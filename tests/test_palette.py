"""One palette: a variant has the same colour and dash in the PNG plots and in report.html."""

from __future__ import annotations

import json
from pathlib import Path

from normbench.report.interactive import chart_data
from normbench.report.palette import BASELINE_COLOUR, DASHES, SVG_DASHES
from normbench.report.plots import Styler

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def _summary(name: str) -> dict:
    return json.loads((REPORTS / name / "summary.json").read_text())


def test_the_html_series_take_the_plots_colour_and_dash() -> None:
    summary = _summary("quickstart")  # norm × placement × lr_mult: colour, dash and panels
    styler = Styler(summary)
    series = {s["key"]: s for s in chart_data(summary)["series"]}
    for v in summary["variants"]:
        key = ",".join(f"{k}={v['labels'][k]}" for k in ("norm", "placement"))
        assert series[key]["color"] == styler.colour(v["labels"])
        assert series[key]["dash"] == SVG_DASHES[DASHES.index(styler.dash(v["labels"]))]
    assert series["norm=none,placement=pre"]["color"] == BASELINE_COLOUR
    # Same norm, other placement: one colour, another dash (no colour per combination).
    pre, post = series["norm=batch,placement=pre"], series["norm=batch,placement=post"]
    assert pre["color"] == post["color"] and pre["dash"] != post["dash"]
