"""Report plots with matplotlib's Agg canvas: curves, lr sensitivity, throughput, diagnostics.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot), so drawing never
touches a global backend or GUI state, whatever the calling process has imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normbench.analysis.query import LR_KEY, mean, name_of
from normbench.analysis.relative import converged
from normbench.analysis.stats import CI_MIN_SEEDS
from normbench.analysis.summary import Summary
from normbench.report.palette import Palette
from normbench.report.width import clip
from normbench.results.store import Warn
from normbench.spread import finite_number
from normbench.train.diag_catalog import DIAGNOSTICS
from normbench.usercode import error_text

HATCHES = ("", "//", "..", "xx", "\\\\", "++")
MAX_LINES = 12  # more than this and a legend stops being readable
MAX_BARS = 40
LABEL_MAX = 48  # columns of a legend entry or tick label; longer names are cut in the middle
MAX_FACETS = 8  # facet figures are the slowest to lay out
DPI = 110

RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "normbench",
    "svg.fonttype": "path",
    "lines.linewidth": 1.6,
    # Labels are the user's strings (variant names, swept values): drawn literally, never parsed
    # as mathtext, where a "$" would be a formula and an unbalanced one an error.
    "text.parse_math": False,
}


NORM_KEY = "norm"


@dataclass
class Plot:
    """One written figure: file stem, title, caption and its PNG/SVG paths."""

    name: str
    title: str
    caption: str
    png: Path
    svg: Path


class Styler(Palette):
    """The report's palette (one colour per norm, one line style per placement) and hatches."""

    def hatch(self, labels: dict[str, str]) -> str:
        i = self.style(labels)
        return "" if i is None else HATCHES[i % len(HATCHES)]

    def family(self, labels: dict[str, str]) -> str:
        """Legend text: ``batch / pre`` (the values only; the axes say what the keys are)."""
        return clip(" / ".join(labels[k] for k in self.keys if k in labels) or "all", LABEL_MAX)


def representatives(
    summary: Summary, styler: Styler, metric: str | None, limit: int = MAX_LINES
) -> tuple[list[dict[str, Any]], int]:
    """The best variant of each colour × style family, at most ``limit`` of them.

    Caps lines per plot so 200 variants stay readable: within a family the other swept
    keys (lr_mult …) are tuned; across families the top ``limit`` by ``metric`` are kept.
    """
    groups = summary.groups(styler.keys)
    reps = [(metric and summary.best(g, metric)) or g[0] for g in groups.values()]
    total = len(reps)
    if len(reps) > limit and metric:
        top = sorted(reps, key=lambda v: summary.score(v, metric), reverse=True)[:limit]
        keep = {v["variant_id"] for v in top}
        reps = [v for v in reps if v["variant_id"] in keep]  # grid order keeps legends stable
    return reps[:limit], total


def _legend_label(summary: Summary, styler: Styler, v: dict[str, Any]) -> str:
    tuned = summary.tuned(styler.keys)
    text = styler.family(v["labels"])
    return clip(f"{text} ({name_of(v['labels'], tuned)})" if tuned else text, LABEL_MAX)


def _legend_cols(labels: list[str]) -> int:
    return max(1, min(len(labels), 4 if max((len(x) for x in labels), default=0) < 28 else 2))


def _figure(
    nrows: int,
    ncols: int,
    width: float,
    panel_h: float,
    *,
    legend: list[str] | None = None,
    share: bool = False,
    left: float = 0.8,
    title_lines: int = 0,
) -> tuple[Any, Any]:
    """A figure with fixed margins in inches, sized so the legend below never squeezes the panels.

    Fixed margins instead of constrained layout: solving the layout cost ~40 % of plot time.
    """
    from matplotlib.figure import Figure

    legend = legend or []
    rows = math.ceil(len(legend) / _legend_cols(legend)) if legend else 0
    top = 0.45 + 0.17 * title_lines
    bottom = 0.55 + (0.2 * rows + 0.12 if rows else 0.0)
    gap_h = 0.17 * title_lines + (0.15 if share else 0.65)
    gap_w = 0.15 if share else 0.85
    height = top + bottom + nrows * panel_h + (nrows - 1) * gap_h
    # However long a label, the panels keep half the width (matplotlib refuses left >= right).
    left = min(left, width / 2)
    axes_w = (width - left - 0.2 - (ncols - 1) * gap_w) / ncols
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1 - 0.2 / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=gap_w / axes_w,
        hspace=gap_h / panel_h,
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=share, sharey=share)
    return fig, axes


