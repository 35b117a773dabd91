"""Relative tables (speed-up vs a reference variant) and learning-rate robustness.

Reference matching rule: the reference variants are those whose labels equal every
``--reference`` pair. For each other variant V, walk the remaining swept keys in grid order
and keep only the references that share V's value on that key, whenever at least one does;
a key on which no reference shares V's value is *relaxed* (reported in the ``relaxed``
column). The first remaining reference in grid order is used. So ``--reference norm=none``
compares ``norm=batch,placement=pre,lr_mult=5`` with ``norm=none,placement=pre,lr_mult=5``,
and falls back to ``placement=pre`` (relaxing placement) when ``norm=none,placement=post``
was excluded from the grid.
"""

from __future__ import annotations

from typing import Any

from normbench.analysis.censor import TIME_METRICS, censored_values, run_span
from normbench.analysis.query import (
    LR_KEY,
    best_of,
    check_keys,
    group_by,
    headline_metric,
    mean,
    name_of,
)
from normbench.errors import InputError

RATIO_METRICS = ("final_test_acc", "final_test_loss")


def split_pairs(text: str) -> list[str]:
    """Split ``a=1,b=group[groups=8,eps=0.1]`` on the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _same_label(given: str, lab: str) -> bool:
    """``5``, ``5.0`` and ``5`` are the same swept value; other values compare as text."""
    if given == lab:
        return True
    try:
        return float(given) == float(lab)
    except ValueError:
        return given.lower() == lab.lower() and given.lower() in ("true", "false")


def parse_reference(text: str, summary: dict[str, Any]) -> dict[str, str]:
    """``norm=none[,placement=pre]`` → ``{"norm": "none", ...}`` with values as stored labels."""
    pairs: dict[str, str] = {}
    for part in split_pairs(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--reference expects KEY=VALUE[,KEY=VALUE…], got '{part}'")
        pairs[key.strip()] = value.strip()
    if not pairs:
        raise InputError("--reference expects KEY=VALUE, e.g. --reference norm=none")
    check_keys(summary, list(pairs), "--reference")
    out = {}
    for key, value in pairs.items():
        match = next((lab for lab in summary["values"][key] if _same_label(value, lab)), None)
        if match is None:
            raise InputError(
                f"no variant has {key}={value} "
                f"(values of {key}: {', '.join(summary['values'][key])})"
            )
        out[key] = match
    if not reference_variants(summary, out):
        raise InputError(f"no variant matches the reference {name_of(out, list(out))}")
    return out


def default_reference(summary: dict[str, Any]) -> dict[str, str] | None:
    """``norm=none`` when the grid swept it (the usual baseline), else no relative table."""
    if "none" in summary["values"].get("norm", []) and len(summary["values"]["norm"]) > 1:
        return {"norm": "none"}
    return None


def reference_variants(summary: dict[str, Any], ref: dict[str, str]) -> list[dict[str, Any]]:
    return [v for v in summary["variants"] if all(v["labels"].get(k) == x for k, x in ref.items())]


def match_reference(
    variant: dict[str, Any],
    refs: list[dict[str, Any]],
    keys: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """The reference for ``variant`` and the keys that had to be relaxed (module docstring)."""
    cands, relaxed = refs, []
    for key in keys:
        same = [r for r in cands if r["labels"].get(key) == variant["labels"].get(key)]
        if same:
            cands = same
        else:
            relaxed.append(key)
    return cands[0], relaxed


def speedup(v: dict[str, Any], r: dict[str, Any], metric: str) -> dict[str, Any]:
    """Reference time ÷ variant time; a lower bound when only the reference never got there."""
    a, b = mean(v, metric), mean(r, metric)
    out: dict[str, Any] = {"value": a, "reference": b, "speedup": None, "speedup_lower_bound": None}
    if a is not None and b is not None and a > 0:
        out["speedup"] = b / a
    elif a is not None and a > 0 and b is None:
        span = run_span(r, metric)
        out["speedup_lower_bound"] = span / a if span else None
    return out


def ratio(v: dict[str, Any], r: dict[str, Any], metric: str) -> dict[str, Any]:
    """Variant value ÷ reference value of a final metric."""
    a, b = mean(v, metric), mean(r, metric)
    return {"value": a, "reference": b, "ratio": a / b if a is not None and b else None}


def relative_rows(
    summary: dict[str, Any],
    ref: dict[str, str],
    metrics: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per non-reference variant: its matched reference, speed-ups and ratios."""
    refs = reference_variants(summary, ref)
    if not refs:
        return []
    keys = [k for k in summary["swept"] if k not in ref]
    have = set(summary.get("metric_info") or {})
    ratios = metrics or [m for m in RATIO_METRICS if m in have]
    times = [m for m in TIME_METRICS if m in have and summary["suite"].get("targets")]
    ref_ids = {r["variant_id"] for r in refs}
    rows = []
    for v in summary["variants"]:
        if v["variant_id"] in ref_ids:
            continue
        r, relaxed = match_reference(v, refs, keys)
        shown = [*times, *(m for m in ratios if m not in TIME_METRICS)]
        rows.append(
            {
                "variant_id": v["variant_id"],
                "variant_name": v["variant_name"],
                "reference_id": r["variant_id"],
                "reference_name": r["variant_name"],
                "relaxed": relaxed,
                "speedup": {m: speedup(v, r, m) for m in times},
                "ratio": {m: ratio(v, r, m) for m in ratios if m not in TIME_METRICS},
                "contrasts": {m: reference_contrast(v, r, m) for m in shown},
            }
        )
    return rows


