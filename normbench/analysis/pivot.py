"""Pivot a summary on swept keys: rows × columns of one metric, best over the other keys."""

from __future__ import annotations

from typing import Any

from normbench.analysis.query import best_of, check_keys, group_by, higher_is_better, resolve_metric


def _cell(summary: dict[str, Any], variants: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The best variant of a cell (a nuisance key like lr_mult is tuned, not averaged)."""
    best = best_of(summary, variants, metric) or variants[0]
    stats = best["metrics"].get(metric) or {}
    return {
        **{k: stats.get(k) for k in ("mean", "std", "median", "ci_low", "ci_high", "n")},
        "seeds": len(stats.get("values") or []),
        "variant_id": best["variant_id"],
        "variant_name": best["variant_name"],
        "candidates": len(variants),
    }


def pivot(summary: dict[str, Any], keys: list[str], metric: str) -> dict[str, Any]:
    """Rows = all keys but the last, columns = the last key (one key: a single column).

    When the pivot keys do not pin down one variant, a cell shows the best variant over the
    remaining swept keys (by the metric's direction) and names it.
    """
    check_keys(summary, keys, "--pivot")
    metric = resolve_metric(summary, metric)
    row_keys, col_key = (keys[:-1], keys[-1]) if len(keys) > 1 else (keys, None)
    columns = summary["values"][col_key] if col_key else [metric]
    rows = []
    for row_labels, group in group_by(summary["variants"], row_keys).items():
        cells: dict[str, Any] = {}
        by_col = group_by(group, [col_key]) if col_key else {(metric,): group}
        for col in columns:
            members = by_col.get((col,))
            cells[col] = _cell(summary, members, metric) if members else None
        rows.append({"key": dict(zip(row_keys, row_labels, strict=True)), "cells": cells})
    return {
        "metric": metric,
        "higher_is_better": higher_is_better(summary, metric),
        "row_keys": row_keys,
        "column_key": col_key,
        "columns": columns,
        "rows": rows,
        "tuned_over": [k for k in summary["swept"] if k not in keys],
    }
