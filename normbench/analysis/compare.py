"""Compare two runs (or every variant with a reference) metric by metric: significance, gates.

Statistics (documented in docs/ci.md; the tests live in ``analysis.stats``):

* Per variant and metric: mean and 95 % bootstrap CI over seeds (``analysis.stats.describe``),
  absolute change ``candidate − baseline`` and relative change ``÷ |baseline|``.
* Significance: **Welch's t-test**, two-sided. Not Mann-Whitney: with 3 seeds a side its
  smallest two-sided p is 0.1, so it could never fire. Timing metrics (the metric registry's
  ``timing`` trait: seconds, milliseconds, samples/s, relative cost) are tested on log values
  because timing noise is multiplicative and right-skewed (a stalled seed is far slower, never
  far faster), which also makes the test match the relative gates. With fewer than 2 values on
  a side there is no test ("no significance test (1 seed)") and the mark follows the direction
  of the change.
* **Family-wise error**: one comparison runs many tests (every matched variant × metric), so
  the p-values are Holm–Bonferroni adjusted over all of them and a change is significant when
  its *adjusted* p is below ``alpha``: the chance that an honest re-run shows any significant
  change at all stays ≤ ``alpha``. ``p_value`` is the adjusted p, ``p_raw`` the test's own.
* **Exact changes**: when every seed has the same value on each side (a deterministic metric,
  e.g. ``steps_to_target`` 300 on every seed vs 500 on every seed) there is nothing to test;
  the change is exact ("300 → 500 on every seed"), has no p and is not part of the family.
* Marks: ``+`` worse, ``-`` better, ``~`` no significant change, ``!`` the candidate lost values
  the baseline had (newly failed, diverged, or a target no longer reached), ``x`` not comparable.

Variants are matched by id (a hash of the resolved configuration), then by name: the same name
with another id means the suite itself changed, so the pair is *not comparable*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from normbench.analysis.stats import (
    EXACT_DIFFERENT,
    EXACT_SAME,
    betainc,
    holm,
    significance,
    welch,
)
from normbench.errors import EXIT_GATE, EXIT_OK, InputError, OptionError
from normbench.gates import Gate, beyond, fmt_amount, parse_gates
from normbench.metrics import HEADLINE_METRICS, is_timing
from normbench.results.store import Warn, read_json, stderr_warn
from normbench.spread import finite_number

ALPHA = 0.05
DEFAULT_METRICS = HEADLINE_METRICS
TEST_NAME = (
    "Welch's t-test (two-sided; timing metrics on log values), Holm–Bonferroni "
    "adjusted over every variant × metric test"
)
REFERENCE_TEST_NAME = (
    "the verdict's own test: Welch's t-test (two-sided; steps, times and rates on log values; "
    "a rank permutation test when no side has spread), Holm–Bonferroni adjusted over every row"
)


# --- data model -------------------------------------------------------------------------------


@dataclass
class MetricChange:
    """One metric of one matched pair: both sides' statistics, the change and its mark."""

    metric: str
    unit: str
    higher_is_better: bool
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    change: float | None
    relative: float | None
    p_value: float | None
    test: str
    significant: bool
    mark: str
    note: str = ""
    p_raw: float | None = None  # the test's own p; ``p_value`` is Holm-adjusted over the family
    # --reference only: the variant against its reference as a verdict (``analysis.verdicts``):
    # effect with its 95 % interval, and better / worse / equivalent within ±margin / undecided.
    verdict: dict[str, Any] | None = None


@dataclass
class GateResult:
    """One gate on one variant: ``fail``, ``pass`` or ``skipped``, and why."""

    gate: str
    metric: str
    variant: str
    status: str
    reason: str
    description: str = ""
    baseline: float | None = None
    candidate: float | None = None
    change: float | None = None
    relative: float | None = None
    p_value: float | None = None


@dataclass
class VariantComparison:
    """A variant of the candidate (or of the run) set against its baseline (or reference)."""

    name: str
    status: str  # matched | not_comparable | new | missing
    baseline_id: str | None
    candidate_id: str | None
    baseline_name: str | None = None
    reason: str = ""
    newly: str = ""  # what the candidate newly lost (failed / diverged seeds)
    metrics: list[MetricChange] = field(default_factory=list)
    changed: str = ""  # --match name: the configuration difference of a pair with two ids


