"""The typed shape of a result record: one variant × seed, as a result file stores it.

Annotations only (``TypedDict``): a record stays the plain dict JSON gives, so reading and
writing are unchanged; the checks that validate a file are ``store.result_problem``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class ResultRecord(TypedDict, total=False):
    """``results/<variant_id>-s<seed>.json``."""

    schema_version: int
    variant_id: str
    variant_name: str
    params: dict[str, Any]
    seed: int
    config: dict[str, Any]
    status: str  # ok | failed | diverged
    error: str | None
    diverged_at_step: int | None
    started: str
    finished: str
    device: str
    curves: dict[str, list[Any]]  # step, test_acc, train_loss, … (one list per eval point)
    metrics: dict[str, Any]
    targets: dict[str, Any]
    timing: dict[str, Any]
    diagnostics: dict[str, Any]
    arith: dict[str, Any]