def _legend(fig: Any, handles: list[Any], labels: list[str]) -> None:
    """Legend under the panels (room reserved by ``_figure``), so it never covers data."""
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=_legend_cols(labels),
            frameon=False,
        )


def _save_atomic(fig: Any, path: Path, **kw: Any) -> None:
    """``fig.savefig`` into a fresh temp file renamed over ``path``: a plot is never seen
    half-written, and a link planted at ``path`` is replaced, never written through."""
    import os
    import secrets

    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, **kw)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save(fig: Any, out: Path, name: str, title: str, caption: str) -> Plot:
    import warnings

    png, svg = out / f"{name}.png", out / f"{name}.svg"
    with warnings.catch_warnings():
        # A name in a script the font lacks (CJK) is drawn as boxes: one warning per glyph
        # per figure would bury the report's own messages.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        _save_atomic(fig, png, dpi=DPI, metadata={"Software": None})
        _save_atomic(fig, svg, metadata={"Date": None, "Creator": None})
    return Plot(name, title, caption, png, svg)


def _proxy(styler: Styler, labels: dict[str, str], **kw: Any) -> Any:
    """A legend handle in a family's colour and dash, independent of what each panel drew."""
    from matplotlib.lines import Line2D

    return Line2D(
        [], [], **{"color": styler.colour(labels), "linestyle": styler.dash(labels), **kw}
    )


