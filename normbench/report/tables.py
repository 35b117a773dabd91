"""The tables built from a summary; ``normbench.report.render`` renders them in every format."""

from __future__ import annotations

from typing import Any

from normbench.analysis.aggregate import NOISY_NOTE
from normbench.analysis.query import LR_KEY, available_metrics, headline_metric, name_of
from normbench.analysis.relative import TIME_METRICS
from normbench.analysis.stats import CI_MIN_SEEDS
from normbench.metrics import HEADLINE_METRICS, timing_of
from normbench.report.render import FORMATS, Table, render, to_html

SUMMARY_METRICS = HEADLINE_METRICS
NOT_REACHED = "not reached"
NONE = "—"


# --- numbers --------------------------------------------------------------------------------


def fmt_value(x: float | None, unit: str = "") -> str:
    """A number rounded for reading, by unit (steps are counts, fractions get 4 decimals)."""
    if x is None:
        return NONE
    if unit in ("steps", "count", "samples/s"):
        return f"{x:,.0f}"
    if unit in ("fraction", "nats"):
        return f"{x:.4f}"
    if unit == "ratio":
        return f"{x:.3f}"
    if unit in ("s", "ms"):
        return f"{x:.3f}" if abs(x) < 10 else f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x:.4g}"


def is_target_metric(name: str) -> bool:
    return name in TIME_METRICS or name.startswith(("steps_to_target.", "seconds_to_target."))


def fmt_stats(stats: dict[str, Any] | None, unit: str, target: bool = False) -> str:
    """``mean ± std``; a target never reached reads "not reached", never a number."""
    values = (stats or {}).get("values") or []
    if not stats or stats.get("mean") is None:
        return NOT_REACHED if target else NONE
    text = fmt_value(stats["mean"], unit)
    # A count that is the same for every seed (num_params) is a fact, not an estimate.
    if stats.get("std") is not None and not (unit == "count" and stats["std"] == 0):
        text += f" ± {fmt_value(stats['std'], unit)}"
    if stats["n"] < len(values):
        text += f" ({stats['n']}/{len(values)})" if target else f" (n={stats['n']})"
    return text


def unit_of(summary: dict[str, Any], metric: str) -> str:
    return (summary.get("metric_info") or {}).get(metric, {}).get("unit", "")


def cell(summary: dict[str, Any], variant: dict[str, Any], metric: str) -> str:
    return fmt_stats(
        variant["metrics"].get(metric), unit_of(summary, metric), is_target_metric(metric)
    )


def fmt_speedup(s: dict[str, Any]) -> str:
    if s.get("speedup") is not None:
        return f"{s['speedup']:.2f}×"
    if s.get("speedup_lower_bound") is not None:
        return f"> {s['speedup_lower_bound']:.2f}×"  # the reference never reached the target
    return NONE


# --- tables ---------------------------------------------------------------------------------


def _param_columns(summary: dict[str, Any]) -> list[str]:
    return list(summary["swept"])


def _variant_head(summary: dict[str, Any], v: dict[str, Any], keys: list[str]) -> list[str]:
    return [v["labels"].get(k, "") for k in keys] if keys else [v["variant_name"]]


def _flat_stats(prefix: str, stats: dict[str, Any] | None) -> dict[str, Any]:
    stats = stats or {}
    return {
        prefix: stats.get("mean"),
        f"{prefix}_std": stats.get("std"),
        f"{prefix}_ci_low": stats.get("ci_low"),
        f"{prefix}_ci_high": stats.get("ci_high"),
        f"{prefix}_n": stats.get("n"),
    }


def summary_metrics(summary: dict[str, Any], metrics: list[str] | None = None) -> list[str]:
    have = available_metrics(summary)
    return metrics or [m for m in SUMMARY_METRICS if m in have]


def noisy_mark(v: dict[str, Any], metric: str) -> str:
    """ " (noisy)" after an interval-timed figure that has a value and a wide pooled spread."""
    kind = timing_of(metric)
    if kind == "relative":  # the side-by-side rounds have their own spread
        stats = v["metrics"].get(metric) or {}
        return " (noisy)" if stats.get("mean") is not None and v.get("rel_cost_noisy") else ""
    # The pooled spread is that of the eval intervals: only their medians are described by it.
    if kind != "interval" or not v.get("timing_noisy"):
        return ""
    return " (noisy)" if (v["metrics"].get(metric) or {}).get("mean") is not None else ""


