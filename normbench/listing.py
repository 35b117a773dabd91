"""Rows for ``normbench list``, generated from the registries (torch-free)."""

from __future__ import annotations

import json
from collections.abc import Callable

Rows = list[dict[str, str]]


def norm_rows() -> Rows:
    from normbench.norms.catalog import norm_rows as rows

    return rows()


def model_rows() -> Rows:
    from normbench.models.catalog import MODELS

    return [
        {
            "name": m.name,
            "keys": ", ".join(o.describe() for o in m.options),
            "placements": ", ".join(m.placements),
            "summary": m.summary,
        }
        for m in MODELS.values()
    ]


def dataset_rows() -> Rows:
    from normbench.data.registry import dataset_rows as rows

    return rows()


def activation_rows() -> Rows:
    from normbench.models.catalog import ACTIVATIONS

    return [{"name": k, "summary": v} for k, v in ACTIVATIONS.items()]


def metric_rows() -> Rows:
    from normbench.metrics import METRICS

    return [
        {
            "name": m.name,
            "better": "higher" if m.higher_is_better else "lower",
            "unit": m.unit,
            "source": m.source,
            "summary": m.summary,
        }
        for m in METRICS.values()
    ]


def diagnostic_rows() -> Rows:
    from normbench.train.diag_catalog import rows

    return rows()


LISTINGS: dict[str, Callable[[], Rows]] = {
    "norms": norm_rows,
    "models": model_rows,
    "datasets": dataset_rows,
    "activations": activation_rows,
    "metrics": metric_rows,
    "diagnostics": diagnostic_rows,
}


def render_rows(rows: Rows, fmt: str) -> str:
    """Render rows in one of the output formats, without the final newline (``print`` adds it)."""
    from normbench.report.render import LISTING, Table, render

    cols = list(dict.fromkeys(k for r in rows for k in r))
    # Registry entries are sentences: the LISTING style stacks records rather than split a table.
    table = Table("", cols, [[r.get(c, "") for c in cols] for r in rows], data=rows, style=LISTING)
    return render(table, fmt).rstrip("\n")


def render_listing(what: str, fmt: str) -> str:
    """One registry, or all of them under headings."""
    if what != "all":
        return render_rows(LISTINGS[what](), fmt)
    if fmt == "json":
        return json.dumps({name: fn() for name, fn in LISTINGS.items()}, indent=2)
    parts = []
    for name, fn in LISTINGS.items():
        heading = f"## {name}" if fmt == "markdown" else name.upper()
        parts.append(f"{heading}\n\n{render_rows(fn(), fmt)}")
    return "\n\n".join(parts)