def _log_y(ax: Any) -> None:
    """Log y axis with plain ``0.1``-style labels: mathtext ``10⁻¹`` labels are slow to lay out."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if finite_number(v) is None else v for v in values], dtype=float)


def _seeds_note(summary: Summary) -> str:
    n = len(summary["seeds"])
    if n < CI_MIN_SEEDS:  # a bootstrap band over 2 seeds is their range, not a CI
        return f"mean and min–max band over {n} seed{'s' if n != 1 else ''}"
    return f"mean and 95 % bootstrap band over {n} seeds"


# --- curves ---------------------------------------------------------------------------------


def _curve_panels(summary: Summary) -> list[tuple[str, str, bool]]:
    """(curve, y label, log y) for the two panels: test accuracy (or loss) and train loss."""
    have = {k for v in summary["variants"] for k in (v.get("curves") or {})}
    first = (
        ("test_acc", "test accuracy", False)
        if "test_acc" in have
        else ("test_loss", "test loss (nats)", True)
    )
    return [first, ("train_loss", "train loss (nats, log scale)", True)]


def plot_curves(summary: Summary, styler: Styler, out: Path, x: str) -> Plot | None:
    """Test accuracy and train loss vs step (``x="step"``) or vs training seconds."""
    metric = summary.headline
    reps, total = representatives(summary, styler, metric)
    reps = [v for v in reps if (v.get("curves") or {}).get("step")]
    if not reps:
        return None
    panels = _curve_panels(summary)
    labels = [_legend_label(summary, styler, v) for v in reps]
    handles = [_proxy(styler, v["labels"]) for v in reps]
    fig, axes = _figure(1, 2, 10, 3.6, legend=labels)
    for ax, (name, ylabel, log) in zip(axes[0], panels, strict=True):
        for v in reps:
            c = v["curves"]
            if name not in c:
                continue
            xs = (
                _arr(c["step"])
                if x == "step"
                else _arr((c.get("train_seconds") or {}).get("mean") or [])
            )
            if xs.size != len(c["step"]):
                continue
            m, lo, hi = (_arr(c[name][k]) for k in ("mean", "ci_low", "ci_high"))
            (line,) = ax.plot(
                xs, m, color=styler.colour(v["labels"]), linestyle=styler.dash(v["labels"])
            )
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("training step" if x == "step" else "training time (s, evaluation excluded)")
        ax.set_ylabel(ylabel)
        if log:
            _log_y(ax)
    _legend(fig, handles, labels)
    shown = f"best of each {' × '.join(styler.keys) or 'variant'}"
    if total > len(reps):
        shown += f", top {len(reps)} of {total} by {metric}"
    title = f"Learning curves vs {'step' if x == 'step' else 'training time'}"
    fig.suptitle(f"{title} ({shown})")
    return _save(fig, out, f"curves_{x}", title, f"{_seeds_note(summary)}; {shown}.")


# --- learning-rate sensitivity ----------------------------------------------------------------


def _lr(v: dict[str, Any]) -> float:
    try:
        return float(v["labels"][LR_KEY])
    except (KeyError, ValueError):
        return math.nan


def plot_lr(summary: Summary, styler: Styler, out: Path) -> Plot | None:
    """Metric vs lr_mult, one line per norm × placement; × marks lr values that did not converge."""
    metric = summary.headline
    if not summary.varied(LR_KEY) or not metric:
        return None
    has_target = bool(summary["suite"].get("targets"))
    fams = summary.groups(styler.keys)
    ranked = sorted(
        fams.values(),
        key=lambda g: summary.score(summary.best(g, metric) or g[0], metric),
        reverse=True,
    )
    keep = {id(g) for g in ranked[:MAX_LINES]}
    shown = [g for g in fams.values() if id(g) in keep]
    labels = [styler.family(g[0]["labels"]) for g in shown] + ["did not converge"]
    handles = [_proxy(styler, g[0]["labels"], marker="o", markersize=4) for g in shown]
    handles.append(_proxy(styler, {}, color="grey", marker="x", linestyle="none", markersize=7))
    fig, axes = _figure(1, 1, 7.5, 3.8, legend=labels)
    ax = axes[0][0]
    for g in shown:
        # Within a family, other swept keys (activation …) are tuned per lr value.
        per_lr = {
            lr: summary.best(vs, metric) or vs[0]
            for (lr,), vs in summary.groups([LR_KEY], g).items()
        }
        pts = sorted(((_lr(v), v) for v in per_lr.values()), key=lambda t: t[0])
        xs = np.array([p[0] for p in pts])
        ys = np.array([mean(v, metric) if mean(v, metric) is not None else np.nan for _, v in pts])
        err = np.array(
            [
                [
                    (ys[i] - (v["metrics"][metric].get("ci_low") or ys[i])),
                    ((v["metrics"][metric].get("ci_high") or ys[i]) - ys[i]),
                ]
                for i, (_, v) in enumerate(pts)
            ]
        ).T
        colour, dash = styler.colour(g[0]["labels"]), styler.dash(g[0]["labels"])
        ax.errorbar(
            xs, ys, yerr=err, color=colour, linestyle=dash, marker="o", markersize=4, capsize=2
        )
        bad = np.array([not converged(v, has_target) for _, v in pts])
        if bad.any():
            ax.scatter(xs[bad], ys[bad], marker="x", s=60, color=colour, zorder=5, linewidths=1.5)
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    lrs = sorted({x for v in summary["variants"] if not math.isnan(x := _lr(v))})
    ax.xaxis.set_major_locator(FixedLocator(lrs))  # tick exactly the swept values
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(lrs, [f"{x:g}" for x in lrs])
    ax.set_xlabel("learning-rate multiplier lr_mult (log scale)")
    ax.set_ylabel(metric.replace("_", " ") + _unit_suffix(summary, metric))
    _legend(fig, handles, labels)
    title = "Learning-rate sensitivity"
    fig.suptitle(f"{title}: {metric} vs lr_mult (mean, 95 % CI)")
    return _save(
        fig,
        out,
        "lr_sensitivity",
        title,
        f"{metric} at each lr_mult, mean and 95 % bootstrap CI over seeds; "
        "× = a majority of seeds diverged, failed or missed the target.",
    )


def _unit_suffix(summary: Summary, metric: str) -> str:
    unit = (summary.get("metric_info") or {}).get(metric, {}).get("unit", "")
    return f" ({unit})" if unit and unit != "fraction" else ""


# --- throughput -----------------------------------------------------------------------------


def _family_rel_cost(g: list[dict[str, Any]]) -> tuple[float, float, float] | None:
    """(median, low, high) of a family's relative cost: the median of its variants' means and
    the widest 95 % bootstrap CI over seeds (the noise of the figure itself)."""
    stats = [
        s for v in g if (s := v["metrics"].get("rel_ms_per_step")) and s.get("mean") is not None
    ]
    if not stats:
        return None
    return (
        float(np.median([s["mean"] for s in stats])),
        min(s["ci_low"] for s in stats),
        max(s["ci_high"] for s in stats),
    )


def plot_throughput(summary: Summary, styler: Styler, out: Path) -> Plot | None:
    """Samples per second per norm × placement and, when measured, the relative cost beside it.

    The relative cost (``rel_ms_per_step``) is drawn with its noise: whiskers span the 95 %
    bootstrap CI over seeds, so a wide bar says the figure did not repeat.
    """
    metric = "samples_per_sec"
    fams = [
        (k, g)
        for k, g in summary.groups(styler.keys).items()
        if any(mean(v, metric) is not None for v in g)
    ]
    if not fams:
        return None
    rows = []
    for _, g in fams:
        vals = [mean(v, metric) for v in g if mean(v, metric) is not None]
        rows.append(
            (g[0]["labels"], float(np.mean(vals)), min(vals), max(vals), _family_rel_cost(g))
        )
    rows = sorted(rows, key=lambda r: -r[1])[:MAX_BARS]
    with_rel = any(r[4] is not None for r in rows)
    names = [styler.family(r[0]) for r in rows]
    fig, axes = _figure(
        1,
        2 if with_rel else 1,
        11.0 if with_rel else 7.5,
        0.3 + 0.28 * len(rows),
        left=0.3 + 0.07 * max(map(len, names)),
    )
    ax = axes[0][0]
    y = np.arange(len(rows))[::-1]
    for yi, (labels, m, lo, hi, _) in zip(y, rows, strict=True):
        ax.barh(
            yi,
            m,
            xerr=[[m - lo], [hi - m]],
            color=styler.colour(labels),
            hatch=styler.hatch(labels),
            edgecolor="white",
            capsize=2,
            ecolor="#777777",
            error_kw={"elinewidth": 0.8},
        )
    ax.set_yticks(y, names)
    from matplotlib.ticker import StrMethodFormatter

    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("training throughput (samples/s, evaluation excluded)")
    ax.grid(axis="y", visible=False)
    caption = "Mean over the family's variants and seeds; whiskers span the variants' means."
    if with_rel:
        rax = axes[0][1]
        for yi, (labels, *_, rel) in zip(y, rows, strict=True):
            if rel is None:
                continue
            med, q1, q3 = rel
            rax.barh(
                yi,
                med,
                xerr=[[max(med - q1, 0)], [max(q3 - med, 0)]],
                color=styler.colour(labels),
                hatch=styler.hatch(labels),
                edgecolor="white",
                capsize=2,
                ecolor="#333333",
                error_kw={"elinewidth": 0.8},
            )
        rax.axvline(1.0, color="#555555", linewidth=0.8, linestyle="--")
        rax.set_yticks(y, [""] * len(rows))
        ref = (
            next(
                (
                    v["rel_cost"].get("reference_name")
                    for v in summary["variants"]
                    if v.get("rel_cost")
                ),
                None,
            )
            or "the reference"
        )
        rax.set_xlabel(f"relative cost: ms/step ÷ {ref}'s (lower is better)")
        rax.grid(axis="y", visible=False)
        caption += (
            f" Right: ms per step relative to {ref}, timed side by side after training"
            " (median of the variants); whiskers: 95 % CI over seeds."
        )
    title = "Throughput"
    fig.suptitle(f"{title} per {' × '.join(styler.keys) or 'variant'}")
    return _save(fig, out, "throughput", title, caption)


# --- diagnostics ----------------------------------------------------------------------------

Records = dict[str, list[dict[str, Any]]]


def _diag(records: Records, v: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The first seed's ``diagnostics[name]`` of a variant (diagnostics are not averaged)."""
    for r in records.get(v["variant_id"], []):
        d = (r.get("diagnostics") or {}).get(name)
        if isinstance(d, dict) and d.get("step"):
            return d
    return None