def summary_table(summary: dict[str, Any], metrics: list[str] | None = None) -> Table:
    """One row per variant: swept values, seed outcomes and the headline metrics."""
    metrics = summary_metrics(summary, metrics)
    keys = _param_columns(summary)
    head = keys or ["variant"]
    rows, data = [], []
    for v in summary["variants"]:
        c = v["counts"]
        rows.append(
            [
                *_variant_head(summary, v, keys),
                f"{c['ok']}/{c['diverged']}/{c['failed']}",
                *[cell(summary, v, m) + noisy_mark(v, m) for m in metrics],
            ]
        )
        d: dict[str, Any] = {
            "variant_id": v["variant_id"],
            "variant_name": v["variant_name"],
            **{k: v["labels"].get(k) for k in keys},
            "ok": c["ok"],
            "diverged": c["diverged"],
            "failed": c["failed"],
        }
        for m in metrics:
            d.update(_flat_stats(m, v["metrics"].get(m)))
        data.append(d)
    n0 = len(head) + 1
    return Table(
        f"{summary['suite'].get('name', '')}: mean ± std over seeds",
        [*head, "ok/div/fail", *metrics],
        rows,
        data,
        numeric=set(range(n0, n0 + len(metrics))),
        keys=len(head),
        note="ok/div/fail counts seeds; (k/n) after a time to target = reached by k of n seeds; "
        "(n=k) = only k seeds had a value; " + NOISY_NOTE,
    )


def stats_table(summary: dict[str, Any], metric: str) -> Table:
    """Seed statistics of one metric: mean, std, median, min/max and the bootstrap CI."""
    unit = unit_of(summary, metric)
    keys = _param_columns(summary)
    rows, data = [], []
    for v in summary["variants"]:
        s = v["metrics"].get(metric) or {}
        f = lambda x: fmt_value(x, unit)  # noqa: E731
        # A bootstrap CI over 2 seeds is just [min, max]: it is only called a CI from 3 seeds.
        ci = (
            f"[{f(s.get('ci_low'))}, {f(s.get('ci_high'))}]"
            if s.get("mean") is not None and (s.get("n") or 0) >= CI_MIN_SEEDS
            else NONE
        )
        per_seed = ", ".join(f(x) if x is not None else "null" for x in s.get("values") or [])
        rows.append(
            [
                *_variant_head(summary, v, keys),
                f(s.get("mean")),
                f(s.get("std")),
                f(s.get("median")),
                f(s.get("min")),
                f(s.get("max")),
                ci,
                str(s.get("n", 0)),
                per_seed,
            ]
        )
        data.append(
            {
                "variant_id": v["variant_id"],
                "variant_name": v["variant_name"],
                **{
                    k: s.get(k)
                    for k in ("mean", "std", "median", "min", "max", "ci_low", "ci_high", "n")
                },
            }
        )
    head = keys or ["variant"]
    n0 = len(head)
    few = any(
        0 < ((v["metrics"].get(metric) or {}).get("n") or 0) < CI_MIN_SEEDS
        for v in summary["variants"]
    )
    return Table(
        f"{metric}: seed statistics (95 % bootstrap CI of the mean)",
        [*head, "mean", "std", "median", "min", "max", "95 % CI", "n", "per seed"],
        rows,
        data,
        numeric=set(range(n0, n0 + 7)),
        keys=len(head),
        note=f"a confidence interval needs ≥ {CI_MIN_SEEDS} seeds; with fewer, min–max "
        "is all the seeds say (95 % CI shown as —)"
        if few
        else "",
    )


def convergence_table(summary: dict[str, Any]) -> Table:
    """Time to every target, final and best values, and area under the loss curves."""
    targets = summary["suite"].get("targets") or {}
    have = set(available_metrics(summary))
    extra = [
        m
        for m in (
            "final_test_acc",
            "best_test_acc",
            "final_test_loss",
            "best_test_loss",
            "auc_test_loss",
            "auc_train_loss",
        )
        if m in have
    ]
    keys = _param_columns(summary)
    cols, rows, data = [], [], []
    for key, thr in targets.items():
        cols += [f"steps to {key} {thr:g}", f"seconds to {key} {thr:g}"]
    for v in summary["variants"]:
        row = _variant_head(summary, v, keys)
        d: dict[str, Any] = {"variant_id": v["variant_id"], "variant_name": v["variant_name"]}
        for key in targets:
            for kind in ("steps", "seconds"):
                m = f"{kind}_to_target.{key}"
                row.append(cell(summary, v, m))
                d.update(_flat_stats(m, v["metrics"].get(m)))
        row += [cell(summary, v, m) for m in extra]
        for m in extra:
            d.update(_flat_stats(m, v["metrics"].get(m)))
        rows.append(row)
        data.append(d)
    head = keys or ["variant"]
    return Table(
        "Convergence: time to target, final vs best, area under the loss curve",
        [*head, *cols, *extra],
        rows,
        data,
        numeric=set(range(len(head), len(head) + len(cols) + len(extra))),
        keys=len(head),
        note="auc = area under the curve ÷ step span (the mean loss over training)",
    )


SHORT = {"steps_to_target": "steps to target", "seconds_to_target": "seconds to target"}


