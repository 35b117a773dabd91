"""Bench records as a table for the shared renderer, in every output format (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from normbench.report.render import BENCH, FORMATS, Table, render

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
        f"{rec['norm']} (compiled)" if rec.get("compiled") else rec["norm"],
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


def render_bench(records: Sequence[dict[str, Any]], fmt: str = "table") -> str:
    """Render records in one of ``FORMATS``; the result ends with a newline."""
    table = Table(
        "",
        list(HEADERS),
        [[str(c) for c in _row(r)] for r in records],
        data=list(records),
        numeric={4, 7, 8, 9, 10},
        keys=3,
        style=BENCH,
    )
    return render(table, fmt)


__all__ = ["FORMATS", "HEADERS", "format_seconds", "render_bench"]