def reference_contrast(v: dict[str, Any], r: dict[str, Any], metric: str) -> dict[str, Any]:
    """The variant against its reference on ``metric``: effect, interval (no verdict yet)."""
    from normbench.analysis.verdicts import contrast, default_margin, on_log_scale
    from normbench.metrics import METRICS

    info = METRICS.get(metric.split(".")[0])
    higher = info.higher_is_better if info else True
    (va, _), (vb, _) = censored_values(v, metric), censored_values(r, metric)
    out = contrast(va, vb, higher=higher, log=on_log_scale(metric), margin=default_margin(metric))
    out["key"] = f"ref:{v['variant_id']}>{r['variant_id']}:{metric}"
    out["ids"] = [v["variant_id"], r["variant_id"]]
    return out


def decide_reference(
    rows: list[dict[str, Any]], frozen: dict[str, Any] | None = None, alpha: float | None = None
) -> None:
    """Verdicts for every reference contrast of a report, as one Holm family."""
    from normbench.analysis.verdicts import ALPHA, decide

    family = [c for row in rows for c in row.get("contrasts", {}).values()]
    for c in family:
        if frozen and c["key"] in frozen:
            c.update(frozen[c["key"]], frozen=True)
    decide(family, ALPHA if alpha is None else alpha)


def _seed_converged(v: dict[str, Any], i: int, has_target: bool) -> bool:
    """A seed converged when it finished ``ok`` and, if the suite has targets, reached the first."""
    if v["seed_status"][i] != "ok":
        return False
    if not has_target:
        return True
    values = (v["metrics"].get("steps_to_target") or {}).get("values") or []
    return i < len(values) and values[i] is not None


def converged(v: dict[str, Any], has_target: bool) -> bool:
    """A variant converges when a strict majority of its seeds did (not one lucky seed)."""
    n = len(v["seed_status"])
    ok = sum(_seed_converged(v, i, has_target) for i in range(n))
    return n > 0 and 2 * ok > n


def _lr(v: dict[str, Any]) -> float:
    try:
        return float(v["labels"][LR_KEY])
    except (KeyError, ValueError):
        return float("nan")


def lr_robustness(summary: dict[str, Any], metric: str | None = None) -> list[dict[str, Any]]:
    """Per group of the other swept keys (norm × placement …): which ``lr_mult`` converge, best lr.

    Learning rate is a nuisance parameter when norms are compared, so each group is also
    reported at its best converging lr.
    """
    if len(summary["values"].get(LR_KEY, [])) < 2:
        return []
    metric = metric or headline_metric(summary)
    has_target = bool(summary["suite"].get("targets"))
    keys = [k for k in summary["swept"] if k != LR_KEY]
    rows = []
    for labels, group in group_by(summary["variants"], keys).items():
        group = sorted(group, key=_lr)
        ok = [v for v in group if converged(v, has_target)]
        lrs = [v["labels"].get(LR_KEY) for v in group]
        ok_lrs = [v["labels"].get(LR_KEY) for v in ok]
        best = best_of(summary, ok, metric) if metric and ok else None
        if best is None and metric:
            best = best_of(summary, group, metric)
        idx = [lrs.index(x) for x in ok_lrs]
        rows.append(
            {
                "group": dict(zip(keys, labels, strict=True)),
                "name": name_of(dict(zip(keys, labels, strict=True)), keys),
                "lr_values": lrs,
                "converged": ok_lrs,
                "range": [ok_lrs[0], ok_lrs[-1]] if ok_lrs else None,
                "contiguous": bool(idx) and idx == list(range(idx[0], idx[0] + len(idx))),
                "metric": metric,
                "best": None
                if best is None
                else {
                    "lr": best["labels"].get(LR_KEY),
                    "variant_id": best["variant_id"],
                    "variant_name": best["variant_name"],
                    "converged": best in ok,
                    "mean": mean(best, metric),
                    "std": best["metrics"][metric].get("std"),
                },
            }
        )
    return rows
