"""Aggregate a run directory's per-seed records into ``summary.json`` (torch-free)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normbench import __version__
from normbench.analysis.convergence import CURVES, higher_is_better, seed_metrics, target_curve
from normbench.analysis.stats import band, describe
from normbench.analysis.summary import SummaryData
from normbench.errors import InputError
from normbench.metrics import METRICS
from normbench.naming import format_value
from normbench.results.store import Warn, open_run_dir
from normbench.spread import finite_number

SUMMARY_SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed")
label = format_value  # swept values are labelled exactly as in variant names


@dataclass
class RunData:
    """Everything read from a run directory: manifest, resolved suite and valid records."""

    path: Path
    manifest: dict[str, Any]
    resolved: dict[str, Any] | None
    records: list[dict[str, Any]] = field(default_factory=list)


def load_run(path: Path, *, strict: bool = False, warn: Warn | None = None) -> RunData:
    """Open a run directory and read its records (corrupt files: warn+skip, or raise if strict)."""
    run = open_run_dir(Path(path))
    manifest = run.read_manifest()
    resolved = run.read_resolved()
    records = list(run.iter_results(strict=strict, warn=warn))
    if not records:
        raise InputError(
            f"{run.path} has no readable result files in {run.results_dir.name}/ "
            "(the run may not have finished a single variant)"
        )
    return RunData(run.path, manifest, resolved, records)


def _targets(resolved: dict[str, Any] | None, records: list[dict[str, Any]]) -> dict[str, float]:
    """``targets:`` of the suite, from resolved.json or else from a record's config."""
    raw = ((resolved or {}).get("suite") or {}).get("targets")
    if not isinstance(raw, dict):
        raw = next(
            (
                r["config"]["targets"]
                for r in records
                if isinstance((r.get("config") or {}).get("targets"), dict)
            ),
            {},
        )
    out = {}
    for key, value in raw.items():
        v = finite_number(value.get("threshold") if isinstance(value, dict) else value)
        if v is not None:
            out[str(key)] = v
    return out


def _swept(resolved: dict[str, Any] | None, records: list[dict[str, Any]]) -> list[str]:
    """Swept keys in grid order: resolved.json's grid, else the params keys as first seen."""
    grid = ((resolved or {}).get("suite") or {}).get("grid")
    keys: list[str] = list(grid) if isinstance(grid, list | dict) else []
    for r in records:
        for k in r.get("params") or {}:
            if k not in keys:
                keys.append(k)
    return [str(k) for k in keys]


def _metric_names(per_seed: Iterable[dict[str, Any]]) -> list[str]:
    """Every metric seen, registry order first (stable tables), then the rest by name."""
    seen: set[str] = set()
    for m in per_seed:
        seen.update(m)
    known = [name for name in METRICS if name in seen]
    return known + sorted(seen - set(known))


def metric_info(name: str, targets: dict[str, float]) -> dict[str, Any]:
    """Direction, unit and meaning of a metric, including the per-target ones."""
    if name in METRICS:
        m = METRICS[name]
        return {
            "higher_is_better": m.higher_is_better,
            "unit": m.unit,
            "summary": m.summary,
            "source": m.source,
        }
    for prefix, unit, what in (
        ("steps_to_target.", "steps", "first eval step"),
        ("seconds_to_target.", "s", "training seconds"),
    ):
        if name.startswith(prefix):
            key = name[len(prefix) :]
            thr = targets.get(key)
            return {
                "higher_is_better": False,
                "unit": unit,
                "source": "targets",
                "summary": f"{what} at which {key} reached {thr:g}" if thr is not None else what,
            }
    return {"higher_is_better": "acc" in name, "unit": "", "summary": "", "source": "record"}


