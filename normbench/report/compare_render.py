"""Render a ``Comparison``: terminal tables, a pull-request comment (markdown), CSV, JSON, JUnit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from normbench.analysis.compare import Comparison, GateResult, MetricChange, VariantComparison
from normbench.analysis.stats import CI_MIN_SEEDS
from normbench.report.render import Table, check_format, markdown_text, render
from normbench.report.tables import NONE, fmt_value

_MARKS = (
    ("+", "worse (significant)"),
    ("-", "better (significant)"),
    ("~", "no significant change"),
    ("!", "newly failing, diverged or target lost"),
    ("x", "not comparable (the suite changed)"),
)
MARKS = " · ".join(f"{m} {what}" for m, what in _MARKS)
MARKS_MD = " · ".join(f"`{m}` {what}" for m, what in _MARKS)
_ORDER = {"fail": 0, "pass": 1, "skipped": 2}


# --- cells --------------------------------------------------------------------------------------


def fmt_side(stats: dict[str, Any], unit: str) -> str:
    """``0.7627 [0.7590, 0.7680]``: mean and 95 % bootstrap CI from 3 seeds on, below that the
    seeds' range ``0.7627 (range 0.7590–0.7680)``; ``(n=2/3)`` when seeds lack a value."""
    if not stats or stats.get("mean") is None:
        return NONE
    text = fmt_value(stats["mean"], unit)
    lo, hi = stats.get("ci_low"), stats.get("ci_high")
    n = stats.get("n", 0)
    if lo is not None and hi is not None and n >= CI_MIN_SEEDS:
        text += f" [{fmt_value(lo, unit)}, {fmt_value(hi, unit)}]"
    elif n > 1 and stats.get("min") is not None and stats.get("max") is not None:
        text += f" (range {fmt_value(stats['min'], unit)}–{fmt_value(stats['max'], unit)})"
    total = len(stats.get("values") or [])
    if stats.get("n", 0) < total:
        text += f" (n={stats['n']}/{total})"
    return text


def fmt_change(ch: MetricChange) -> str:
    if ch.change is None:
        return NONE
    if ch.change == 0:
        return "0"
    return fmt_value(ch.change, ch.unit) if ch.change < 0 else "+" + fmt_value(ch.change, ch.unit)


def fmt_relative(x: float | None) -> str:
    if x is None:
        return NONE
    return "0 %" if x == 0 else f"{x * 100:+.1f} %"


def fmt_p(ch: MetricChange) -> str:
    if ch.p_value is not None:
        return f"{ch.p_value:.3g}"
    if ch.test.startswith("exact") and ch.note:
        return f"exact: {ch.note}"  # "exact: 300 → 500 on every seed", never p = 0
    return ch.test if ch.test != "no values" else NONE


def _gate_cell(cmp: Comparison, v: VariantComparison, metric: str) -> str:
    states = [g.status for g in cmp.gates if g.variant == v.name and g.metric == metric]
    if not states:
        return ""
    return "FAIL" if "fail" in states else "pass" if "pass" in states else "skipped"


# --- tables -------------------------------------------------------------------------------------


