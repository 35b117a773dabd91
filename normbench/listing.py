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
        {"name": m.name, "keys": ", ".join(sorted(m.keys - {"kind"})), "summary": m.summary}
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
    """Render rows as a table (plain grid), markdown, csv, json or latex."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "table":
        from normbench.report.width import stack_records

        # Registry entries are sentences: stacked records read better than a split table.
        cols = list(rows[0]) if rows else []
        return stack_records(cols, [[r.get(c, "") for c in cols] for r in rows]).rstrip("\n")
    from tabulate import tabulate

    tablefmt = {"markdown": "github", "latex": "latex_booktabs"}.get(fmt, "simple")
    return tabulate(rows, headers="keys", tablefmt=tablefmt)


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