def _curve_bands(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95 % band per eval step for each stored curve, aligned on the step values."""
    steps = sorted(
        {
            s
            for r in records
            for s in ((r.get("curves") or {}).get("step") or [])
            if finite_number(s) is not None
        }
    )
    if not steps:
        return {}
    col = {s: i for i, s in enumerate(steps)}
    names = [
        n for n in (*CURVES, "train_seconds") if any(n in (r.get("curves") or {}) for r in records)
    ]
    t = len(steps)
    # All curves side by side, (seeds, curves × steps), so one bootstrap covers them all.
    m = np.full((len(records), len(names) * t), np.nan)
    for i, r in enumerate(records):
        c = r.get("curves") or {}
        cols = [col.get(s, -1) for s in c.get("step") or []]
        for j, name in enumerate(names):
            for k, v in zip(cols, c.get(name) or [], strict=False):
                if k >= 0 and isinstance(v, int | float) and not isinstance(v, bool):
                    m[i, j * t + k] = v  # NaN/inf stay non-finite and are ignored by band()
    m[~np.isfinite(m)] = np.nan
    b = band(m)
    out: dict[str, Any] = {"step": steps}
    for j, name in enumerate(names):
        out[name] = {k: vals[j * t : (j + 1) * t] for k, vals in b.items()}
    return out


# A variant's ms/step is "(noisy)" when the eval intervals of all its seeds together, the
# first interval of each seed left out (it carries the first-call warm-up), spread by more
# than this IQR/median. Pooling matters: a 15-interval seed crosses a 10 % line by chance on
# a quiet machine, and one seed's stall must not flag the median its other intervals pin down.
NOISY_SPREAD = 0.15
NOISY_NOTE = (  # the one sentence every table and page uses for the mark
    f"(noisy) = ms/step varied by more than {NOISY_SPREAD * 100:g} % (IQR/median) over the "
    "eval intervals of all seeds"
)
NOISY_MIN_INTERVALS = 8  # fewer pooled intervals cannot show a spread: no verdict


def interval_spread(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled spread of ms per step over the eval intervals of a variant's seeds."""
    ms: list[float] = []
    for r in records:
        c = r.get("curves") or {}
        steps, secs = c.get("step") or [], c.get("train_seconds") or []
        prev_step, prev_sec = 0.0, 0.0
        for i, (st, sec) in enumerate(zip(steps, secs, strict=False)):
            st, sec = finite_number(st), finite_number(sec)
            if st is None or sec is None:
                break
            if i > 0 and st > prev_step:
                ms.append(1000.0 * (sec - prev_sec) / (st - prev_step))
            prev_step, prev_sec = st, sec
    if len(ms) < NOISY_MIN_INTERVALS:
        return {"intervals": len(ms), "iqr_over_median": None, "noisy": False}
    q1, med, q3 = np.quantile(np.asarray(ms), [0.25, 0.5, 0.75])
    spread = float((q3 - q1) / med) if med > 0 else None
    return {
        "intervals": len(ms),
        "iqr_over_median": None if spread is None else round(spread, 4),
        "noisy": bool(spread is not None and spread > NOISY_SPREAD),
    }


def rel_cost_spread(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Median and quartiles of a variant's relative-cost round ratios, pooled over seeds."""
    ratios = [
        x
        for r in records
        for x in (((r.get("timing") or {}).get("rel_cost") or {}).get("ratios") or [])
        if finite_number(x) is not None
    ]
    if not ratios:
        return None
    q1, med, q3 = (
        float(q) for q in np.quantile(np.asarray(ratios, dtype=float), [0.25, 0.5, 0.75])
    )
    ref = next(
        (
            (r.get("timing") or {}).get("rel_cost") or {}
            for r in records
            if (r.get("timing") or {}).get("rel_cost")
        ),
        {},
    )
    # The figure is the per-seed min ratio; it is noisy when the seeds' figures disagree.
    seeds = [
        x
        for r in records
        if (x := finite_number((r.get("metrics") or {}).get("rel_ms_per_step"))) is not None
    ]
    mid = float(np.median(seeds)) if seeds else 0.0
    seed_spread = (max(seeds) - min(seeds)) / mid if len(seeds) > 1 and mid > 0 else None
    spread = (q3 - q1) / med if med > 0 else None
    return {
        "median": round(med, 5),
        "q1": round(q1, 5),
        "q3": round(q3, 5),
        "n": len(ratios),
        "iqr_over_median": None if spread is None else round(spread, 4),
        "seed_range_over_median": None if seed_spread is None else round(seed_spread, 4),
        "noisy": bool(seed_spread is not None and seed_spread > NOISY_SPREAD),
        "reference_id": ref.get("reference_id"),
        "reference_name": ref.get("reference_name"),
    }


def _variant_order(resolved: dict[str, Any] | None, records: list[dict[str, Any]]) -> list[str]:
    """Variant ids in grid order (resolved.json), then any others by name."""
    order = [
        str(v.get("id")) for v in (resolved or {}).get("variants") or [] if isinstance(v, dict)
    ]
    names = {str(r["variant_id"]): str(r.get("variant_name") or r["variant_id"]) for r in records}
    extra = sorted(set(names) - set(order), key=lambda vid: (names[vid], vid))
    return [vid for vid in order if vid in names] + extra


def _seed_key(record: dict[str, Any]) -> tuple[int, str]:
    seed = record.get("seed")
    return (seed, "") if isinstance(seed, int) else (1 << 30, str(seed))


def _variant(
    vid: str,
    recs: list[dict[str, Any]],
    spec: dict[str, Any],
    expected_seeds: list[Any],
    targets: dict[str, float],
    per_seed: list[dict[str, Any]],
    names: list[str],
    swept: list[str],
) -> dict[str, Any]:
    """One entry of ``summary["variants"]``."""
    first = recs[0]
    params = first.get("params") or spec.get("params") or {}
    statuses = [str(r.get("status")) for r in recs]
    counts = {s: statuses.count(s) for s in STATUSES}
    seeds = [r.get("seed") for r in recs]
    missing = [s for s in expected_seeds if s not in seeds]
    reached = {}
    for key, thr in targets.items():
        vals = [m.get(f"steps_to_target.{key}") for m in per_seed]
        reached[key] = {
            "threshold": thr,
            "curve": target_curve(key),
            "higher_is_better": higher_is_better(target_curve(key)),
            "reached": sum(v is not None for v in vals),
            "n": len(vals),
        }
    return {
        "variant_id": vid,
        "variant_name": str(first.get("variant_name") or spec.get("name") or vid),
        "params": params,
        "labels": {k: label(params[k]) for k in swept if k in params},
        "config": first.get("config") or spec.get("config") or {},
        "seeds": seeds,
        "seed_status": statuses,
        "counts": {**counts, "missing": len(missing)},
        "errors": {
            str(r.get("seed")): r.get("error")
            for r in recs
            if r.get("status") != "ok" and r.get("error")
        },
        "diverged_at_step": [finite_number(r.get("diverged_at_step")) for r in recs],
        "metrics": {name: describe([m.get(name) for m in per_seed]) for name in names},
        "targets": reached,
        "curves": _curve_bands(recs),
        "timing_spread": (spread := interval_spread(recs)),
        "timing_noisy": spread["noisy"],
        "rel_cost": (rel := rel_cost_spread(recs)),
        "rel_cost_noisy": bool(rel and rel["noisy"]),
    }


def summarize(run: RunData, *, reference: str | None = None) -> SummaryData:
    """Build the ``summary.json`` document from a loaded run (see ARCHITECTURE.md).

    ``reference`` is the ``--reference`` text (``norm=none``); without it the relative
    table uses ``norm=none`` when that was swept, and is empty otherwise.
    """
    from normbench.analysis.claims import evaluate_claims
    from normbench.analysis.profile import performance_profile
    from normbench.analysis.relative import (
        decide_reference,
        default_reference,
        lr_robustness,
        parse_reference,
        relative_rows,
    )
    from normbench.analysis.verdicts import look_decisions

    records = run.records
    resolved = run.resolved or {}
    targets = _targets(run.resolved, records)
    swept = _swept(run.resolved, records)
    specs = {str(v.get("id")): v for v in resolved.get("variants") or [] if isinstance(v, dict)}
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_id.setdefault(str(r["variant_id"]), []).append(r)
    per_seed = {
        vid: [seed_metrics(r, targets) for r in sorted(recs, key=_seed_key)]
        for vid, recs in by_id.items()
    }
    names = _metric_names(m for ms in per_seed.values() for m in ms)
    all_seeds = resolved.get("seeds") if isinstance(resolved.get("seeds"), list) else []
    variants = []
    for vid in _variant_order(run.resolved, records):
        recs = sorted(by_id[vid], key=_seed_key)
        spec = specs.get(vid, {})
        expected = spec.get("seeds") if isinstance(spec.get("seeds"), list) else all_seeds
        variants.append(_variant(vid, recs, spec, expected, targets, per_seed[vid], names, swept))
    values: dict[str, list[str]] = {k: [] for k in swept}
    for v in variants:
        for k, lab in v["labels"].items():
            if lab not in values[k]:
                values[k].append(lab)
    suite = dict(resolved.get("suite") or {})
    suite.setdefault("name", run.manifest.get("suite_name") or run.path.parent.name)
    suite.setdefault("description", "")
    suite["targets"] = targets
    suite["grid"] = swept
    summary: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "normbench_version": __version__,
        "run": run.path.name,
        "suite": suite,
        "manifest": run.manifest,
        "swept": swept,
        "values": values,
        "seeds": sorted(
            {s for v in variants for s in v["seeds"]}, key=lambda s: _seed_key({"seed": s})
        ),
        "counts": {s: sum(v["counts"][s] for v in variants) for s in (*STATUSES, "missing")},
        "missing_variants": [str(v.get("name") or k) for k, v in specs.items() if k not in by_id],
        "metric_info": {n: metric_info(n, targets) for n in names},
        "variants": variants,
    }
    ref = parse_reference(reference, summary) if reference else default_reference(summary)
    # A run of --until-decided froze each decision at the look that took it (repeated looks).
    frozen, alpha = look_decisions(run.manifest)
    relative = relative_rows(summary, ref) if ref else []
    decide_reference(relative, frozen, alpha)
    summary["analysis"] = {
        "reference": ref,
        "relative": relative,
        "lr_robustness": lr_robustness(summary),
        "claims": evaluate_claims(suite.get("claims") or [], variants, alpha=alpha, frozen=frozen),
        "profile": performance_profile(summary),
    }
    return summary


def summarize_run(
    path: Path,
    *,
    strict: bool = False,
    warn: Warn | None = None,
    reference: str | None = None,
) -> SummaryData:
    """Read a run directory and return its summary (nothing is written)."""
    return summarize(load_run(path, strict=strict, warn=warn), reference=reference)