@dataclass
class Comparison:
    """Everything ``normbench compare`` prints, renders as JSON or JUnit, and exits on."""

    mode: str  # runs | reference
    suite: str
    baseline: str
    candidate: str
    alpha: float
    stats: bool
    test: str
    metrics: list[str]
    reference: dict[str, str] | None = None
    variants: list[VariantComparison] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    gate_texts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "fail"]

    @property
    def exit_code(self) -> int:
        return EXIT_GATE if self.failed else EXIT_OK

    def by_status(self, status: str) -> list[VariantComparison]:
        return [v for v in self.variants if v.status == status]

    def verdict(self) -> str:
        """One line: what the gates said (or that there were none)."""
        if not self.gate_texts:
            n = sum(1 for v in self.variants for m in v.metrics if m.mark in "+!")
            return f"no gates; {n} metric{'s' if n != 1 else ''} worse (+ or !)"
        if not self.failed:
            checked = sum(g.status != "skipped" for g in self.gates)
            return f"all gates passed ({checked} check{'s' if checked != 1 else ''})"
        first = self.failed[0]
        more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
        return (
            f"{len(self.failed)} gate check{'s' if len(self.failed) != 1 else ''} failed: "
            f"{first.gate} on {first.variant} ({first.reason}){more}"
        )

    def counts(self) -> dict[str, int]:
        """Rows per verdict (``--reference``) or per mark (two runs), in a fixed order."""
        rows = [m for v in self.variants for m in v.metrics]
        if self.mode == "reference":
            found = [(m.verdict or {}).get("verdict") or "undecided" for m in rows]
            return {k: found.count(k) for k in ("better", "worse", "equivalent", "undecided")}
        names = {"-": "better", "+": "worse", "~": "no significant change", "!": "lost values"}
        out = {name: sum(m.mark == mark for m in rows) for mark, name in names.items()}
        out["not comparable"] = len(self.by_status("not_comparable"))
        return out

    def summary_line(self) -> str:
        """The one line above everything: how many rows went which way, and the gates."""
        n = sum(len(v.metrics) for v in self.variants)
        counts = ", ".join(
            f"{k} {name}"
            for name, k in self.counts().items()
            if k or name in ("better", "worse", "equivalent", "undecided")
        )
        if not self.gate_texts:
            gates = "no gates"
        else:
            checked = sum(g.status != "skipped" for g in self.gates)
            gates = f"gates fired: {len(self.failed)} of {checked} checks"
        return f"{n} row{'s' if n != 1 else ''}: {counts}; {gates}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            summary=self.summary_line(),
            counts=self.counts(),
            verdict=self.verdict(),
            exit_code=self.exit_code,
            new=[v.name for v in self.by_status("new")],
            missing=[v.name for v in self.by_status("missing")],
            not_comparable=[v.name for v in self.by_status("not_comparable")],
        )
        return out


# --- loading ----------------------------------------------------------------------------------


def _check_version(doc: dict[str, Any], path: Path, what: str, supported: int) -> None:
    version = doc.get("schema_version", 1)
    if isinstance(version, int) and version > supported:
        raise InputError(
            f"{path} has {what} schema_version {version}, newer than this normbench "
            f"understands ({supported}): upgrade normbench"
        )


