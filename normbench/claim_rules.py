"""The grammar of a suite's ``claims:`` (torch-free): what the loader checks before any run."""

from __future__ import annotations

import math
from typing import Any

from normbench.errors import OptionError, unknown
from normbench.metrics import METRICS


def parse_margin(value: Any) -> dict[str, Any] | None:
    """``0.02`` → absolute margin, ``"5%"`` → relative; ``None`` → the metric's default."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise OptionError(f"margin must be a number or a percentage such as '5%', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise OptionError(f"margin must be a finite number ≥ 0, got {value!r}")
        return {"kind": "abs", "value": float(value)}
    text = str(value).strip()
    if text.endswith("%"):
        try:
            number = float(text[:-1])
        except ValueError:
            number = math.nan
        if math.isfinite(number) and 0 <= number < 100:
            return {"kind": "rel", "value": number / 100}
    raise OptionError(f"margin must be a number or a percentage such as '5%', got {value!r}")


def check_claims(claims: list[dict[str, Any]], grid_keys: list[str]) -> None:
    """Torch-free validation of ``claims:`` (``normbench validate``); OptionError with a path."""
    import normbench.train.diag_catalog  # noqa: F401  (diagnostics register their metrics)

    for i, claim in enumerate(claims):
        if claim.get("metric") not in METRICS:
            raise OptionError(
                unknown("metric", claim.get("metric"), sorted(METRICS)), (i, "metric")
            )
        for side in ("better", "than", "where"):
            for key in claim.get(side) or {}:
                if key not in grid_keys:
                    raise OptionError(
                        unknown("grid key", key, grid_keys)
                        if grid_keys
                        else "the suite has no grid to compare variants over",
                        (i, side, key),
                    )
        for j, key in enumerate(claim.get("tune") or []):
            if key not in grid_keys:
                raise OptionError(unknown("grid key", key, grid_keys), (i, "tune", j))
            if any(key in (claim.get(side) or {}) for side in ("better", "than", "where")):
                raise OptionError(
                    f"'{key}' is tuned, so it cannot also be fixed by better:, than: or where:",
                    (i, "tune", j),
                )
        if claim.get("tune") and claim.get("published") is not None:
            raise OptionError("tune: applies to a comparison (better:, than:)", (i, "tune"))
        try:
            parse_margin(claim.get("margin"))
        except OptionError as exc:
            raise OptionError(exc.message, (i, "margin")) from None
        if claim.get("published") is not None:
            if claim.get("better") or claim.get("than"):
                raise OptionError(
                    "a claim compares either two sides (better:, than:) or a "
                    "published value (published:, where:), not both",
                    (i,),
                )
        elif not claim.get("better") or not claim.get("than"):
            raise OptionError(
                "a claim needs better: and than: (mappings of grid keys to values), "
                "or published: with where:",
                (i,),
            )