def comparison_table(cmp: Comparison) -> Table:
    """One row per variant × metric (and one per not-comparable variant)."""
    ref = cmp.mode == "reference"
    gated = bool(cmp.gate_texts)
    changed = any(v.changed for v in cmp.variants)  # --match name across a config change
    left, right = ("reference", "variant") if ref else ("baseline", "candidate")
    cols = [
        "",
        "variant",
        *(["reference"] if ref else []),
        *(["config change"] if changed else []),
        "metric",
        f"{left} (95 % CI)",
        f"{right} (95 % CI)",
        # --reference: the effect with its interval says the change (and ratio) already.
        *([] if ref else ["change", "rel."]),
        "p",
        *(["effect [CI]", "verdict"] if ref else []),
        *(["gate"] if gated else []),
    ]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for v in cmp.variants:
        if v.status == "not_comparable":
            rows.append(
                [
                    "x",
                    v.name,
                    *([""] if ref else []),
                    *([""] if changed else []),
                    NONE,
                    f"id {v.baseline_id}",
                    f"id {v.candidate_id}",
                    v.reason,
                    "",
                    "",
                    *([""] if gated else []),
                ]
            )
            data.append({"variant": v.name, "status": v.status, "reason": v.reason})
            continue
        if v.status != "matched":
            continue
        for i, ch in enumerate(v.metrics):
            first = i == 0
            rows.append(
                [
                    ch.mark,
                    v.name if first else "",
                    *([(v.baseline_name or "") if first else ""] if ref else []),
                    *([v.changed if first else ""] if changed else []),
                    ch.metric,
                    fmt_side(ch.baseline, ch.unit),
                    fmt_side(ch.candidate, ch.unit),
                    *([] if ref else [fmt_change(ch), fmt_relative(ch.relative)]),
                    fmt_p(ch),
                    *(_verdict_cells(ch) if ref else []),
                    *([_gate_cell(cmp, v, ch.metric)] if gated else []),
                ]
            )
            data.append(
                {
                    "variant": v.name,
                    "status": v.status,
                    **({"reference": v.baseline_name} if ref else {}),
                    **({"config_change": v.changed} if changed else {}),
                    "metric": ch.metric,
                    "mark": ch.mark,
                    "baseline_mean": ch.baseline.get("mean"),
                    "baseline_ci_low": ch.baseline.get("ci_low"),
                    "baseline_ci_high": ch.baseline.get("ci_high"),
                    "candidate_mean": ch.candidate.get("mean"),
                    "candidate_ci_low": ch.candidate.get("ci_low"),
                    "candidate_ci_high": ch.candidate.get("ci_high"),
                    "change": ch.change,
                    "relative": ch.relative,
                    "p_value": ch.p_value,
                    "test": ch.test,
                    "note": ch.note,
                    **(_verdict_data(ch) if ref else {}),
                }
            )
    what = f"each variant vs {_ref_name(cmp)}" if ref else f"{cmp.candidate} vs {cmp.baseline}"
    n0 = (4 if ref else 3) + int(changed)
    return Table(
        f"{cmp.suite}: {what}",
        cols,
        rows,
        data,
        # --reference: the effect text wraps; every other figure is a number.
        numeric=set(range(n0, n0 + (3 if ref else 5))),
        keys=n0,
        # Both sides together, then the change or verdict with its p (and gate) together.
        groups=(2, 3 + int(gated)),
        note=f"marks: {MARKS}; p: {cmp.test}, significant below family-wise α = {cmp.alpha:g}"
        + (f"; {VERDICT_NOTE}" if ref else ""),
    )


VERDICT_NOTE = (
    "effect: variant against reference, a difference (×ratio of geometric means for steps, "
    "times and rates) with the Welch CI that decided its verdict, its level beside it; "
    "verdict: better/worse (direction test), equivalent (TOST within ±margin: 1 point for "
    "accuracies, 5 % otherwise) or undecided, Holm-corrected over every row; the mark and p "
    "are the verdict's"
)


def _verdict_data(ch: MetricChange) -> dict[str, Any]:
    """The verdict as flat fields (CSV columns): effect, its interval, kind, margin, verdict."""
    v = ch.verdict or {}
    return {
        "effect": v.get("effect"),
        "effect_ci_low": v.get("ci_low"),
        "effect_ci_high": v.get("ci_high"),
        "effect_ci_level": v.get("ci_level"),
        "effect_kind": v.get("kind"),
        "margin": v.get("margin"),
        "verdict": v.get("verdict"),
    }