def _summary_file(path: Path) -> dict[str, Any]:
    """A ``summary.json`` given directly (e.g. a committed baseline without its results)."""
    from normbench.analysis.aggregate import SUMMARY_SCHEMA_VERSION

    doc = read_json(path, "summary.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list) or "suite" not in doc:
        raise InputError(
            f"{path} is not a normbench summary.json (give a run directory or its summary.json)"
        )
    _check_version(doc, path, "summary", SUMMARY_SCHEMA_VERSION)
    return doc


def _strict_result(path: Path, warn: Warn | None) -> dict[str, Any] | None:
    """One result file for a comparison: invalid or incomplete is an error naming it; a copy
    under another name (``X-s0 (1).json``) is not a seed, only a warning."""
    from normbench.results.store import MisnamedResult, load_result, missing_metrics

    try:
        record = load_result(path)
    except MisnamedResult as exc:
        if warn is not None:
            warn(str(exc))
        return None
    lacking = missing_metrics(record)
    if lacking:
        raise InputError(
            f"{path} is not a complete result file (status {record['status']!r} but no "
            f"{', '.join(lacking)}): rerun that task (normbench run SUITE --resume RUN_DIR) "
            "or remove the file"
        )
    return record


def load_summary(
    path: str | Path, *, reference: str | None = None, warn: Warn | None = None
) -> dict[str, Any]:
    """Summarise a run directory from its result files (or read a summary.json file).

    Result files are read strictly: a corrupt or too-new file is an error, not a warning,
    because silently skipping it would make its variant look *missing* from a gated run.
    """
    from normbench.analysis.aggregate import RunData, summarize
    from normbench.results.store import SCHEMA_VERSION, open_run_dir

    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return _summary_file(path)
    run = open_run_dir(path)
    manifest = run.read_manifest()
    _check_version(manifest, run.path / "manifest.json", "manifest", SCHEMA_VERSION)
    resolved = run.read_resolved()
    records = [r for p in run.result_files() if (r := _strict_result(p, warn)) is not None]
    if not records:
        if (run.path / "summary.json").is_file():
            return _summary_file(run.path / "summary.json")
        raise InputError(
            f"{run.path} has no result files (the run did not finish a single variant)"
        )
    status = manifest.get("status")
    if status not in ("complete", "failed") and warn is not None:
        warn(f"{run.path} is a run that did not finish (status: {status})")
    return summarize(RunData(run.path, manifest, resolved, records), reference=reference)


# --- matching ---------------------------------------------------------------------------------


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_diff(a: dict[str, Any], b: dict[str, Any], limit: int = 3) -> str:
    """``training.steps 40 → 20; …``: why two same-named variants have different ids.

    Only keys the variant id hashes are listed (threads, kernel mode and how seeds execute
    are not part of it, so they never explain a changed id).
    """
    from normbench.spec import id_config

    fa, fb = _flatten(id_config(a)), _flatten(id_config(b))
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, "∅") != fb.get(k, "∅")]
    if not keys:
        return "resolved configuration differs"
    parts = [f"{k} {fa.get(k, '∅')} → {fb.get(k, '∅')}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "; ".join(parts) + more


MATCHES = ("id", "name")


def match_variants(
    base: dict[str, Any], cand: dict[str, Any], by: str = "id"
) -> list[tuple[str, dict | None, dict | None]]:
    """(status, baseline variant, candidate variant) in candidate order, then missing ones.

    Ids hash the resolved configuration, so the same id is the same work; a name found on
    both sides under different ids means the configuration changed: not comparable, unless
    ``by="name"`` (``--match name``), which pairs such variants deliberately.
    """
    b_by_id = {v["variant_id"]: v for v in base["variants"]}
    b_by_name = {v["variant_name"]: v for v in base["variants"]}
    c_ids = {v["variant_id"] for v in cand["variants"]}
    used: set[str] = set()
    out: list[tuple[str, dict | None, dict | None]] = []
    for c in cand["variants"]:
        b = b_by_id.get(c["variant_id"])
        if b is not None:
            out.append(("matched", b, c))
        elif (
            (b := b_by_name.get(c["variant_name"])) is not None
            and b["variant_id"] not in used
            and b["variant_id"] not in c_ids
        ):
            out.append(("matched" if by == "name" else "not_comparable", b, c))
        else:
            out.append(("new", None, c))
            continue
        used.add(b["variant_id"])
    out += [("missing", b, None) for b in base["variants"] if b["variant_id"] not in used]
    return out


# --- per metric -------------------------------------------------------------------------------


def _bad_seeds(v: dict[str, Any]) -> int:
    c = v.get("counts") or {}
    return int(c.get("diverged", 0)) + int(c.get("failed", 0))


def newly_failing(b: dict[str, Any], c: dict[str, Any]) -> str:
    """What the candidate variant newly lost: more failed or diverged seeds than the baseline."""
    if _bad_seeds(c) <= _bad_seeds(b):
        return ""
    cc, bc = c.get("counts") or {}, b.get("counts") or {}
    parts = [
        f"{k} on {cc.get(k, 0)} of {len(c.get('seeds') or [])} seeds (baseline {bc.get(k, 0)})"
        for k in ("failed", "diverged")
        if cc.get(k, 0) > bc.get(k, 0)
    ]
    return "; ".join(parts)


def _values(stats: dict[str, Any]) -> list[float]:
    return [x for x in (finite_number(v) for v in stats.get("values") or []) if x is not None]


def _share(stats: dict[str, Any]) -> float:
    """Fraction of seeds with a value (a target not reached, a diverged seed: no value)."""
    total = len(stats.get("values") or [])
    return len(_values(stats)) / total if total else 0.0


def metric_change(
    metric: str,
    info: dict[str, Any],
    base: dict[str, Any],
    cand: dict[str, Any],
    *,
    newly: str = "",
    alpha: float = ALPHA,
    use_stats: bool = True,
) -> MetricChange:
    """Compare one metric's per-seed values (``describe`` dicts) and choose the mark."""
    higher = bool(info.get("higher_is_better", False))
    unit = str(info.get("unit", ""))
    a, b = _values(base), _values(cand)
    mb, mc = finite_number(base.get("mean")), finite_number(cand.get("mean"))
    change = mc - mb if mb is not None and mc is not None else None
    if change is None:
        relative = None
    elif mb:
        relative = change / abs(mb)
    else:
        relative = 0.0 if change == 0 else None
    p, test = None, "no values"
    if a and b:
        p, test = (
            significance(a, b, is_timing(metric)) if use_stats else (None, "no test (--no-stats)")
        )
    ch = MetricChange(
        metric, unit, higher, base, cand, change, relative, p, test, False, "~", p_raw=p
    )
    if test in (EXACT_SAME, EXACT_DIFFERENT):
        ch.note = (
            f"{_num(mb)} → {_num(mc)} on every seed"
            if test == EXACT_DIFFERENT
            else f"{_num(mb)} on every seed"
        )
    if newly:
        ch.note = f"newly {newly}"
    elif a and _share(cand) < _share(base):
        ch.note = (
            f"value on {len(b)} of {len(cand.get('values') or [])} seeds "
            f"(baseline {len(a)} of {len(base.get('values') or [])})"
        )
    decide(ch, alpha, lost=bool(newly) or bool(a and _share(cand) < _share(base)))
    return ch


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def decide(ch: MetricChange, alpha: float, lost: bool | None = None) -> None:
    """Set ``significant`` and the mark from the change and its (adjusted) p."""
    if lost is None:
        lost = ch.mark == "!"
    worse = ch.change is not None and (ch.change < 0 if ch.higher_is_better else ch.change > 0)
    better = ch.change is not None and ch.change != 0 and not worse
    if ch.test == EXACT_SAME:
        significant = False
    elif ch.p_value is not None:
        significant = ch.p_value < alpha
    else:  # an exact difference, one seed, or --no-stats: the change itself decides
        significant = ch.change is not None and ch.change != 0
    ch.significant = bool(significant and ch.change)
    if lost:
        ch.mark = "!"
    elif ch.significant and worse:
        ch.mark = "+"
    elif ch.significant and better:
        ch.mark = "-"
    else:
        ch.mark = "~"


def control_family(variants: list[VariantComparison], alpha: float) -> int:
    """Holm–Bonferroni over every test of one comparison; returns the family size.

    Replaces each ``p_value`` by its adjusted value and re-decides the marks, so that an
    honest re-run (every null hypothesis true) fires anywhere with probability ≤ ``alpha``.
    """
    tested = [m for v in variants for m in v.metrics if m.p_raw is not None]
    for ch, p in zip(tested, holm([m.p_raw for m in tested if m.p_raw is not None]), strict=True):
        ch.p_value = p
        decide(ch, alpha)
    return len(tested)


def evaluate_gate(gate: Gate, variant: str, ch: MetricChange | None) -> GateResult:
    """Whether ``gate`` fires on one metric change (module docstring of ``gates``)."""
    res = GateResult(gate.text, gate.metric, variant, "pass", "", gate.describe())
    if ch is None:
        res.status, res.reason = "skipped", f"{gate.metric} has no values for this variant"
        return res
    res.baseline, res.candidate = ch.baseline.get("mean"), ch.candidate.get("mean")
    res.change, res.relative, res.p_value = ch.change, ch.relative, ch.p_value
    amount = fmt_amount(gate, ch.change, ch.relative)
    p = f"p={ch.p_value:.3g}" if ch.p_value is not None else ch.note or ch.test
    if ch.mark == "!":
        res.status, res.reason = "fail", ch.note
    elif ch.change is None:
        res.status, res.reason = "skipped", f"{gate.metric} has no values in one of the runs"
    elif gate.relative and ch.relative is None:
        res.status, res.reason = "skipped", "baseline mean is 0: use an absolute threshold"
    elif not beyond(gate, ch.change, ch.relative):
        res.reason = f"{amount}, within the threshold"
    elif ch.mark != "+":
        res.reason = f"{amount} but not significant ({p})"
    else:
        res.status, res.reason = "fail", f"{amount}, {p}"
    return res


# --- building comparisons ---------------------------------------------------------------------


def _metric_names(
    summaries: list[dict[str, Any]], wanted: list[str] | None, gates: list[Gate]
) -> list[str]:
    """Metrics to compare: those asked for (``all`` = every recorded one), else the headline
    set; gated metrics always. A gated or asked-for metric that neither run recorded is an error."""
    from normbench.analysis.query import available_metrics

    have = [m for s in summaries for m in available_metrics(s)]
    have = list(dict.fromkeys(have))
    if wanted and "all" in wanted:
        names = have
    elif wanted:
        names = list(dict.fromkeys(wanted))
    else:
        names = [m for m in DEFAULT_METRICS if m in have]
    names += [g.metric for g in gates if g.metric not in names]
    for m in names:
        if m not in have:
            from normbench.errors import unknown

            if not _registered(m):
                raise InputError(unknown("metric", m, sorted(have)))
            raise InputError(_no_values(summaries, m))
    if not names and _nothing_finished(summaries):
        raise InputError(_no_values(summaries, None))
    return names


def _nothing_finished(summaries: list[dict[str, Any]]) -> bool:
    return bool(summaries) and all(not (s.get("counts") or {}).get("ok") for s in summaries)


def _no_values(summaries: list[dict[str, Any]], metric: str | None) -> str:
    """Why a known metric (None: any metric) has no value: no seed finished (all diverged or
    failed), or the runs did not record it."""
    if _nothing_finished(summaries):
        ends = [
            ", ".join(f"{c[k]} {k}" for k in ("diverged", "failed") if c.get(k)) or "no result"
            for c in (s.get("counts") or {} for s in summaries)
        ]
        which = " and ".join(
            f"{name} ({end})"
            for name, end in zip(
                ("baseline", "candidate") if len(ends) > 1 else ("the run",), ends, strict=False
            )
        )
        what = f"metric '{metric}' has no value to compare" if metric else "nothing to compare"
        return (
            f"{what}: no seed of any variant finished training in {which}; every seed "
            "diverged or failed, so there is nothing to gate"
        )
    return f"metric '{metric}' was not recorded in these runs"


def _registered(metric: str) -> bool:
    from normbench.gates import metric_direction

    try:
        metric_direction(metric)
    except OptionError:
        return False
    return True


def _info(summaries: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    for s in summaries:
        info = (s.get("metric_info") or {}).get(metric)
        if info:
            return info
    return {}


def _pair(
    status: str,
    b: dict[str, Any] | None,
    c: dict[str, Any] | None,
    names: list[str],
    summaries: list[dict[str, Any]],
    alpha: float,
    use_stats: bool,
    across_runs: bool = True,
) -> VariantComparison:
    """One row group: a matched pair gets a ``MetricChange`` per metric with values.

    ``across_runs``: a pair with two ids is one variant whose configuration changed (``--match
    name``), so the change is described; a variant and its reference differ by design.
    """
    v = c if c is not None else b
    assert v is not None
    out = VariantComparison(
        v["variant_name"],
        status,
        b["variant_id"] if b else None,
        c["variant_id"] if c else None,
        b["variant_name"] if b else None,
    )
    if status == "not_comparable":
        assert b is not None and c is not None
        out.reason = config_diff(b.get("config") or {}, c.get("config") or {})
    elif (
        across_runs
        and status == "matched"
        and b is not None
        and c is not None
        and b["variant_id"] != c["variant_id"]
    ):
        out.changed = config_diff(b.get("config") or {}, c.get("config") or {})
    if status != "matched":
        return out
    assert b is not None and c is not None
    out.newly = newly_failing(b, c)
    for m in names:
        sb, sc = b["metrics"].get(m), c["metrics"].get(m)
        if not sb or not sc:  # one side did not record it: nothing to compare, not a regression
            continue
        empty = {"mean": None, "n": 0, "values": []}
        out.metrics.append(
            metric_change(
                m,
                _info(summaries, m),
                sb or empty,
                sc or empty,
                newly=out.newly,
                alpha=alpha,
                use_stats=use_stats,
            )
        )
    return out


def _gate_results(gates: list[Gate], variants: list[VariantComparison]) -> list[GateResult]:
    """Every gate × variant; variants that could not be compared are listed as skipped."""
    results = []
    for v in variants:
        for g in gates:
            if v.status == "matched":
                ch = next((m for m in v.metrics if m.metric == g.metric), None)
                results.append(evaluate_gate(g, v.name, ch))
            else:
                why = {
                    "not_comparable": f"not comparable: {v.reason}",
                    "new": "new variant: no baseline",
                    "missing": "missing from the candidate",
                }[v.status]
                results.append(GateResult(g.text, g.metric, v.name, "skipped", why, g.describe()))
    return results


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise InputError(f"--alpha must be between 0 and 1 (exclusive), got {alpha:g}")


def _parse_cli_gates(texts: list[str], suite_gates: list[str]) -> list[Gate]:
    """The suite's ``gates:`` then ``--fail-on``; errors name the option that gave them."""
    try:
        parse_gates(suite_gates)
    except OptionError as exc:
        raise InputError(f"gates[{exc.path[0]}] of the suite: {exc.message}") from None
    try:
        parse_gates(texts)
    except OptionError as exc:
        raise InputError(f"--fail-on: {exc.message}") from None
    return parse_gates([*suite_gates, *texts])


def suite_gates(summary: dict[str, Any]) -> list[str]:
    """``gates:`` of the suite as stored in resolved.json (and so in the summary)."""
    gates = (summary.get("suite") or {}).get("gates") or []
    return [str(g) for g in gates] if isinstance(gates, list) else []


ENV_KEYS = ("cpu", "device_name", "torch", "threads", "cuda")


def environment_warning(base: dict[str, Any], cand: dict[str, Any]) -> str | None:
    """Timing is only comparable on the same machine and software: say when it was not."""
    eb = ((base.get("manifest") or {}).get("environment")) or {}
    ec = ((cand.get("manifest") or {}).get("environment")) or {}
    diff = [
        f"{k} {eb.get(k)} vs {ec.get(k)}"
        for k in ENV_KEYS
        if k in eb and k in ec and eb[k] != ec[k]
    ]
    if not diff:
        return None
    return (
        "the runs were measured on different machines or software ("
        + "; ".join(diff)
        + "): timing metrics may differ for reasons other than the code"
    )


def arith_warning(base: dict[str, Any], cand: dict[str, Any], names: list[str]) -> str | None:
    """``not bit-comparable: threads 1 vs 2`` when the runs' arithmetic was selected differently.

    Variants still pair by id (threads and kernels are not part of it); for accuracy and loss
    the sentence explains that differences in the last digits are then expected.
    """
    from normbench import arith

    sentence = arith.not_bit_comparable(
        arith.signature(base.get("manifest") or {}), arith.signature(cand.get("manifest") or {})
    )
    if sentence is None:
        return None
    if not all(is_timing(m) for m in names):
        return f"{sentence}: {arith.DETERMINISTIC_NOTE}"
    return sentence


def check_same_suite(base: dict[str, Any], cand: dict[str, Any], bpath: Path, cpath: Path) -> None:
    """Runs of different suites have nothing in common to compare: an input error."""
    nb, nc = (base.get("suite") or {}).get("name"), (cand.get("suite") or {}).get("name")
    if nb != nc:
        raise InputError(
            f"{bpath} is a run of suite '{nb}' but {cpath} is a run of suite '{nc}': "
            "compare two runs of the same suite (or one run with --reference)"
        )


def compare_summaries(
    base: dict[str, Any],
    cand: dict[str, Any],
    *,
    baseline: str = "baseline",
    candidate: str = "candidate",
    gates: list[str] | None = None,
    metrics: list[str] | None = None,
    alpha: float = ALPHA,
    stats: bool = True,
    use_suite_gates: bool = True,
    match: str = "id",
) -> Comparison:
    """Compare two summaries (see the module docstring); the candidate suite's gates apply too.

    ``match="name"`` pairs variants by name across a deliberate configuration change (each
    pair shows what changed) instead of calling them not comparable.
    """
    _check_alpha(alpha)
    if match not in MATCHES:
        raise InputError(f"--match must be id or name, got '{match}'")
    check_same_suite(base, cand, Path(baseline), Path(candidate))
    parsed = _parse_cli_gates(list(gates or []), suite_gates(cand) if use_suite_gates else [])
    names = _metric_names([base, cand], metrics, parsed)
    cmp = Comparison(
        "runs",
        str((cand.get("suite") or {}).get("name")),
        str(baseline),
        str(candidate),
        alpha,
        stats,
        TEST_NAME,
        names,
        gate_texts=[g.text for g in parsed],
    )
    for status, b, c in match_variants(base, cand, match):
        cmp.variants.append(_pair(status, b, c, names, [base, cand], alpha, stats))
    if not cmp.by_status("matched"):
        nc = cmp.by_status("not_comparable")
        why = f": the suite changed ({nc[0].reason})" if nc else ": no variant is in both runs"
        raise InputError(
            f"no variant of {candidate} is comparable with {baseline}{why}; "
            "a regression gate needs the same suite on both sides (regenerate the baseline), "
            "or pair the variants by name across the change with --match name"
        )
    warning = environment_warning(base, cand)
    if warning and any(is_timing(m) for m in names):
        cmp.warnings.append(warning)
    arith_note = arith_warning(base, cand, names)
    if arith_note:
        cmp.warnings.append(arith_note)
    for v in cmp.by_status("not_comparable"):
        cmp.warnings.append(f"{v.name} is not comparable: {v.reason}")
    changed = [v for v in cmp.variants if v.changed]
    if changed:
        cmp.warnings.append(
            f"--match name paired {len(changed)} variant{'s' if len(changed) != 1 else ''} "
            f"whose configuration changed ({changed[0].changed}"
            f"{'; …' if len(changed) > 1 else ''}): the comparison measures that change"
        )
    if (
        any(m.test.startswith("no significance test") for v in cmp.variants for m in v.metrics)
        and stats
    ):
        cmp.warnings.append(
            "some metrics have a single seed on a side: no significance test, "
            "so gates on them use the threshold alone"
        )
    control_family(cmp.variants, alpha)
    cmp.gates = _gate_results(parsed, cmp.variants)
    _check_gates_checked(cmp, base, cand, baseline, candidate)
    return cmp


def _records_metric(summary: dict[str, Any], metric: str) -> bool:
    """Whether any variant of the run recorded ``metric`` at all (null values included)."""
    return any(metric in (v.get("metrics") or {}) for v in summary.get("variants") or [])


def _all_bad(summary: dict[str, Any]) -> bool:
    """Every seed of every variant diverged or failed."""
    variants = summary.get("variants") or []
    return bool(variants) and all(not (v.get("counts") or {}).get("ok") for v in variants)


def _check_gates_checked(
    cmp: Comparison, base: dict[str, Any], cand: dict[str, Any], baseline: str, candidate: str
) -> None:
    """A gate that checked nothing is not a pass: say why (exit 2), never "0 checks passed"."""
    for text in dict.fromkeys(g.gate for g in cmp.gates):
        results = [g for g in cmp.gates if g.gate == text]
        if any(g.status != "skipped" for g in results):
            continue
        metric = results[0].metric
        if _all_bad(base) and _all_bad(cand):
            raise InputError(
                f"gate '{text}' checked nothing: every seed of both runs diverged or "
                f"failed, so neither has a value of {metric}"
            )
        for summary, name in ((base, baseline), (cand, candidate)):
            if not _records_metric(summary, metric):
                raise InputError(
                    f"gate '{text}' checked nothing: {name} records no {metric} "
                    "(its result files lack the metric)"
                )
        raise InputError(
            f"gate '{text}' checked nothing: {metric} has no values to compare "
            f"({results[0].reason})"
        )


def compare_runs(
    baseline: str | Path,
    candidate: str | Path | None = None,
    *,
    reference: str | None = None,
    gates: list[str] | None = None,
    metrics: list[str] | None = None,
    alpha: float = ALPHA,
    stats: bool = True,
    warn: Warn | None = None,
    match: str = "id",
) -> Comparison:
    """``normbench compare``: BASELINE vs CANDIDATE, or every variant of BASELINE vs one."""
    warn = warn or stderr_warn
    _check_alpha(alpha)
    if candidate is not None and reference is not None:
        raise InputError(
            "give either CANDIDATE or --reference, not both (--reference compares "
            "the variants of one run)"
        )
    if candidate is None:
        if reference is None:
            raise InputError(
                "compare needs a CANDIDATE run, or --reference KEY=VALUE to compare "
                "the variants of one run, e.g. normbench compare RUN --reference norm=none"
            )
        return compare_reference(
            baseline, reference, gates=gates, metrics=metrics, alpha=alpha, stats=stats, warn=warn
        )
    base = load_summary(baseline, warn=warn)
    cand = load_summary(candidate, warn=warn)
    return compare_summaries(
        base,
        cand,
        baseline=str(baseline),
        candidate=str(candidate),
        gates=gates,
        metrics=metrics,
        alpha=alpha,
        stats=stats,
        match=match,
    )


def compare_reference(
    run: str | Path,
    reference: str,
    *,
    gates: list[str] | None = None,
    metrics: list[str] | None = None,
    alpha: float = ALPHA,
    stats: bool = True,
    warn: Warn | None = None,
) -> Comparison:
    """Every variant of one run against its matched reference variant (``analysis.relative``)."""
    summary = load_summary(run, reference=reference, warn=warn)
    ref = (summary.get("analysis") or {}).get("reference")
    if not ref:  # a summary.json given directly was summarised without this reference
        from normbench.analysis.relative import parse_reference

        ref = parse_reference(reference, summary)
    from normbench.analysis.relative import relative_rows

    parsed = _parse_cli_gates(list(gates or []), [])
    names = _metric_names([summary], metrics, parsed)
    by_id = {v["variant_id"]: v for v in summary["variants"]}
    cmp = Comparison(
        "reference",
        str((summary.get("suite") or {}).get("name")),
        str(run),
        str(run),
        alpha,
        stats,
        REFERENCE_TEST_NAME,
        names,
        reference=ref,
        gate_texts=[g.text for g in parsed],
    )
    for row in relative_rows(summary, ref):
        b, c = by_id[row["reference_id"]], by_id[row["variant_id"]]
        vc = _pair("matched", b, c, names, [summary], alpha, stats, across_runs=False)
        vc.baseline_name = row["reference_name"]
        if row["relaxed"]:
            vc.reason = "reference relaxed on " + ", ".join(row["relaxed"])
        cmp.variants.append(vc)
    if not cmp.variants:
        raise InputError(f"every variant of {run} is a reference variant: nothing to compare")
    control_family(cmp.variants, alpha)
    _reference_verdicts(cmp.variants, by_id, alpha)
    cmp.gates = _gate_results(parsed, cmp.variants)
    return cmp


def _reference_verdicts(
    variants: list[VariantComparison], by_id: dict[str, dict[str, Any]], alpha: float
) -> None:
    """Each metric change of ``--reference`` as a three-way verdict, all in one Holm family.

    The same contrast the report's relative table and the claims use: a difference (a ratio of
    geometric means for steps, times and rates) with its Welch interval, better or worse when
    the direction test rejects, equivalent when TOST puts it inside the metric's default margin.
    """
    from normbench.analysis.relative import reference_contrast
    from normbench.analysis.verdicts import decide, describe_effect

    family: list[tuple[MetricChange, dict[str, Any]]] = []
    for vc in variants:
        if vc.status != "matched":
            continue
        cand, ref = by_id[str(vc.candidate_id)], by_id[str(vc.baseline_id)]
        family += [(ch, reference_contrast(cand, ref, ch.metric)) for ch in vc.metrics]
    decide([c for _, c in family], alpha)
    for ch, c in family:
        ch.verdict = {
            key: c.get(key)
            for key in (
                "verdict",
                "effect",
                "kind",
                "ci_low",
                "ci_high",
                "ci_level",
                "margin",
                "delta",
                "exact",
                "p_dir",
                "p_dir_adj",
            )
        }
        ch.verdict["text"] = describe_effect(c)
        follow_verdict(ch, c)


VERDICT_MARKS = {"better": "-", "worse": "+"}


def follow_verdict(ch: MetricChange, c: dict[str, Any]) -> None:
    """A ``--reference`` row's p and mark are its verdict's: one test decides the row.

    The p shown is the verdict's Holm-adjusted direction p and the mark its verdict's
    (``-`` better, ``+`` worse, ``~`` otherwise); ``!`` (values lost) stays unless the
    verdict is better or equivalent, which it would contradict.
    """
    ch.p_raw, ch.p_value = c.get("p_dir"), c.get("p_dir_adj")
    if c.get("p_dir") is not None:
        ch.test = "rank permutation (exact)" if c.get("exact") else str(c.get("method"))
    ch.significant = c["verdict"] in VERDICT_MARKS
    lost = ch.mark == "!" and c["verdict"] in ("worse", "undecided")
    ch.mark = "!" if lost else VERDICT_MARKS.get(c["verdict"], "~")


# --- normbench run --baseline ------------------------------------------------------------------


@dataclass
class BaselineGate:
    """A baseline loaded and gates checked *before* a run, so a typo costs no training time."""

    path: Path
    summary: dict[str, Any]
    gates: list[str]


def prepare_baseline(
    baseline: str | Path | None,
    gates: list[str] | None,
    suite_name: str,
    suite_gate_texts: list[str],
    warn: Warn | None = None,
) -> BaselineGate | None:
    """Validate ``run --baseline/--fail-on`` up front; ``None`` when there is no baseline."""
    if baseline is None:
        if gates:
            raise InputError(
                "--fail-on needs --baseline RUN_DIR to compare with, e.g. "
                "--baseline reports/baselines/ci-smoke --fail-on final_test_acc:-1%"
            )
        return None
    _parse_cli_gates(list(gates or []), suite_gate_texts)  # the flags' grammar before any I/O
    summary = load_summary(baseline, warn=warn)
    name = (summary.get("suite") or {}).get("name")
    if name != suite_name:
        raise InputError(f"--baseline {baseline} is a run of suite '{name}', not '{suite_name}'")
    return BaselineGate(Path(baseline), summary, list(gates or []))


def gate_run(prep: BaselineGate, run_dir: str | Path, warn: Warn | None = None) -> Comparison:
    """Compare a finished run with the prepared baseline (the suite's gates apply too)."""
    cand = load_summary(run_dir, warn=warn)
    return compare_summaries(
        prep.summary, cand, baseline=str(prep.path), candidate=str(run_dir), gates=prep.gates
    )


__all__ = [
    "ALPHA",
    "BaselineGate",
    "Comparison",
    "GateResult",
    "MetricChange",
    "VariantComparison",
    "betainc",
    "compare_reference",
    "compare_runs",
    "compare_summaries",
    "control_family",
    "evaluate_gate",
    "gate_run",
    "holm",
    "load_summary",
    "match_variants",
    "metric_change",
    "prepare_baseline",
    "significance",
    "welch",
]
