"""Render bench records as table, markdown, csv, json or latex (torch-free)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from normbench.errors import InputError, unknown

FORMATS: tuple[str, ...] = ("table", "markdown", "csv", "json", "latex")
# Columns of the human-readable formats; csv and json carry every field.
HEADERS: tuple[str, ...] = (
    "norm",
    "shape",
    "dtype",
    "device",
    "threads",
    "mode",
    "pass",
    "median",
    "IQR",
    "GB/s",
    "of copy",
    "note",
)
_TABLEFMT = {"table": "simple", "markdown": "github", "latex": "latex"}


def format_seconds(seconds: float | None) -> str:
    """``14.2 ms``, ``3.51 µs``: three significant figures in a readable unit."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _row(rec: dict[str, Any]) -> list[Any]:
    ok = rec["status"] == "ok"
    notes = ["noisy"] if ok and rec["noisy"] else []
    if ok and rec.get("roof_note"):
        notes.append(rec["roof_note"])
    note = "; ".join(notes) if ok else f"error: {rec['error']}"
    return [
        rec["norm"],
        rec["shape"],
        rec["dtype"],
        rec["device"],
        rec["threads"],
        rec["mode"] or "—",
        rec["pass"],
        format_seconds(rec["median_s"]),
        _pct(rec["iqr_fraction"]),
        "—" if not ok else f"{rec['gbps']:.2f}",
        _pct(rec["copy_fraction"]),
        note,
    ]


def _csv_value(value: Any) -> Any:
    # The resolved spec is a mapping; keep csv flat by writing it as compact JSON.
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def render_bench(records: Sequence[dict[str, Any]], fmt: str = "table") -> str:
    """Render records in one of ``FORMATS``; the result ends with a newline."""
    if fmt == "json":
        return json.dumps(list(records), indent=2) + "\n"
    if fmt == "csv":
        fields: list[str] = []
        for rec in records:
            fields += [k for k in rec if k not in fields]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: _csv_value(v) for k, v in rec.items()})
        return out.getvalue()
    if fmt in _TABLEFMT:
        from tabulate import tabulate

        table = tabulate(
            [_row(r) for r in records],
            headers=HEADERS,
            tablefmt=_TABLEFMT[fmt],
            disable_numparse=True,
        )
        return table + "\n"
    raise InputError(unknown("format", fmt, FORMATS))
