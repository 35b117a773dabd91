"""The report's sections of blocks, rendered as report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normbench import __version__
from normbench.analysis.query import headline_metric, name_of
from normbench.metrics import timed
from normbench.report.interactive import CSS as INTERACTIVE_CSS
from normbench.report.interactive import figure_html, script_html
from normbench.report.plots import Plot
from normbench.report.render import Table, markdown_text, render, to_html
from normbench.report.tables import (
    convergence_table,
    lr_table,
    profile_table,
    relative_table,
    stats_table,
    summary_table,
)

# The throughput section: the step timings (interval medians, then the breakdown), the training
# wall time, and the size of the model they are for; times to a target and the relative cost
# have sections of their own.
THROUGHPUT_METRICS = (*timed(("interval", "breakdown", "wall")), "num_params")
# The model's own memory (accounted tensor by tensor) apart from what the process holds.
MEMORY_METRICS = (
    "model_memory_mb",
    "param_memory_mb",
    "grad_memory_mb",
    "optimizer_state_mb",
    "activation_memory_mb",
    "peak_memory_mb",
    "process_rss_mb",
)

Block = tuple[
    str, Any
]  # ("p", str) | ("kv", [(k, v)]) | ("list", [str]) | ("table", Table) | ("plot", Plot)


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


def _env_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    env = manifest.get("environment") or {}
    return [(k, env_text(v)) for k, v in env.items() if v not in (None, "")]


def env_text(value: Any, depth: int = 0) -> str:
    """An environment value as a reader writes it: ``blas: mkl · isa_flags: avx2, fma``.

    A mapping (the kernels record) becomes ``key: value`` parts, a mapping inside it
    ``KEY=value`` pairs, a list comma-joined: never a Python ``repr``.
    """
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if v not in (None, "", [], {})]
        if depth:
            return ", ".join(f"{k}={env_text(v, depth + 1)}" for k, v in items)
        return " · ".join(f"{k}: {env_text(v, depth + 1)}" for k, v in items)
    if isinstance(value, (list, tuple)):
        return ", ".join(env_text(v, depth + 1) for v in value)
    return str(value)


def _command(cmd: Any) -> str:
    """The command line as typed (the manifest may store it as an argv list)."""
    if isinstance(cmd, list):
        return shlex.join(str(c) for c in cmd)
    return str(cmd or "")


def _wall_time(manifest: dict[str, Any]) -> str:
    """Wall time of the run from the manifest's start and end (ISO timestamps)."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(manifest["started"]))
        end = datetime.fromisoformat(str(manifest["finished"]))
    except (KeyError, TypeError, ValueError):
        return "unknown"
    seconds = (end - start).total_seconds()
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def _claims(summary: dict[str, Any]) -> Section | None:
    """Each claim of the suite, what was measured, its effect and verdict."""
    from normbench.analysis.claims import METHOD_NOTE, describe_claim

    results = (summary.get("analysis") or {}).get("claims") or []
    if not results:
        return None
    items = []
    for r in results:
        src = f" ({r['source']})" if r.get("source") else ""
        items.append(
            f"{r['text']}{src} — {r['metric']}: {r['verdict'].upper()}. {describe_claim(r)}"
        )
    note = METHOD_NOTE + (
        " A published-value claim is above, below or equivalent to the "
        "published number ± its tolerance (one-sample t)."
    )
    seq = (summary.get("manifest") or {}).get("until_decided")
    if seq:
        note += (
            f" Seeds were added until decided (looks at {', '.join(map(str, seq['looks']))} "
            f"seeds, {seq['spending']} alpha spending, Bonferroni over looks)."
        )
    return Section("Claims checked", "claims", [("p", note), ("list", items)])


def _overview(summary: dict[str, Any]) -> Section:
    m, suite, c = summary["manifest"], summary["suite"], summary["counts"]
    targets = ", ".join(
        f"{k} {'≥' if 'acc' in k else '≤'} {v:g}" for k, v in (suite.get("targets") or {}).items()
    )
    facts = [
        ("status", str(m.get("status", "unknown"))),
        ("command", _command(m.get("command"))),
        ("started / finished", f"{m.get('started', '?')} / {m.get('finished', '?')}"),
        ("wall time", _wall_time(m)),
        ("variants", f"{len(summary['variants'])} × {len(summary['seeds'])} seeds"),
        (
            "seed outcomes",
            f"{c['ok']} ok, {c['diverged']} diverged, {c['failed']} failed"
            + (f", {c['missing']} missing" if c.get("missing") else ""),
        ),
        ("targets", targets or "none"),
        *[(f"swept {k}", ", ".join(vals)) for k, vals in summary["values"].items()],
        ("normbench", f"{m.get('normbench_version', '?')} (report by {__version__})"),
    ]
    blocks: list[Block] = []
    if suite.get("description"):
        blocks.append(("p", str(suite["description"])))
    blocks.append(("kv", facts))
    env = _env_rows(m)
    if env:
        blocks += [("h", "Environment"), ("kv", env)]
    return Section("Overview", "overview", blocks)


