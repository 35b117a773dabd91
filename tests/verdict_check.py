"""Find verdicts that their own row contradicts: a mark, a p or an interval that says otherwise.

Used by ``test_one_verdict.py`` on the committed curated runs under reports/ (and runnable on
its own: ``python tests/verdict_check.py [REPORT_DIR…]`` prints every contradiction found).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"

_NUM = r"[+-]?(?:\d[\d.]*(?:e[+-]?\d+)?|inf)"
# "+0.0307 [+0.0101, +0.0512] (99.7 % CI) → undecided" (answer sentences, claims)
ARROW = re.compile(
    rf"(?P<eff>×{_NUM}|[+-]{_NUM}|0)(?: \[(?P<lo>{_NUM}), (?P<hi>{_NUM})\])?"
    r"(?P<mid>[^→;|\[]*?)\s*→\s*(?P<verdict>better|worse|equivalent|undecided|above|below)"
)
# "undecided +0.069 [-0.0118, +0.15]" (the report's relative table cells)
CELL = re.compile(
    rf"(?P<verdict>better|worse|equivalent|undecided)(?: \(±[^)]*\))? "
    rf"(?P<eff>×{_NUM}|[+-]{_NUM}|0)(?: \[(?P<lo>{_NUM}), (?P<hi>{_NUM})\])?"
)
PUBLISHED = re.compile(rf"vs published {_NUM} ± (?P<tol>{_NUM})")


def interval_problem(
    verdict: str,
    ratio: bool,
    lo: float | None,
    hi: float | None,
    margin: tuple[float, float] | None = None,
) -> str | None:
    """Why the interval disagrees with the verdict, or None when it agrees (or there is none)."""
    if lo is None or hi is None:
        return None
    null = 1.0 if ratio else 0.0
    excludes = lo > null or hi < null
    if verdict in ("better", "worse") and not excludes:
        return f"{verdict} but the interval [{lo:g}, {hi:g}] contains {null:g}"
    if verdict == "undecided" and excludes:
        return f"undecided but the interval [{lo:g}, {hi:g}] excludes {null:g}"
    if margin is not None:
        inside = margin[0] <= lo and hi <= margin[1]
        if verdict == "equivalent" and not inside:
            return f"equivalent but [{lo:g}, {hi:g}] leaves the margin {margin}"
        if verdict == "undecided" and inside:
            return f"undecided but [{lo:g}, {hi:g}] is inside the margin {margin}"
    return None


def published_problem(verdict: str, lo: float, hi: float, tol: float) -> str | None:
    """A published-value row: above/below need the interval outside the ±tol band."""
    if verdict == "above" and not lo > tol:
        return f"above but [{lo:g}, {hi:g}] reaches the band ±{tol:g}"
    if verdict == "below" and not hi < -tol:
        return f"below but [{lo:g}, {hi:g}] reaches the band ±{tol:g}"
    if verdict == "undecided" and (lo > tol or hi < -tol):
        return f"undecided but [{lo:g}, {hi:g}] is outside the band ±{tol:g}"
    return None


def _float(text: str | None) -> float | None:
    return None if text is None else float(text.lstrip("×"))


def text_problems(line: str) -> list[str]:
    """Contradictions inside one line of text (an answer sentence, a claim, a table row)."""
    out = []
    for part in re.split(r"; |\|", line):
        published = PUBLISHED.search(part)
        for rx in (ARROW, CELL):
            for m in rx.finditer(part):
                lo, hi = _float(m.group("lo")), _float(m.group("hi"))
                if lo is None or hi is None:
                    continue
                if published:
                    why = published_problem(m["verdict"], lo, hi, float(published["tol"]))
                else:
                    why = interval_problem(m["verdict"], m["eff"].startswith("×"), lo, hi)
                if why:
                    out.append(f"{why}: {part.strip()[:160]}")
    return out


MARK_OK = {
    "-": {"better"},
    "+": {"worse"},
    "~": {"equivalent", "undecided"},
    "!": {"worse", "undecided"},
}


def row_problems(row: dict[str, Any], alpha: float) -> list[str]:
    """Contradictions in one ``compare --reference`` row (the comparison's JSON)."""
    v = row.get("verdict") or {}
    verdict = v.get("verdict")
    if verdict is None:
        return []
    where = f"{row.get('_variant')} {row['metric']}"
    out = []
    if verdict not in MARK_OK.get(row["mark"], set()):
        out.append(f"{where}: mark {row['mark']} but verdict {verdict}")
    p = row.get("p_value")
    if p is not None and (p < alpha) != (verdict in ("better", "worse")):
        out.append(f"{where}: p {p:.3g} (α {alpha:g}) but verdict {verdict}")
    if "exact" in str(v.get("text")):  # no interval: the exact difference is the effect
        return out
    margin = None
    if v.get("delta") is not None:
        margin = (float(v["delta"][0]), float(v["delta"][1]))
    why = interval_problem(
        verdict, v.get("kind") == "ratio", v.get("ci_low"), v.get("ci_high"), margin
    )
    if why:
        out.append(f"{where}: {why}")
    return out


def reference_of(summary: dict[str, Any]) -> str | None:
    """The reference a curated run is read against: its own, else norm=none when swept."""
    ref = (summary.get("analysis") or {}).get("reference")
    if ref:
        return ",".join(f"{k}={v}" for k, v in ref.items())
    if "none" in (summary.get("values") or {}).get("norm", []):
        return "norm=none"
    return None


def compare_problems(run_dir: Path) -> list[str]:
    """Every row of ``compare RUN --reference …`` with every recorded metric."""
    from normbench.analysis.compare import compare_runs

    summary = json.loads((run_dir / "summary.json").read_text())
    ref = reference_of(summary)
    if ref is None:
        return []
    cmp = compare_runs(run_dir, reference=ref, metrics=["all"], warn=lambda m: None)
    doc = cmp.to_json()
    out = []
    for v in doc["variants"]:
        for row in v["metrics"]:
            out += row_problems({**row, "_variant": v["name"]}, doc["alpha"])
    return out


def answer_lines(run_dir: Path) -> list[str]:
    """The answer and claims sentences as the code writes them now, and as committed."""
    from normbench.analysis.aggregate import summarize_run
    from normbench.analysis.answer import answer
    from normbench.analysis.claims import describe_claim

    summary = summarize_run(run_dir, warn=lambda m: None)
    lines = list(answer(summary))
    lines += [describe_claim(c) for c in (summary.get("analysis") or {}).get("claims") or []]
    md = run_dir / "report.md"
    if md.is_file():
        text = md.read_text(encoding="utf-8")
        lines += [ln for ln in text.splitlines() if "→" in ln or "|" in ln]
    return list(dict.fromkeys(lines))


def run_problems(run_dir: Path) -> list[str]:
    """Every contradiction of one committed run: compare rows, answer, claims, report.md."""
    out = [f"compare: {p}" for p in compare_problems(run_dir)]
    out += [f"text: {p}" for line in answer_lines(run_dir) for p in text_problems(line)]
    return out


def curated_runs() -> list[Path]:
    return sorted(p.parent for p in REPORTS.glob("*/summary.json") if p.parent.name != "runs")


def main(argv: list[str]) -> int:
    runs = [Path(a) for a in argv] or curated_runs()
    total = 0
    for run in runs:
        problems = run_problems(run)
        total += len(problems)
        for p in problems:
            print(f"{run.name}: {p}")
    claims = REPORTS / "CLAIMS.md"
    if not argv and claims.is_file():
        for line in claims.read_text(encoding="utf-8").splitlines():
            for p in text_problems(line):
                total += 1
                print(f"CLAIMS.md: {p}")
    print(f"{total} contradictions")
    return 1 if total else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
