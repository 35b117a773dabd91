"""One colour and line-style rule for every figure: the PNG/SVG plots and report.html's charts.

A variant's colour follows its norm (the report's colour key: ``family_keys``), ``none``
black, the others in the order the suite lists them; its line style follows its placement
(the style key). Both are fixed once per summary, so a variant looks the same in every plot
and in the interactive page.
"""

from __future__ import annotations

from typing import Any

from normbench.analysis.query import family_keys

# Okabe & Ito (2008), colour-blind safe; yellow last because it is faint on white.
# Paul Tol's "muted" set extends it for grids with more than seven norms.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#F0E442",
    "#332288",
    "#882255",
    "#44AA99",
    "#999933",
    "#AA4499",
    "#661100",
    "#6699CC",
)
BASELINE = "none"  # the norm every plot is read against
BASELINE_COLOUR = "#000000"
# matplotlib dash specs and the SVG stroke-dasharray drawn like them (at report.html's width).
DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
SVG_DASHES = ("", "6,3", "1.5,3", "6,3,1.5,3", "9,1.8,1.8,1.8,1.8,1.8", "1.8,5.4")


class Palette:
    """The colour of each colour-key value and the style index of each style-key value."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.colour_key, self.style_key = family_keys(summary)
        values = summary["values"]
        colour_values = values.get(self.colour_key, []) if self.colour_key else []
        others = [c for c in colour_values if c != BASELINE]
        self.colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(others)}
        self.colours[BASELINE] = BASELINE_COLOUR
        style_values = values.get(self.style_key, []) if self.style_key else []
        self.styles = {s: i for i, s in enumerate(style_values)}
        self.keys = [k for k in (self.colour_key, self.style_key) if k]

    def colour(self, labels: dict[str, str]) -> str:
        return self.colours.get(labels.get(self.colour_key or "", ""), PALETTE[0])

    def style(self, labels: dict[str, str]) -> int | None:
        """The style index of a variant (None: no style key, or a value it does not list)."""
        return self.styles.get(labels.get(self.style_key or "", ""))

    def dash(self, labels: dict[str, str]) -> Any:
        i = self.style(labels)
        return "-" if i is None else DASHES[i % len(DASHES)]

    def svg_dash(self, labels: dict[str, str]) -> str:
        i = self.style(labels)
        return "" if i is None else SVG_DASHES[i % len(SVG_DASHES)]
