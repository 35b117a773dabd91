"""A run's summary as a type: what ``summary.json`` holds and the questions asked of it.

``SummaryData`` and its parts are ``TypedDict``s (the document stays the plain dict written to
disk, byte for byte); ``Summary`` wraps one, reads like it (a read-only mapping) and answers
the report's queries — headline metric, direction, best variant of a group, families — each
through the one rule in ``analysis/query.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

from normbench.analysis import query


class MetricSummary(TypedDict, total=False):
    """One metric of one variant over its seeds."""

    mean: float | None
    std: float | None
    median: float | None
    min: float | None
    max: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    values: list[float | None]


class CurveSummary(TypedDict, total=False):
    """One curve of one variant at each eval point, over its seeds."""

    mean: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    n: list[int]


class VariantSummary(TypedDict, total=False):
    """One variant of ``summary["variants"]``."""

    variant_id: str
    variant_name: str
    params: dict[str, Any]
    labels: dict[str, str]  # swept key → its value as tables show it
    config: dict[str, Any]
    seeds: list[int]
    seed_status: dict[str, str]
    counts: dict[str, int]
    errors: list[Any]
    diverged_at_step: list[Any]
    metrics: dict[str, MetricSummary]
    targets: dict[str, Any]
    curves: dict[str, Any]  # "step": [...], every other key a CurveSummary
    timing_spread: Any
    timing_noisy: bool
    rel_cost: Any
    rel_cost_noisy: bool


class SummaryData(TypedDict, total=False):
    """``summary.json``."""

    schema_version: int
    normbench_version: str
    run: dict[str, Any]
    suite: dict[str, Any]
    manifest: dict[str, Any]
    swept: list[str]
    values: dict[str, list[str]]
    seeds: list[int]
    counts: dict[str, int]
    missing_variants: list[Any]
    metric_info: dict[str, dict[str, Any]]
    variants: list[VariantSummary]
    analysis: dict[str, Any]


class Summary(Mapping[str, Any]):
    """A summary document with its queries; ``summary["variants"]`` reads the document."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data.data if isinstance(data, Summary) else data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def variants(self) -> list[VariantSummary]:
        return self.data["variants"]

    @property
    def headline(self) -> str | None:
        """The metric tables and plots lead with (``query.headline_metric``)."""
        return query.headline_metric(self.data)

    def higher_is_better(self, metric: str) -> bool:
        return query.higher_is_better(self.data, metric)

    def best(self, variants: list[VariantSummary], metric: str) -> VariantSummary | None:
        """The variant of ``variants`` with the best mean of ``metric`` (None: no value)."""
        return query.best_of(self.data, variants, metric)

    def score(self, variant: VariantSummary, metric: str) -> float:
        """Larger is better whatever the metric's direction; no value ranks last."""
        m = query.mean(variant, metric)
        if m is None:
            return -math.inf
        return m if self.higher_is_better(metric) else -m

    def groups(
        self, keys: list[str], variants: list[VariantSummary] | None = None
    ) -> dict[tuple[str, ...], list[VariantSummary]]:
        """Variants (all, or those given) grouped by their labels on ``keys``, in grid order."""
        return query.group_by(self.variants if variants is None else variants, keys)

    def varied(self, key: str) -> bool:
        """Whether ``key`` was swept over more than one value."""
        return key in self.data["swept"] and len(self.data["values"].get(key, [])) > 1

    def tuned(self, exclude: list[str]) -> list[str]:
        """Swept keys with more than one value, other than ``exclude`` (tuned within a family)."""
        return [k for k in self.data["swept"] if k not in exclude and self.varied(k)]
