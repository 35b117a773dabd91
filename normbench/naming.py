"""How swept values are written in variant names and table labels (one rendering everywhere)."""

from __future__ import annotations

from typing import Any


def format_value(value: Any) -> str:
    """A short, stable rendering of a swept value: ``group[groups=8]``, ``5``, ``[100,100]``."""
    if isinstance(value, dict):
        head = value.get("kind", value.get("name", ""))
        rest = ",".join(
            f"{k}={format_value(v)}" for k, v in value.items() if k not in ("kind", "name")
        )
        return f"{head}[{rest}]" if rest else str(head)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)