def _problems(summary: dict[str, Any], warnings: list[str]) -> Section | None:
    items = []
    for v in summary["variants"]:
        for seed, status in zip(v["seeds"], v["seed_status"], strict=False):
            if status != "ok":
                err = v["errors"].get(str(seed)) or ""
                items.append(
                    f"{v['variant_name']} seed {seed}: {status}" + (f" — {err}" if err else "")
                )
    items += [
        f"{name}: no result (not run or not finished)"
        for name in summary.get("missing_variants") or []
    ]
    items += [f"warning: {w}" for w in warnings]
    if not items:
        return None
    return Section(
        "Diverged, failed and missing",
        "problems",
        [
            (
                "p",
                "Divergence is a result, not a failure: it is counted, and a diverged "
                "seed's final metrics are kept as recorded.",
            ),
            ("list", items),
        ],
    )


def build_sections(
    summary: dict[str, Any], plots: list[Plot], warnings: list[str]
) -> list[Section]:
    """All the report shows, in reading order: overview, compact table, plots, long tables."""
    from normbench.analysis.answer import answer

    analysis = summary.get("analysis") or {}
    sentences = answer(summary)
    # The answer and the claims come before the overview and its environment tables.
    sections = [Section("Answer", "answer", [("list", sentences)])] if sentences else []
    claims = _claims(summary)
    if claims:
        sections.append(claims)
    sections.append(_overview(summary))
    if analysis.get("lr_robustness"):
        sections.append(
            Section(
                "Learning-rate robustness",
                "lr-robustness",
                [("table", lr_table(summary, analysis["lr_robustness"]))],
            )
        )
    if any(
        isinstance(c, dict) and c.get("mean")
        for v in summary["variants"]
        for c in (v.get("curves") or {}).values()
    ):
        sections.append(Section("Curves", "curves", [("interactive", None)]))
    profile = [p for p in plots if p.name == "performance_profile"]
    if analysis.get("profile"):
        sections.append(
            Section(
                "Across settings",
                "across-settings",
                [
                    *(("plot", p) for p in profile),
                    ("table", profile_table(summary, analysis["profile"])),
                ],
            )
        )
    plots = [p for p in plots if p.name != "performance_profile"]
    if plots:
        sections.append(Section("Plots", "plots", [("plot", p) for p in plots]))
    ref = analysis.get("reference")
    if ref and analysis.get("relative"):
        sections.append(
            Section(
                f"Relative to {name_of(ref, list(ref))}",
                "relative",
                [
                    (
                        "p",
                        "Each variant is compared with the reference variant that shares its "
                        "other swept values (keys in grid order; a key no reference shares is "
                        "relaxed and listed).",
                    ),
                    ("table", relative_table(summary, analysis["relative"], ref)),
                ],
            )
        )
    if summary["suite"].get("targets") or "auc_test_loss" in (summary.get("metric_info") or {}):
        sections.append(
            Section("Convergence", "convergence", [("table", convergence_table(summary))])
        )
    sections.append(Section("All variants", "variants", [("table", summary_table(summary))]))
    throughput = [m for m in THROUGHPUT_METRICS if m in (summary.get("metric_info") or {})]
    if throughput:
        table = summary_table(summary, throughput)
        table.title = "Throughput: mean ± std over seeds (step breakdown measured after training)"
        sections.append(Section("Throughput", "throughput", [("table", table)]))
    memory = [m for m in MEMORY_METRICS if m in (summary.get("metric_info") or {})]
    if memory:
        table = summary_table(summary, memory)
        table.title = "Memory (MiB): the model's own, and the worker process's"
        table.note = (
            "model_memory_mb = parameters and buffers + gradients + optimizer state + "
            "the activations autograd saves in one training step, counted tensor by "
            "tensor; peak_memory_mb = CUDA max allocated (GPU runs); process_rss_mb = "
            "the worker process's peak resident memory, torch itself included (runs "
            "stored before this split kept that RSS under peak_memory_mb)"
        )
        sections.append(Section("Memory", "memory", [("table", table)]))
    metric = headline_metric(summary)
    if metric:
        sections.append(
            Section("Seed statistics", "seed-statistics", [("table", stats_table(summary, metric))])
        )
    problems = _problems(summary, warnings)
    if problems:
        sections.append(problems)
    return sections