def relative_table(
    summary: dict[str, Any], rows_in: list[dict[str, Any]], ref: dict[str, str]
) -> Table:
    """Speed-up to target and ratio of final metrics vs the matched reference variant."""
    keys = list(summary["swept"]) or ["variant"]
    by_id = {v["variant_id"]: v for v in summary["variants"]}
    times = list(rows_in[0]["speedup"]) if rows_in else []
    ratios = list(rows_in[0]["ratio"]) if rows_in else []
    cols = [*keys, "reference"]
    for m in times:
        cols += [SHORT.get(m, m), "ref", "speed-up", "verdict"]
    for m in ratios:
        cols += [m, "ref", "ratio", "verdict"]
    rows, data = [], []
    for r in rows_in:
        v, ref_v = by_id[r["variant_id"]], by_id[r["reference_id"]]
        row = [v["labels"].get(k, v["variant_name"]) for k in keys]
        # Only what differs from the variant is shown: the relaxed keys' reference values.
        row.append(name_of(ref_v["labels"], r["relaxed"]) if r["relaxed"] else "same")
        d: dict[str, Any] = {
            "variant_id": r["variant_id"],
            "variant_name": r["variant_name"],
            "reference_id": r["reference_id"],
            "reference_name": r["reference_name"],
            "relaxed": ",".join(r["relaxed"]),
        }
        for m in times:
            s = r["speedup"][m]
            row += [
                cell(summary, v, m),
                cell(summary, ref_v, m),
                fmt_speedup(s),
                _verdict_cell(r, m),
            ]
            d.update(
                {
                    m: s["value"],
                    f"reference_{m}": s["reference"],
                    f"speedup_{m}": s["speedup"],
                    f"speedup_{m}_lower_bound": s["speedup_lower_bound"],
                }
            )
            d.update(_verdict_data(r, m))
        for m in ratios:
            s = r["ratio"][m]
            row += [
                cell(summary, v, m),
                cell(summary, ref_v, m),
                f"{s['ratio']:.3f}" if s["ratio"] is not None else NONE,
                _verdict_cell(r, m),
            ]
            d.update({m: s["value"], f"reference_{m}": s["reference"], f"ratio_{m}": s["ratio"]})
            d.update(_verdict_data(r, m))
        rows.append(row)
        data.append(d)
    return Table(
        f"Relative to {name_of(ref, list(ref))}: speed-up = reference time ÷ variant time",
        cols,
        rows,
        data,
        # The verdict cells are text (they wrap); the figures are numbers.
        numeric={i for i in range(len(keys) + 1, len(cols)) if (i - len(keys)) % 4},
        keys=len(keys) + 1,
        # One metric's value, reference, ratio and verdict stay in one part of a split table.
        groups=(4,) * (len(times) + len(ratios)),
        note="reference 'same' = same values on the other swept keys, else the values it was "
        "matched on; '> x×' = the reference never reached the target, so x is a lower "
        "bound (its whole run ÷ the variant's time); verdict = effect (variant − "
        "reference, or ×ratio for steps and times) [the Welch CI that decided it, its "
        "level beside it] and better / worse / equivalent (±1 point, ±5 %) / undecided, Holm "
        "over the table",
    )


