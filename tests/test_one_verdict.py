"""One verdict per question: intervals, marks and p beside a verdict agree with it, everywhere.

Also the sentences, tables and outputs around them: the cost sentence's reference, compare's
summary line, split tables, ``--match name``, outputs on exit 2, committed reports left alone,
``load_run("latest")``, readable kernels, the "(noisy)" note, ``groups: auto``.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import run_cli
from verdict_check import curated_runs, interval_problem, run_problems, text_problems

import normbench
from normbench.analysis.aggregate import NOISY_NOTE, summarize_run
from normbench.analysis.answer import cost_sentence
from normbench.analysis.compare import compare_summaries, load_summary
from normbench.analysis.stats import holm_adjust, holm_thresholds
from normbench.analysis.verdicts import contrast, decide, describe_effect
from normbench.errors import InputError
from normbench.report.document import env_text
from normbench.report.width import fit_table

ROOT = Path(__file__).resolve().parent.parent
RUNS = curated_runs()


# --- the contradiction scan of the committed curated runs -------------------------------------


def test_the_scan_sees_every_curated_run() -> None:
    names = {r.name for r in RUNS}
    assert {"quickstart", "placement", "ioffe2015-mlp", "lr-multipliers"} <= names
    assert len(RUNS) >= 12


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_no_mark_p_or_interval_contradicts_its_verdict(run: Path) -> None:
    # Every row of `compare RUN --reference norm=none` (every recorded metric), every answer
    # sentence and claim as the code writes them now, and the committed report.md.
    assert run_problems(run) == []


def test_committed_claims_table_has_no_contradiction() -> None:
    lines = (ROOT / "reports" / "CLAIMS.md").read_text(encoding="utf-8").splitlines()
    assert [p for line in lines for p in text_problems(line)] == []


def test_the_scan_catches_the_old_contradictions() -> None:
    # An old answer sentence (interval excluding 0, undecided) and an old relative-table cell.
    old = "batch vs no norm on final_test_acc: +0.0307 [+0.0101, +0.0512] → undecided."
    assert text_problems(old)
    assert text_problems("undecided -0.443 [-0.73, -0.156]")
    assert not text_problems("+0.0307 [-0.0021, +0.0635] (99.7 % CI) → undecided.")
    assert interval_problem("better", True, 0.5, 1.2) is not None
    assert interval_problem("equivalent", False, -0.02, 0.005, (-0.01, 0.01)) is not None


# --- the statistics ----------------------------------------------------------------------------


def test_holm_thresholds_reject_exactly_what_holm_rejects() -> None:
    rng = random.Random(7)
    for _ in range(300):
        m = rng.randint(1, 12)
        ps: list[float | None] = [
            rng.random() ** 3 if rng.random() > 0.1 else None for _ in range(m)
        ]
        held, adj = holm_thresholds(ps, 0.05), holm_adjust(ps)
        for p, h, a in zip(ps, held, adj, strict=True):
            if p is None:
                assert h is None and a is None
                continue
            assert (p <= h) == (a <= 0.05)  # type: ignore[operator]


def _family(seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(8):
        shift = rng.choice([0.0, 0.002, 0.03, 0.1])
        a = [0.7 + shift + rng.gauss(0, 0.01) for _ in range(rng.randint(2, 6))]
        b = [0.7 + rng.gauss(0, 0.01) for _ in range(rng.randint(2, 6))]
        if i % 3 == 0:  # a ratio metric (steps): log scale
            a, b = [100 * x for x in a], [100 * x for x in b]
        out.append(
            contrast(a, b, higher=True, log=i % 3 == 0, margin={"kind": "abs", "value": 0.01})
            if i % 3
            else contrast(a, b, higher=False, log=True, margin={"kind": "rel", "value": 0.05})
        )
    return out


@pytest.mark.parametrize("seed", range(40))
def test_decided_intervals_agree_with_verdicts(seed: int) -> None:
    family = _family(seed)
    decide(family, 0.05)
    for c in family:
        if c["ci_low"] is None or c.get("exact"):
            continue
        ratio = c["kind"] == "ratio"
        margin = (c["delta"][0], c["delta"][1])
        assert interval_problem(c["verdict"], ratio, c["ci_low"], c["ci_high"], margin) is None
        assert 0.95 <= c["ci_level"] < 1
        assert f"{c['ci_level'] * 100:.3g}"[:2] in describe_effect(c)


def test_exact_undecided_says_why() -> None:
    c = contrast(
        [400.0] * 3, [100.0] * 3, higher=False, log=True, margin={"kind": "rel", "value": 0.05}
    )
    decide([c, *_family(1)], 0.05)
    assert c["verdict"] == "undecided"
    assert "rank test p 0.1" in describe_effect(c) and "too few seeds" in describe_effect(c)


def test_reference_rows_take_the_verdicts_mark_and_p() -> None:
    doc = json.loads(
        run_cli(
            "compare",
            ROOT / "reports/ioffe2015-mlp",
            "--reference",
            "norm=none",
            "--format",
            "json",
        ).stdout
    )
    rows = [m for v in doc["variants"] for m in v["metrics"]]
    assert rows
    for m in rows:
        assert m["p_value"] == m["verdict"]["p_dir_adj"]
        assert {"better": "-", "worse": "+"}.get(m["verdict"]["verdict"], "~") == m["mark"]


# --- sentences -----------------------------------------------------------------------------------


def test_cost_sentence_names_its_reference() -> None:
    # placement has no no-norm variant: its figures are against the timing reference, named.
    text = cost_sentence(summarize_run(ROOT / "reports/placement", warn=lambda m: None))
    assert text is not None and "relative to no norm" not in text
    assert "timing reference norm=batch,activation=relu,placement=pre,lr_mult=1" in text


def test_cost_sentence_names_variants_where_the_norm_is_not_swept() -> None:
    # qknorm2023 sweeps qk_norm and lr, not the norm: each variant is named, never "?".
    summary = summarize_run(ROOT / "reports/qknorm2023", warn=lambda m: None)
    text = cost_sentence(summary)
    assert text is not None and "?" not in text
    rel = {v["variant_name"]: v["metrics"]["rel_ms_per_step"]["mean"] for v in summary["variants"]}
    assert f"model.qk_norm=true,lr=0.1 ×{rel['model.qk_norm=true,lr=0.1']:.2f}" in text


def test_cost_sentence_divides_by_no_norm_at_the_same_settings() -> None:
    summary = summarize_run(ROOT / "reports/resnet-norms", warn=lambda m: None)
    text = cost_sentence(summary)
    assert text is not None and text.startswith(
        "Step time relative to no norm at the same settings"
    )
    rel = {v["variant_name"]: v["metrics"]["rel_ms_per_step"]["mean"] for v in summary["variants"]}
    # keep against none at each batch size, not against the first variant (keep itself)
    ratios = sorted(
        rel[f"norm=keep,batch_size={b}"] / rel[f"norm=none,batch_size={b}"] for b in (4, 32)
    )
    assert f"keep ×{(ratios[0] + ratios[1]) / 2:.2f}" in text


# --- compare -------------------------------------------------------------------------------------


def test_compare_opens_with_its_summary_line() -> None:
    out = run_cli("compare", ROOT / "reports/quickstart", "--reference", "norm=none").stdout
    first = out.splitlines()[0]
    assert first.startswith("64 rows: ") and "undecided" in first and first.endswith("no gates")
    assert "config change" not in out  # a variant and its reference differ by design


def test_split_table_keeps_a_group_in_one_part() -> None:
    cols = ["key", "a1", "a2", "b1", "b2", "c1", "c2"]
    rows = [["k", *(["x" * 20] * 6)]]
    text = fit_table("", cols, rows, numeric=set(range(1, 7)), keys=1, width=70, groups=(2, 2, 2))
    for head in (line for line in text.splitlines() if line.startswith("key")):
        names = head.split()[1:]
        assert len(names) % 2 == 0 and all(n[0] == names[i - i % 2][0] for i, n in enumerate(names))
    assert text.count("key") == 3


@pytest.fixture(scope="module")
def changed_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The quickstart's summary and the same suite with training.lr (and the kernel mode,
    which is not part of the id) changed: the ids change, the names stay."""
    d = tmp_path_factory.mktemp("changed")
    base = load_summary(ROOT / "reports/quickstart/summary.json")
    cand = copy.deepcopy(base)
    for v in cand["variants"]:
        v["config"]["training"]["lr"] = 0.0003
        v["config"]["training"]["reproducible"] = False
        v["variant_id"] = "x" + v["variant_id"][1:]
    (d / "a.json").write_text(json.dumps(base))
    (d / "b.json").write_text(json.dumps(cand))
    return d / "a.json", d / "b.json"


