"""Regression gates: the ``METRIC:[+|-]NUMBER[%]`` grammar and when a gate fires (torch-free).

A gate names a metric and how much worse it may get: ``final_test_acc:-1%`` (1 % relative),
``final_train_loss:+0.05`` (absolute). The bad direction comes from the metric's definition
(``higher_is_better`` in the metric registry), so the sign is optional; a sign that points the
other way is an error, because a gate that could only fire on an improvement is a typo.

A gate fires on a variant when its comparison mark is ``!`` (the candidate lost values the
baseline had: newly failed, diverged, or a target no longer reached), or when the mark is ``+``
(worse, and significant, see ``normbench.analysis.compare``) *and* the change in the bad
direction is strictly beyond the threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from normbench.errors import OptionError, shorten, unknown
from normbench.metrics import METRICS
from normbench.spread import finite_number

GRAMMAR = "METRIC:[+|-]NUMBER[%]"
NON_NEGATIVE_UNITS = ("fraction", "samples/s")  # units whose metrics are never below zero
EXAMPLES = "e.g. final_test_acc:-1%, samples_per_sec:-10% or final_train_loss:+0.05"
# Per-target forms that summaries add (``steps_to_target.test_acc``): lower is better.
TARGET_PREFIXES = ("steps_to_target.", "seconds_to_target.")

_GATE = re.compile(r"^(?P<metric>[^:\s]*)\s*:\s*(?P<rest>.*)$")
_THRESHOLD = re.compile(
    r"^(?P<sign>[+-])?\s*(?P<num>(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)\s*(?P<pct>%)?$"
)


@dataclass(frozen=True)
class Gate:
    """One parsed gate; ``threshold`` is a magnitude (a fraction when ``relative``)."""

    text: str
    metric: str
    threshold: float
    relative: bool
    higher_is_better: bool

    def describe(self) -> str:
        """``final_test_acc may drop by at most 1 %`` — for reports and JUnit messages."""
        verb = "drop" if self.higher_is_better else "rise"
        amount = f"{self.threshold * 100:g} %" if self.relative else f"{self.threshold:g}"
        return f"{self.metric} may {verb} by at most {amount}"


def _known_metrics() -> dict[str, bool]:
    """Registry metric → higher_is_better, diagnostics' metrics included."""
    return {name: m.higher_is_better for name, m in METRICS.items()}


def metric_direction(metric: str, known: dict[str, bool] | None = None) -> bool:
    """``higher_is_better`` of a gateable metric; ``OptionError`` naming the choices if unknown."""
    known = _known_metrics() if known is None else known
    if metric in known:
        return known[metric]
    if metric.startswith(TARGET_PREFIXES) and metric.split(".", 1)[1]:
        return False  # time to reach a target: sooner is better
    raise OptionError(unknown("metric", metric, sorted(known)))


def parse_gate(text: str, known: dict[str, bool] | None = None) -> Gate:
    """Parse one gate; ``OptionError`` with one clear sentence when it is malformed."""
    raw = shorten(str(text).strip())  # as messages echo it; a long one is malformed anyway
    m = _GATE.match(str(text).strip())
    if not m or not m.group("metric"):
        raise OptionError(f"malformed gate '{raw}': expected {GRAMMAR}, {EXAMPLES}")
    metric, rest = m.group("metric"), m.group("rest").strip()
    t = _THRESHOLD.match(rest)
    if not t:
        raise OptionError(
            f"malformed gate '{raw}': '{rest}' is not a threshold; expected {GRAMMAR}, {EXAMPLES}"
        )
    higher = metric_direction(metric, known)
    sign = t.group("sign")
    bad = "-" if higher else "+"
    if sign and sign != bad:
        # A gate that could only fire on an improvement is almost certainly a sign slip.
        better, worse = ("higher", "drop") if higher else ("lower", "rise")
        raise OptionError(
            f"gate '{raw}': {better} {metric} is better, so a regression is a {worse}; "
            f"write {metric}:{bad}{t.group('num')}{t.group('pct') or ''} "
            f"(or leave the sign out)"
        )
    value = float(t.group("num"))
    relative = t.group("pct") is not None
    if finite_number(value) is None:  # 1e400 reads as inf: a gate that can never fire
        raise OptionError(
            f"gate '{raw}': the threshold must be a finite number, got {shorten(rest)}"
        )
    gate = Gate(str(text).strip(), metric, value / 100 if relative else value, relative, higher)
    why = cannot_fire(gate)
    if why:
        raise OptionError(f"gate '{raw}' can never fire: {why}")
    return gate


def cannot_fire(gate: Gate) -> str | None:
    """Why no change of the metric could go strictly beyond the gate's threshold, or None.

    A fraction moves by at most 1; a metric that is never negative and should be high
    cannot drop by 100 % or more. Such a gate guards nothing, which is worse than no gate.
    """
    metric = METRICS.get(gate.metric)
    unit = metric.unit if metric is not None else ""
    if unit == "fraction" and not gate.relative and gate.threshold >= 1:
        return f"{gate.metric} is a fraction, so it cannot change by more than 1"
    if (
        gate.relative
        and gate.higher_is_better
        and unit in NON_NEGATIVE_UNITS
        and gate.threshold >= 1
    ):
        return f"{gate.metric} is never negative, so it cannot drop by 100 % or more"
    return None


def parse_gates(texts: Iterable[str]) -> list[Gate]:
    """Parse several gates, in order, dropping exact duplicates (suite + command line)."""
    known = _known_metrics()
    out: list[Gate] = []
    for i, text in enumerate(texts):
        try:
            gate = parse_gate(text, known)
        except OptionError as exc:
            raise OptionError(exc.message, (i,)) from None
        if all(
            (g.metric, g.threshold, g.relative) != (gate.metric, gate.threshold, gate.relative)
            for g in out
        ):
            out.append(gate)
    return out


def bad_amount(gate: Gate, change: float | None, relative: float | None) -> float | None:
    """How far the change went in the bad direction, in the gate's unit (negative = better)."""
    amount = relative if gate.relative else change
    if amount is None:
        return None
    return -amount if gate.higher_is_better else amount


def beyond(gate: Gate, change: float | None, relative: float | None) -> bool:
    """Whether the change is strictly beyond the threshold in the bad direction."""
    amount = bad_amount(gate, change, relative)
    return amount is not None and amount > gate.threshold


def fmt_amount(gate: Gate, change: float | None, relative: float | None) -> str:
    """The change in the gate's own unit, signed: ``-4.2 %`` or ``+0.061``."""
    value = relative if gate.relative else change
    if value is None:
        return "—"
    if value == 0:
        return "no change"
    return f"{value * 100:+.1f} %" if gate.relative else f"{value:+.4g}"


__all__ = [
    "EXAMPLES",
    "GRAMMAR",
    "Gate",
    "bad_amount",
    "beyond",
    "fmt_amount",
    "metric_direction",
    "parse_gate",
    "parse_gates",
]
