"""Tidy rows of a run for analysis tools: one per variant × seed × eval point (torch-free).

``normbench.load_run(DIR).to_pandas()`` and ``normbench report DIR --format csv|parquet
--curves`` are built on these rows; pandas (and pyarrow for parquet) are optional extras.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from normbench.errors import InputError
from normbench.naming import format_value

ID_COLUMNS = ("variant_id", "variant_name")
CURVE_COLUMNS = (
    "step",
    "train_seconds",
    "train_loss",
    "test_loss",
    "test_acc",
    "train_probe_loss",
    "train_probe_acc",
)
PANDAS_HINT = "pip install 'normbench[pandas]'"


def _swept(records: list[dict[str, Any]]) -> list[str]:
    """Swept keys in grid order (the order of the first record's params, then any others)."""
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r.get("params") or {}))
    return list(keys)


def _scalar(value: Any) -> Any:
    """A swept value a column can hold: numbers and strings as they are, mappings as labels."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return format_value(value)


def _head(record: dict[str, Any], swept: list[str]) -> dict[str, Any]:
    params = record.get("params") or {}
    return {
        "variant_id": record.get("variant_id"),
        "variant_name": record.get("variant_name"),
        **{k: _scalar(params.get(k)) for k in swept},
        "seed": record.get("seed"),
        "status": record.get("status"),
    }


def _sorted(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # Result files come in directory order; sort so the same run always gives the same rows.
    return sorted(records, key=lambda r: (str(r.get("variant_name")), int(r.get("seed") or 0)))


def curve_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant × seed × eval point, swept keys as columns; NaN-free (None)."""
    records = _sorted(records)
    swept = _swept(records)
    rows = []
    for r in records:
        curves = r.get("curves") or {}
        head = _head(r, swept)
        for i, step in enumerate(curves.get("step") or []):
            row = dict(head, step=step)
            for c in CURVE_COLUMNS[1:]:
                values = curves.get(c)
                row[c] = values[i] if values is not None and i < len(values) else None
            rows.append(row)
    return rows


def metric_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant × seed: the swept keys and every recorded metric."""
    records = _sorted(records)
    swept = _swept(records)
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.get("metrics") or {}))
    return [
        {**_head(r, swept), **{m: (r.get("metrics") or {}).get(m) for m in names}} for r in records
    ]


def rows_for(records: Iterable[dict[str, Any]], curves: bool) -> list[dict[str, Any]]:
    return curve_rows(records) if curves else metric_rows(records)


def to_dataframe(rows: list[dict[str, Any]]) -> Any:
    """Rows as a pandas DataFrame (``InputError`` naming the extra when pandas is missing)."""
    try:
        import pandas as pd
    except ImportError:
        raise InputError(f"this needs pandas, which is not installed: {PANDAS_HINT}") from None
    return pd.DataFrame.from_records(rows)


def to_parquet(rows: list[dict[str, Any]]) -> bytes:
    """Rows as a Parquet file's bytes (pandas + pyarrow)."""
    frame = to_dataframe(rows)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(
            f"--format parquet needs pyarrow, which is not installed: {PANDAS_HINT}"
        ) from None
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


__all__ = ["curve_rows", "metric_rows", "rows_for", "to_dataframe", "to_parquet"]