def _verdict_data(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """The contrast's verdict, effect and interval as machine-readable columns."""
    c = (row.get("contrasts") or {}).get(metric) or {}
    return {
        f"verdict_{metric}": c.get("verdict"),
        f"effect_{metric}": c.get("effect"),
        f"effect_{metric}_ci_low": c.get("ci_low"),
        f"effect_{metric}_ci_high": c.get("ci_high"),
        f"effect_{metric}_ci_level": c.get("ci_level"),
    }


def _verdict_cell(row: dict[str, Any], metric: str) -> str:
    """``better +0.031 [+0.012, +0.05]`` for one reference contrast."""
    from normbench.analysis.verdicts import describe_effect

    c = (row.get("contrasts") or {}).get(metric)
    if not c or c.get("verdict") is None:
        return NONE
    return (
        f"{c['verdict']} {describe_effect(c).replace(' (exact: no spread over seeds', ' (exact')}"
    )


def profile_table(summary: dict[str, Any], prof: dict[str, Any]) -> Table:
    """The settings behind a performance profile: each norm's time to target and its ratio."""
    norms = prof["norms"]
    cols = ["setting", *norms]
    rows, data = [], []
    for s in prof["settings"]:
        row = [s["setting"]]
        for n in norms:
            t, r = s["times"].get(n), s["ratios"].get(n)
            row.append(
                NONE
                if n not in s["times"]
                else "not reached"
                if t is None
                else f"{t:.4g} (×{r:.2f})"
            )
        rows.append(row)
        data.append(
            {
                "setting": s["setting"],
                **{n: s["times"].get(n) for n in norms},
                **{f"ratio_{n}": s["ratios"].get(n) for n in norms},
            }
        )
    return Table(
        f"Per setting: mean {prof['metric']} (× the best norm's there)",
        cols,
        rows,
        data,
        numeric=set(range(1, len(cols))),
        note="'not reached' = a majority of the seeds missed the target",
    )


def lr_table(summary: dict[str, Any], rows_in: list[dict[str, Any]]) -> Table:
    """Learning-rate robustness: which lr_mult converge, and the best result over lr."""
    metric = rows_in[0]["metric"] if rows_in else None
    unit = unit_of(summary, metric) if metric else ""
    keys = [k for k in summary["swept"] if k != LR_KEY] or ["group"]
    rows, data = [], []
    for r in rows_in:
        best = r["best"] or {}
        rng = (
            "none"
            if not r["range"]
            else r["range"][0]
            if r["range"][0] == r["range"][1]
            else f"{r['range'][0]} – {r['range'][1]}"
        )
        if r["range"] and not r["contiguous"]:
            rng += " (gaps)"
        val = (
            NONE
            if best.get("mean") is None
            else fmt_stats(
                {"mean": best["mean"], "std": best.get("std"), "n": 1, "values": [0]}, unit
            )
        )
        if best and not best.get("converged"):
            val += " (did not converge)"
        rows.append(
            [
                *[r["group"].get(k, r["name"]) for k in keys],
                rng,
                f"{len(r['converged'])}/{len(r['lr_values'])}",
                ", ".join(r["converged"]) or NONE,
                str(best.get("lr", NONE)),
                val,
            ]
        )
        data.append(
            {
                "group": r["name"],
                "converged": ",".join(r["converged"]),
                "lr_values": ",".join(r["lr_values"]),
                "range_low": r["range"][0] if r["range"] else None,
                "range_high": r["range"][1] if r["range"] else None,
                "best_lr": best.get("lr"),
                f"best_{metric}": best.get("mean"),
                f"best_{metric}_std": best.get("std"),
            }
        )
    has_target = bool(summary["suite"].get("targets"))
    rule = "no seed diverged or failed" + (
        " and the first target was reached" if has_target else ""
    )
    return Table(
        f"Learning-rate robustness: lr_mult values that converge, and best {metric} over lr",
        [
            *keys,
            "converging range",
            "count",
            "converging lr_mult",
            "best lr_mult",
            f"best {metric}",
        ],
        rows,
        data,
        numeric={len(keys) + 1, len(keys) + 4},
        keys=len(keys),
        note=f"an lr_mult converges when a strict majority of seeds converged ({rule})",
    )


def pivot_table(summary: dict[str, Any], pv: dict[str, Any]) -> Table:
    """Rows × columns of one metric; a tuned cell names the variant it shows."""
    metric, unit = pv["metric"], unit_of(summary, pv["metric"])
    target = is_target_metric(metric)
    rows, data = [], []
    for r in pv["rows"]:
        row = [r["key"][k] for k in pv["row_keys"]]
        d: dict[str, Any] = dict(r["key"])
        for col in pv["columns"]:
            c = r["cells"][col]
            if c is None:
                row.append(NONE)
                d[col] = d[f"{col}_std"] = None
                continue
            text = fmt_stats({**c, "values": [0] * c["seeds"]}, unit, target)
            if pv["tuned_over"] and c["candidates"] > 1:
                chosen = next(v for v in summary["variants"] if v["variant_id"] == c["variant_id"])
                text += f" ({name_of(chosen['labels'], pv['tuned_over'])})"
            row.append(text)
            d[col], d[f"{col}_std"] = c["mean"], c["std"]
        rows.append(row)
        data.append(d)
    direction = "higher" if pv["higher_is_better"] else "lower"
    tuned = f"; best over {', '.join(pv['tuned_over'])} per cell" if pv["tuned_over"] else ""
    col_head = [f"{pv['column_key']}={c}" for c in pv["columns"]] if pv["column_key"] else [metric]
    return Table(
        f"{metric} ({direction} is better), mean ± std over seeds{tuned}",
        [*pv["row_keys"], *col_head],
        rows,
        data,
        numeric=set(range(len(pv["row_keys"]), len(pv["row_keys"]) + len(col_head))),
        json_obj=pv,
        keys=len(pv["row_keys"]),
    )


def render_table(
    summary: dict[str, Any], fmt: str, *, metrics: list[str] | None = None, width: int | None = None
) -> str:
    """The per-variant summary table in ``fmt`` (what ``normbench run`` prints at the end)."""
    return render(summary_table(summary, metrics), fmt, width)


__all__ = [
    "FORMATS",
    "Table",
    "convergence_table",
    "headline_metric",
    "lr_table",
    "pivot_table",
    "relative_table",
    "render",
    "render_table",
    "stats_table",
    "summary_table",
    "to_html",
]
