"""Convergence metrics from one seed's curves: time-to-target, best values, area under the loss."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from normbench.spread import finite_number
from normbench.suite_keys import TARGET_KEYS, reaches

CURVES = ("test_acc", "test_loss", "train_loss", "train_probe_acc", "train_probe_loss")


def higher_is_better(curve: str) -> bool:
    """Direction of a curve: accuracies go up, losses go down (``TARGET_KEYS``)."""
    return TARGET_KEYS.get(curve, "acc" in curve)


def target_curve(key: str) -> str:
    """The curve a ``targets:`` key refers to (``final_test_acc`` is read as ``test_acc``)."""
    for prefix in ("final_", "best_"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def curve(record: dict[str, Any], name: str) -> list[float | None]:
    """One curve of a record with non-finite values as ``None``; empty when absent."""
    values = (record.get("curves") or {}).get(name)
    return [finite_number(v) for v in values] if isinstance(values, list) else []


def first_reach(
    steps: list[Any],
    values: list[float | None],
    threshold: float,
    higher: bool,
) -> int | None:
    """Index of the first eval point that reaches ``threshold``, or ``None`` (never a number)."""
    for i, (s, v) in enumerate(zip(steps, values, strict=False)):
        if s is None or v is None:
            continue
        if reaches(v, threshold, higher):
            return i
    return None


def reach(record: dict[str, Any], key: str, threshold: float) -> tuple[float | None, float | None]:
    """(step, seconds) at which ``key`` first reached ``threshold``.

    The record's own ``targets`` entry wins (the training loop wrote it); otherwise it is
    recomputed from the curves with the same rule: the first eval point that reaches it.
    """
    stored = (record.get("targets") or {}).get(key)
    if isinstance(stored, dict) and "step" in stored:
        return finite_number(stored.get("step")), finite_number(stored.get("seconds"))
    name = target_curve(key)
    steps = curve(record, "step")
    i = first_reach(steps, curve(record, name), threshold, higher_is_better(name))
    if i is None:
        return None, None
    seconds = curve(record, "train_seconds")
    return steps[i], (seconds[i] if i < len(seconds) else None)


def area_under(steps: list[float | None], values: list[float | None]) -> float | None:
    """Trapezoidal area under a curve divided by its step span: the step-averaged value.

    Normalised so suites with different ``steps:`` give comparable numbers (units of the
    curve, e.g. nats); ``None`` with fewer than two points or a gap (NaN) in the curve.
    """
    pts = list(zip(steps, values, strict=False))
    if len(pts) < 2 or any(s is None or v is None for s, v in pts):
        return None
    span = pts[-1][0] - pts[0][0]
    if span <= 0:
        return None
    area = sum((s1 - s0) * (v0 + v1) / 2.0 for (s0, v0), (s1, v1) in pairwise(pts))
    return area / span


def derived_metrics(record: dict[str, Any], targets: dict[str, float]) -> dict[str, float | None]:
    """Metrics computed from the curves, added to what the record already carries.

    AUC and best-loss only mean something for a complete curve, so a diverged or failed
    seed gets ``None`` (a truncated curve would otherwise look *better*).
    """
    ok = record.get("status") == "ok"
    steps = curve(record, "step")
    out: dict[str, float | None] = {}
    for name in ("test_loss", "train_loss"):
        out[f"auc_{name}"] = area_under(steps, curve(record, name)) if ok else None
    test_loss = [v for v in curve(record, "test_loss") if v is not None]
    out["best_test_loss"] = min(test_loss) if ok and test_loss else None
    for i, (key, threshold) in enumerate(targets.items()):
        step, seconds = reach(record, key, threshold)
        out[f"steps_to_target.{key}"] = step
        out[f"seconds_to_target.{key}"] = seconds
        if i == 0:
            # The record's own first-target metrics win; recompute only when absent.
            metrics = record.get("metrics") or {}
            if "steps_to_target" not in metrics:
                out["steps_to_target"] = step
            if "seconds_to_target" not in metrics:
                out["seconds_to_target"] = seconds
    return out


def seed_metrics(record: dict[str, Any], targets: dict[str, float]) -> dict[str, float | None]:
    """All metric values of one seed: recorded ones (non-finite → ``None``) plus derived ones."""
    out = {k: finite_number(v) for k, v in (record.get("metrics") or {}).items()}
    for k, v in derived_metrics(record, targets).items():
        out.setdefault(k, v)
    return out