def test_suite_changed_lists_only_id_keys(changed_pair: tuple[Path, Path]) -> None:
    a, b = (load_summary(p) for p in changed_pair)
    with pytest.raises(InputError) as err:
        compare_summaries(a, b)
    assert "training.lr 0.003 → 0.0003" in str(err.value) or "training.lr" in str(err.value)
    assert "reproducible" not in str(err.value) and "batch_seeds" not in str(err.value)
    assert "--match name" in str(err.value)


def test_match_name_pairs_across_the_change(changed_pair: tuple[Path, Path]) -> None:
    a, b = changed_pair
    res = run_cli("compare", a, b, "--match", "name", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert all(v["status"] == "matched" and "training.lr" in v["changed"] for v in doc["variants"])
    assert "reproducible" not in doc["variants"][0]["changed"]
    table = run_cli("compare", a, b, "--match", "name", "--wide").stdout
    assert "config change" in table and "training.lr" in table


def test_markdown_and_junit_are_written_when_compare_cannot_compare(
    changed_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = changed_pair
    xml = tmp_path / "gates.xml"
    res = run_cli(
        "compare",
        a,
        b,
        "--fail-on",
        "final_test_acc:-1%",
        "--format",
        "markdown",
        "--junit-xml",
        xml,
    )
    assert res.returncode == 2
    assert "could not compare" in res.stdout and "the suite changed (training.lr" in res.stdout
    assert res.stderr.count("error:") == 1 and "Traceback" not in res.stderr
    error = ET.parse(xml).getroot().find("testsuite/testcase/error")
    assert error is not None and "the suite changed" in error.get("message", "")


# --- report, load_run, environment, html ------------------------------------------------------


def _committed_copy(tmp_path: Path) -> Path:
    run = tmp_path / "repo" / "ioffe2015-mlp"
    shutil.copytree(ROOT / "reports/ioffe2015-mlp", run, ignore=shutil.ignore_patterns("plots"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=run.parent, check=True)
    subprocess.run([*git, "add", "."], cwd=run.parent, check=True)
    subprocess.run([*git, "commit", "-qm", "run"], cwd=run.parent, check=True)
    return run


def test_report_of_a_committed_run_writes_nothing_without_write(tmp_path: Path) -> None:
    run = _committed_copy(tmp_path)

    def files() -> dict[str, tuple[int, bytes]]:
        return {
            p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()
        }

    before = files()
    res = run_cli("report", run, "--reference", "norm=none", "--no-plots")
    assert res.returncode == 0 and "committed run" in res.stderr and "--write" in res.stderr
    assert "Relative to norm=none" in res.stdout and files() == before
    res = run_cli("report", run, "--reference", "norm=none", "--no-plots", "--write")
    assert res.returncode == 0 and "files written" in res.stderr
    after = files()
    assert all(after[n][0] != before[n][0] for n in ("summary.json", "report.md", "report.html"))


def test_load_run_takes_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "reports/runs/ioffe2015-mlp/20260101-000000-abcd"
    shutil.copytree(ROOT / "reports/ioffe2015-mlp", dst, ignore=shutil.ignore_patterns("plots"))
    monkeypatch.chdir(tmp_path)
    assert normbench.load_run("latest").path.resolve() == dst.resolve()
    monkeypatch.chdir(tmp_path / "reports")
    with pytest.raises(InputError, match="'latest': no normbench run directory"):
        normbench.load_run("latest")


def test_kernels_row_is_readable() -> None:
    manifest = json.loads((ROOT / "reports/quickstart/manifest.json").read_text())
    text = env_text(manifest["environment"]["kernels"])
    assert "{" not in text and "'" not in text and "[" not in text
    assert "cpu_capability: AVX2" in text and "MKL_CBWR=AVX2,STRICT" in text
    assert (
        "**kernels**     | cpu_capability: AVX2"
        in (ROOT / "reports/quickstart/report.md").read_text()
    )


def test_noisy_threshold_is_one_constant() -> None:
    from normbench.analysis.aggregate import NOISY_SPREAD

    assert f"{NOISY_SPREAD * 100:g} %" in NOISY_NOTE
    html = (ROOT / "reports/quickstart/report.html").read_text(encoding="utf-8")
    md = (ROOT / "reports/quickstart/report.md").read_text(encoding="utf-8")
    assert "more than 10 %" not in html
    assert NOISY_NOTE in md and NOISY_NOTE in html


# --- group norm: groups auto ---------------------------------------------------------------------


def test_auto_groups_is_the_largest_divisor_up_to_32() -> None:
    from normbench.norms.catalog import auto_groups

    assert [auto_groups(c) for c in (100, 16, 64, 7, 96, 1)] == [25, 16, 32, 7, 32, 1]


def test_groups_auto_is_the_default_and_recorded_per_layer() -> None:
    import torch

    from normbench.norms import make
    from normbench.norms.catalog import resolve_norm
    from normbench.train.loop import auto_group_counts

    spec = resolve_norm("group")
    assert spec["groups"] == "auto"
    model = torch.nn.Sequential(
        make(100, spec), make(16, spec), make(64, resolve_norm({"kind": "group", "groups": 4}))
    )
    assert auto_group_counts(model) == [
        {"layer": "0", "channels": 100, "groups": 25},
        {"layer": "1", "channels": 16, "groups": 16},
    ]
    assert model[2].num_groups == 4 if hasattr(model[2], "num_groups") else True


def test_quickstart_trains_group_norm_by_default_and_explicit_counts_keep_their_error(
    tmp_path: Path,
) -> None:
    suite = ROOT / "suites/quickstart.yaml"
    bad = run_cli("run", suite, "--set", "grid.norm=[{kind: group, groups: 32}]", "--out", tmp_path)
    assert bad.returncode == 2 and "groups 32 must divide" in bad.stderr and "100" in bad.stderr
    res = run_cli(
        "run", suite, "--set", "grid.norm=[group]", "--set", "grid.lr_mult=[1]",
        "--set", "grid.placement=[pre]", "--set", "training.steps=20", "--set", "training.seeds=1",
        "--out", tmp_path, "--quiet", "--no-report", "--no-rel-cost", "--format", "csv",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("quickstart/*/results/*.json")]
    assert {g["groups"] for g in record["norm_groups"]} == {25}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