# --- markdown -------------------------------------------------------------------------------


def _slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def to_markdown(summary: dict[str, Any], sections: list[Section], base: Path) -> str:
    """GitHub-flavoured markdown; plots are linked relative to the report's directory.

    Every text from the run goes through ``markdown_text`` (tables through ``render``): a
    suite description or variant name with a newline or ``<script>`` stays inert text.
    """
    md = markdown_text
    name = md(summary["suite"].get("name", ""))
    out = [f"# normbench report: {name}", ""]
    out.append(" · ".join(f"[{s.title}](#{_slug(s.title)})" for s in sections))
    out.append("")
    for s in sections:
        out += [f"## {s.title}", ""]
        for kind, body in s.blocks:
            if kind == "p":
                out += [md(body), ""]
            elif kind == "h":
                out += [f"### {md(body)}", ""]
            elif kind == "kv":
                out += [
                    render(Table("", ["", ""], [[f"**{k}**", v] for k, v in body]), "markdown"),
                    "",
                ]
            elif kind == "list":
                out += [f"- {md(item)}" for item in body] + [""]
            elif kind == "table":
                out += [f"**{md(body.title)}**", "", render(body, "markdown")]
                if body.note:
                    out += [f"*{md(body.note)}*", ""]
            elif kind == "interactive":
                out += [
                    "Interactive curves (every learning rate, hover, toggles): see "
                    "`report.html`; the static plots follow.",
                    "",
                ]
            elif kind == "plot":
                png, svg = (
                    body.png.relative_to(base).as_posix(),
                    body.svg.relative_to(base).as_posix(),
                )
                out += [
                    f"### {md(body.title)}",
                    "",
                    f"![{md(body.title).replace(']', '')}]({png})",
                    "",
                    f"*{md(body.caption)}* ([SVG]({svg}))",
                    "",
                ]
    return "\n".join(out).rstrip() + "\n"


# --- html -----------------------------------------------------------------------------------

CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --head:#f6f8fa; --accent:#0072B2; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 32px 64px; max-width: 1280px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 10px;
     padding-bottom: 4px; border-bottom: 1px solid var(--line); } h3 { font-size: 15px; margin: \
20px 0 8px; }
nav { margin: 6px 0 16px; color: var(--muted); } nav a { color: var(--accent); margin-right: 14px;
     text-decoration: none; }
.table-wrap { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
table { width: 100%; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; overflow-wrap: \
anywhere; }
td.num { white-space: nowrap; }
th { background: var(--head); position: sticky; top: 0; }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) { background: #fbfcfd; }
table.kv { width: auto; } table.kv th { text-align: left; width: 1%; white-space: nowrap; }
.note, figcaption { color: var(--muted); font-size: 12.5px; margin: 4px 0 14px; }
figure { margin: 16px 0 28px; } figure img { max-width: 100%; height: auto; border: 1px solid \
var(--line); }
ul.problems { font-size: 13px; }
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def to_html_doc(summary: dict[str, Any], sections: list[Section]) -> str:
    """One self-contained HTML file: CSS, data, script inline, plots as base64 PNG, no network."""
    e = html.escape
    name = summary["suite"].get("name", "")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>normbench report: {e(name)}</title><style>{CSS}{INTERACTIVE_CSS}</style>"
        "</head><body>",
        f"<h1>normbench report: {e(name)}</h1>",
        "<nav>" + "".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections) + "</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{e(s.title)}</h2>')
        for kind, body in s.blocks:
            if kind == "p":
                parts.append(f"<p>{e(body)}</p>")
            elif kind == "h":
                parts.append(f"<h3>{e(body)}</h3>")
            elif kind == "kv":
                rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in body)
                parts.append(f'<div class="table-wrap"><table class="kv">{rows}</table></div>')
            elif kind == "list":
                parts.append(
                    '<ul class="problems">' + "".join(f"<li>{e(i)}</li>" for i in body) + "</ul>"
                )
            elif kind == "table":
                parts.append(to_html(body, sortable=True))
            elif kind == "interactive":
                parts.append(figure_html(summary))
            elif kind == "plot":
                parts.append(
                    f"<figure><h3>{e(body.title)}</h3>{_img(body.png, body.title)}"
                    f"<figcaption>{e(body.caption)}</figcaption></figure>"
                )
        parts.append("</section>")
    parts.append(script_html() + "</body></html>")
    return "\n".join(parts) + "\n"