def _verdict_cells(ch: MetricChange) -> list[str]:
    """``effect [CI]`` and ``verdict`` of one ``--reference`` row."""
    v = ch.verdict or {}
    verdict = v.get("verdict", "")
    if verdict == "equivalent":
        verdict = f"equivalent ({v.get('margin')})"
    return [v.get("text", ""), verdict]


def _ref_name(cmp: Comparison) -> str:
    return ",".join(f"{k}={x}" for k, x in (cmp.reference or {}).items())


def gates_table(cmp: Comparison) -> Table:
    """One row per gate × variant, failures first."""
    rows, data = [], []
    for g in sorted(cmp.gates, key=lambda g: _ORDER[g.status]):
        rows.append(
            [
                g.status.upper() if g.status == "fail" else g.status,
                g.gate,
                g.variant,
                _num(g.baseline),
                _num(g.candidate),
                g.reason,
            ]
        )
        data.append({k: getattr(g, k) for k in GateResult.__dataclass_fields__})
    return Table(
        f"Gates: {len(cmp.failed)} of {len(cmp.gates)} checks failed",
        ["result", "gate", "variant", "baseline", "candidate", "why"],
        rows,
        data,
        numeric={3, 4},
        keys=3,
    )


def _num(x: float | None) -> str:
    return NONE if x is None else f"{x:.4g}"


def _lists(cmp: Comparison) -> list[str]:
    out = []
    for status, what in (
        ("new", "new in the candidate (no baseline)"),
        ("missing", "missing from the candidate"),
    ):
        names = [v.name for v in cmp.by_status(status)]
        if names:
            out.append(f"{what}: {', '.join(names)}")
    return out


# --- documents ----------------------------------------------------------------------------------


def render_comparison(cmp: Comparison, fmt: str, width: int | None = None) -> str:
    """The whole comparison in ``fmt``: table, markdown, csv, latex or json."""
    fmt = check_format(fmt)
    if fmt == "markdown":
        return markdown(cmp)
    table = comparison_table(cmp)
    if fmt == "json":  # the whole comparison (gates, warnings too), not only the table's rows
        table.json_obj = cmp.to_json()
    if fmt != "table":
        return render(table, fmt)
    parts = [cmp.summary_line() + "\n", render(table, "table", width)]
    if cmp.gate_texts:
        parts.append(render(gates_table(cmp), "table", width))
    parts += [line + "\n" for line in _lists(cmp)]
    parts.append(f"{cmp.verdict()}\n")
    return "".join(parts)


def render_gates(cmp: Comparison, fmt: str = "table", width: int | None = None) -> str:
    """Only the gate results and the verdict (what ``normbench run --baseline`` adds)."""
    if fmt == "markdown":
        return f"\n**{markdown_text(cmp.verdict())}**\n\n" + render(gates_table(cmp), "markdown")
    head = render(gates_table(cmp), "table", width) if cmp.gates else ""
    return head + "".join(line + "\n" for line in _lists(cmp)) + f"{cmp.verdict()}\n"


def markdown(cmp: Comparison) -> str:
    """A pull-request comment / CI step summary: verdict, gates, then every metric folded.

    Texts from the runs (suite, paths, names in the lists) go through ``markdown_text``.
    """
    md = markdown_text
    status = "FAILED" if cmp.failed else "passed" if cmp.gate_texts else "no gates"
    what = (
        f"variants vs `{md(_ref_name(cmp))}` in `{md(cmp.baseline)}`"
        if cmp.mode == "reference"
        else f"`{md(cmp.candidate)}` vs baseline `{md(cmp.baseline)}`"
    )
    lines = [
        f"### normbench compare: {md(cmp.suite)} — {status}",
        "",
        f"{what}. {cmp.test}, α = {cmp.alpha:g}"
        + ("" if cmp.stats else " (--no-stats: gates use the threshold alone)")
        + ".",
        "",
        f"**{md(cmp.summary_line())}.** **{md(cmp.verdict())}**",
        "",
    ]
    if cmp.gate_texts:
        lines += [render(gates_table(cmp), "markdown"), ""]
    body = render(comparison_table(cmp), "markdown")
    n = sum(len(v.metrics) for v in cmp.variants)
    if cmp.gate_texts:
        k = len(cmp.by_status("matched"))
        lines += [
            "<details><summary>All metrics "
            f"({k} variant{'s' if k != 1 else ''}, {n} row{'s' if n != 1 else ''})</summary>",
            "",
            body,
            "</details>",
            "",
        ]
    else:
        lines += [body, ""]
    lines.append(f"Marks: {MARKS_MD}.")
    lines += [f"- {md(line)}" for line in _lists(cmp)]
    lines += [f"> warning: {md(w)}" for w in cmp.warnings]
    return "\n".join(lines).rstrip() + "\n"