def _facets(n: int, title_lines: int, legend: list[str] | None = None) -> tuple[Any, Any]:
    """Small multiples with shared axes: comparable at a glance, fewer tick labels to lay out."""
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(nrows, ncols, 10.0, 1.9, legend=legend, share=True, title_lines=title_lines)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[:n]):
        # Shared axes: label the outer ones only (the last row and first column that are shown).
        if i + ncols < n:
            ax.tick_params(labelbottom=False)
        if i % ncols:
            ax.tick_params(labelleft=False)
    return fig, axes


def _label_facets(axes: Any, n: int, xlabel: str, ylabel: str) -> None:
    ncols = axes.shape[1]
    for i, ax in enumerate(axes.flat[:n]):
        if i + ncols >= n:
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)


def _matrix(values: Any, nsteps: int) -> np.ndarray | None:
    """A (steps × k) float array from nested lists, or ``None`` when it is not one."""
    try:
        a = np.array(
            [[np.nan if finite_number(x) is None else x for x in row] for row in values],
            dtype=float,
        )
    except (TypeError, ValueError):
        return None
    return a if a.ndim == 2 and a.shape[0] == nsteps else None


def plot_activations(summary: Summary, styler: Styler, records: Records, out: Path) -> Plot | None:
    """Percentile bands of a layer's pre-activation over training (Ioffe & Szegedy Fig. 1b-c)."""
    reps, _ = representatives(summary, styler, summary.headline, MAX_FACETS)
    items = [(v, d) for v in reps if (d := _diag(records, v, "activations"))]
    if not items:
        return None
    fig, axes = _facets(len(items), title_lines=2)
    for ax, (v, d) in zip(axes.flat, items, strict=False):
        steps = _arr(d["step"])
        vals = _matrix(d.get("values"), steps.size)
        if vals is None:
            continue
        pct = d.get("percentiles") or []
        colour = styler.colour(v["labels"])
        if vals.shape[1] >= 2:
            ax.fill_between(steps, vals[:, 0], vals[:, -1], color=colour, alpha=0.25, linewidth=0)
        mid = vals[:, vals.shape[1] // 2]
        ax.plot(steps, mid, color=colour, linestyle=styler.dash(v["labels"]))
        band = (
            f"p{pct[0]:g}–p{pct[-1]:g} band, p{pct[len(pct) // 2]:g} line"
            if len(pct) == vals.shape[1]
            else ""
        )
        ax.set_title(f"{_legend_label(summary, styler, v)}\n{band}", fontsize=8)
    _label_facets(axes, len(items), "training step", "pre-activation value")
    title = "Activation percentiles"
    layer = items[0][1].get("layer")
    fig.suptitle(f"{title} over training (layer {layer}, first seed)")
    return _save(
        fig,
        out,
        "activations",
        title,
        "Distribution of one layer's input to its non-linearity over training, first seed "
        "of the best variant per family: a drifting band is internal covariate shift.",
    )


def plot_grad_norms(summary: Summary, styler: Styler, records: Records, out: Path) -> Plot | None:
    """Per-layer gradient ℓ2 norms over training, one panel per family."""
    import matplotlib as mpl

    reps, _ = representatives(summary, styler, summary.headline, MAX_FACETS)
    items = [(v, d) for v in reps if (d := _diag(records, v, "grad_norms"))]
    if not items:
        return None
    from matplotlib.lines import Line2D

    layers = [str(x) for x in items[0][1].get("layers") or []]
    cmap = mpl.colormaps["viridis"]

    def colour(j: int, k: int) -> Any:
        return cmap(j / max(1, k - 1) * 0.9)  # stop before viridis' faint yellow end

    legend = layers if 0 < len(layers) <= 10 else []  # beyond that the colour ramp says enough
    fig, axes = _facets(len(items), title_lines=1, legend=legend)
    for ax, (v, d) in zip(axes.flat, items, strict=False):
        steps = _arr(d["step"])
        vals = _matrix(d.get("values"), steps.size)
        if vals is None:
            continue
        for j in range(vals.shape[1]):
            ax.plot(steps, vals[:, j], color=colour(j, vals.shape[1]))
        _log_y(ax)
        ax.set_title(_legend_label(summary, styler, v), fontsize=8)
    _label_facets(axes, len(items), "training step", "gradient ℓ2 norm (log scale)")
    _legend(fig, [Line2D([], [], color=colour(j, len(legend))) for j in range(len(legend))], legend)
    title = "Gradient norms"
    fig.suptitle(f"{title} per layer over training (first seed)")
    return _save(
        fig,
        out,
        "grad_norms",
        title,
        "Per-layer gradient ℓ2 norm, first seed of the best "
        "variant per family; colours go from the first layer (dark) to the last (light).",
    )


def _family_lines(
    summary: Summary,
    styler: Styler,
    records: Records,
    name: str,
    panels: list[tuple[str, str]],
    title: str,
    caption: str,
    out: Path,
    reduce: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
) -> Plot | None:
    """Shared body of the ICS and landscape plots: one line (and band) per family per panel."""
    reps, _ = representatives(summary, styler, summary.headline)
    items = [(v, d) for v in reps if (d := _diag(records, v, name))]
    panels = [(k, lab) for k, lab in panels if any(k in d for _, d in items)]
    if not items or not panels:
        return None
    labels = [_legend_label(summary, styler, v) for v, _ in items]
    handles = [_proxy(styler, v["labels"]) for v, _ in items]
    fig, axes = _figure(1, len(panels), 4.0 * len(panels), 3.4, legend=labels)
    for ax, (key, ylabel) in zip(axes[0], panels, strict=True):
        for v, d in items:
            steps = _arr(d["step"])
            raw = d.get(key)
            if raw is None:
                continue
            arr = (
                _matrix(raw, steps.size) if raw and isinstance(raw[0], list) else _arr(raw)[:, None]
            )
            if arr is None or arr.shape[0] != steps.size:
                continue
            m, lo, hi = reduce(arr)
            (line,) = ax.plot(
                steps, m, color=styler.colour(v["labels"]), linestyle=styler.dash(v["labels"])
            )
            if lo is not None and hi is not None:
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
    _legend(fig, handles, labels)
    fig.suptitle(title)
    return _save(fig, out, name, title, caption)


def _layer_mean(a: np.ndarray) -> tuple[np.ndarray, None, None]:
    with np.errstate(all="ignore"):
        return np.nanmean(a, axis=1), None, None


def _min_max(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if a.shape[1] >= 2:
        return (a[:, 0] + a[:, -1]) / 2, a[:, 0], a[:, -1]
    return a[:, 0], None, None


def plot_layer_stats(summary: Summary, styler: Styler, records: Records, out: Path) -> Plot | None:
    """Per block: output RMS at the end, gradient norm at initialisation, and the largest
    attention logit over training — one line per family."""
    reps, _ = representatives(summary, styler, summary.headline)
    items = [(v, d) for v in reps if (d := _diag(records, v, "layer_stats"))]
    if not items:
        return None
    labels = [_legend_label(summary, styler, v) for v, _ in items]
    fig, axes = _figure(1, 3, 10.0, 2.4, legend=labels)
    rms_ax, grad_ax, logit_ax = axes.flat
    for v, d in items:
        style = {"color": styler.colour(v["labels"]), "linestyle": styler.dash(v["labels"])}
        rms = _arr((d.get("rms") or [[]])[-1])
        rms_ax.plot(np.arange(rms.size), rms, marker="o", ms=3, **style)
        grads = _arr(d.get("init_grad_norms") or [])
        grad_ax.plot(np.arange(grads.size), grads, marker="o", ms=3, **style)
        peaks = [
            max((x for x in row if x is not None), default=None)
            for row in d.get("attn_logit_max") or []
        ]
        if any(p is not None for p in peaks):
            logit_ax.plot(_arr(d["step"]), _arr(peaks), **style)
    from matplotlib.ticker import MaxNLocator

    for ax, ylabel in ((rms_ax, "output RMS at the end"), (grad_ax, "gradient ℓ2 norm at init")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block")
        ax.set_ylabel(ylabel)
        _log_y(ax)
    logit_ax.set_xlabel("training step")
    logit_ax.set_ylabel("max attention logit")
    _legend(fig, [_proxy(styler, v["labels"]) for v, _ in items], labels)
    title = "Per-block statistics"
    fig.suptitle(f"{title} (first seed of the best variant per family)")
    return _save(
        fig,
        out,
        "layer_stats",
        title,
        "Left: each block's output RMS at the end (growth with depth). Middle: each block's "
        "gradient ℓ2 norm at initialisation (Post-LN's grows toward the output). Right: the "
        "largest attention logit |q·k|/√d over training (the instability QK-norm prevents).",
    )


def plot_ics(summary: Summary, styler: Styler, records: Records, out: Path) -> Plot | None:
    return _family_lines(
        summary,
        styler,
        records,
        "ics",
        [("l2", "‖G − G′‖₂ (mean over layers)"), ("cosine", "cos(G, G′) (mean over layers)")],
        "Internal covariate shift (Santurkar et al. Def. 2.1)",
        "Change of a layer's gradient when the earlier layers are updated, first "
        "seed of the best variant per family.",
        out,
        _layer_mean,
    )


def plot_landscape(summary: Summary, styler: Styler, records: Records, out: Path) -> Plot | None:
    return _family_lines(
        summary,
        styler,
        records,
        "landscape",
        [
            ("loss_range", "loss along the gradient (nats)"),
            ("grad_pred", "‖∇L(θ − ηg) − ∇L(θ)‖"),
            ("beta_smoothness", "effective β-smoothness"),
        ],
        "Loss landscape along the gradient (Santurkar et al. §3.2)",
        "Bands span the minimum and maximum over the step sizes probed; first seed "
        "of the best variant per family.",
        out,
        _min_max,
    )


# --- all ------------------------------------------------------------------------------------


def plot_profile(summary: Summary, styler: Styler, out: Path) -> Plot | None:
    """AlgoPerf-style performance profile: share of settings within τ × the best time, per norm."""
    prof = (summary.get("analysis") or {}).get("profile")
    if not prof:
        return None
    labels = list(prof["norms"])
    handles = [_proxy(styler, {NORM_KEY: n}) for n in labels]
    fig, axes = _figure(1, 1, 7.5, 3.6, legend=labels)
    ax = axes[0][0]
    for n in labels:
        ax.step(prof["taus"], prof["profile"][n], where="post", color=styler.colour({NORM_KEY: n}))
    ax.set_xlim(1, 4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (time to target ÷ the best norm's in that setting)")
    ax.set_ylabel("fraction of settings")
    _legend(fig, handles, [clip(str(n), LABEL_MAX) for n in labels])
    n = len(prof["settings"])
    title = "Performance profile"
    fig.suptitle(f"{title}: {prof['metric']} over {n} settings")
    return _save(
        fig,
        out,
        "performance_profile",
        title,
        f"For each norm, the fraction of the {n} settings (every other swept value) in "
        f"which its mean {prof['metric']} is within τ × the best norm's there; a norm "
        "whose seeds mostly missed the target never counts. ρ(1) = settings it won.",
    )


def plot_cost_benefit(summary: Summary, styler: Styler, out: Path) -> Plot | None:
    """Headline metric against relative step cost, one point per variant with both 95 % CIs."""
    from normbench.analysis.profile import cost_points

    metric = summary.headline
    points = cost_points(summary, metric) if metric else []
    if len(points) < 2:
        return None
    fams = list(dict.fromkeys(styler.family(p["labels"]) for p in points))
    styles = list(dict.fromkeys(p["labels"].get(styler.style_key or "", "") for p in points))

    def marker(labels: dict[str, str]) -> str:  # the style key (placement …) as the marker
        return "osD^vP"[styles.index(labels.get(styler.style_key or "", "")) % 6]

    first = {styler.family(p["labels"]): p["labels"] for p in reversed(points)}
    handles = [_proxy(styler, first[f], marker=marker(first[f]), linestyle="none") for f in fams]
    fig, axes = _figure(1, 1, 7.5, 3.8, legend=fams)
    ax = axes[0][0]
    for p in points:
        ax.errorbar(
            [p["cost"]],
            [p["value"]],
            xerr=[[p["cost"] - p["cost_low"]], [p["cost_high"] - p["cost"]]],
            yerr=[[p["value"] - p["low"]], [p["high"] - p["value"]]],
            color=styler.colour(p["labels"]),
            marker=marker(p["labels"]),
            markersize=4,
            capsize=2,
            linestyle="none",
        )
    rel = "rel_ms_per_step" in (summary.get("metric_info") or {})
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(
        "relative step cost ("
        + ("rel_ms_per_step" if rel else "ms per step ÷ no norm's at the same settings")
        + ")"
    )
    ax.set_ylabel(metric.replace("_", " ") + _unit_suffix(summary, metric))
    _legend(fig, handles, fams)
    title = "Cost and benefit"
    fig.suptitle(f"{title}: {metric} vs relative step cost (mean, 95 % CI)")
    return _save(
        fig,
        out,
        "cost_benefit",
        title,
        f"One point per variant: {metric} (mean, 95 % bootstrap CI over seeds) against "
        "its step time relative to no norm; up and to the left is better.",
    )


DiagnosticPlot = Callable[[dict[str, Any], Styler, Records, Path], Plot | None]


def diagnostic_plots() -> list[tuple[str, DiagnosticPlot]]:
    """(diagnostic, plot function) for every diagnostic with a plot, in catalog order.

    A catalog entry naming a function this module lacks is an error, raised when the module is
    imported: a typo must not silently cost the plot.
    """
    out: list[tuple[str, DiagnosticPlot]] = []
    for d in DIAGNOSTICS.values():
        if d.plot is None:
            continue
        fn = globals().get(d.plot)
        if not d.plot.startswith("plot_") or not callable(fn):
            raise LookupError(
                f"diagnostic '{d.name}' names plot '{d.plot}', which is no plot_ function of "
                f"{__name__}"
            )
        out.append((d.name, fn))
    return out


def write_plots(data: Mapping[str, Any], records: Records, out: Path, warn: Warn) -> list[Plot]:
    """Draw every plot the data supports into ``out`` (PNG + SVG); diagnostics are best effort."""
    import matplotlib as mpl

    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(data)
    styler = Styler(summary)
    core: list[Callable[[], Plot | None]] = [
        lambda: plot_curves(summary, styler, out, "step"),
        lambda: plot_curves(summary, styler, out, "seconds"),
        lambda: plot_lr(summary, styler, out),
        lambda: plot_throughput(summary, styler, out),
        lambda: plot_profile(summary, styler, out),
        lambda: plot_cost_benefit(summary, styler, out),
    ]
    plots = []
    with mpl.rc_context(RC):
        for draw in core:
            p = draw()
            if p:
                plots.append(p)
        for name, fn in diagnostic_plots():
            # Diagnostics come from another package and may change shape: a malformed one
            # costs its plot, not the whole report.
            try:
                p = fn(summary, styler, records, out)
            except Exception as exc:
                warn(f"could not draw the {name} plot ({error_text(exc)}); skipped")
                continue
            if p:
                plots.append(p)
    return plots


# Checked on import, once every function here is defined: an unknown plot name fails loudly.
diagnostic_plots()