# What XML 1.0 may hold; anything else (C0 controls but tab and newlines, lone surrogates, U+FFFE)
# is written as its escape so a CI server can still read the report.
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    return _XML_BAD.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def error_markdown(reason: str, what: str) -> str:
    """The pull-request comment when ``compare`` could not compare (exit 2): the reason inside."""
    return (
        "### normbench compare — could not compare\n\n"
        f"{markdown_text(what)}\n\n**{markdown_text(reason)}**\n\n"
        "Exit code 2: no gate was checked. See `normbench compare --help` (`--match name` pairs "
        "variants across a deliberate change of the suite).\n"
    )


def write_junit_error(path: Path, reason: str, suite: str = "normbench compare") -> None:
    """JUnit XML when ``compare`` could not compare: one test case in error, with the reason."""
    root = ET.Element("testsuites", name="normbench", tests="1", failures="0", errors="1")
    ts = ET.SubElement(root, "testsuite", name=suite, tests="1", failures="0", errors="1")
    case = ET.SubElement(ts, "testcase", classname="normbench", name="compare")
    ET.SubElement(case, "error", message=reason, type="could not compare").text = reason + "\n"
    _write_xml(root, path)


def _write_xml(root: ET.Element, path: Path) -> None:
    for el in root.iter():  # a name with an ESC or NUL would make the whole file unparsable
        el.text = _xml_safe(el.text) if el.text else el.text
        for key, value in el.attrib.items():
            el.set(key, _xml_safe(value))
    ET.indent(root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n",
        encoding="utf-8",
    )


def write_junit(cmp: Comparison, path: Path) -> None:
    """JUnit XML: one test case per gated variant × metric, failed gates as failures."""
    suite = ET.Element(
        "testsuite",
        name=f"normbench compare {cmp.suite}",
        tests=str(len(cmp.gates)),
        failures=str(len(cmp.failed)),
        skipped=str(sum(g.status == "skipped" for g in cmp.gates)),
        errors="0",
    )
    for g in cmp.gates:
        case = ET.SubElement(suite, "testcase", classname=f"{cmp.suite}.{g.variant}", name=g.gate)
        detail = (
            f"{g.description}\nbaseline {_num(g.baseline)}, candidate {_num(g.candidate)}, "
            f"change {_num(g.change)} ({fmt_relative(g.relative)}), p {_num(g.p_value)}\n"
        )
        if g.status == "fail":
            ET.SubElement(
                case, "failure", message=f"{g.gate} regressed: {g.reason}", type="regression"
            ).text = detail
        elif g.status == "skipped":
            ET.SubElement(case, "skipped", message=g.reason)
        else:
            ET.SubElement(case, "system-out").text = f"{g.reason}\n{detail}"
    root = ET.Element(
        "testsuites",
        name="normbench",
        tests=suite.get("tests", "0"),
        failures=suite.get("failures", "0"),
    )
    root.append(suite)
    _write_xml(root, path)


__all__ = [
    "comparison_table",
    "error_markdown",
    "gates_table",
    "markdown",
    "render_comparison",
    "render_gates",
    "write_junit",
    "write_junit_error",
]
