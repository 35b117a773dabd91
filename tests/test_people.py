"""Made for people: widths that fit a terminal, `latest`, `--version`, help, did-you-mean."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from normbench.cli import app
from normbench.report.synthetic import make_run
from normbench.report.width import fit_table, max_line_width, stack_records

runner = CliRunner()
QUICKSTART = Path(__file__).resolve().parents[1] / "reports" / "quickstart"


def invoke(*args: str, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("people") / "run", steps=300, eval_every=100)


# --- widths ---------------------------------------------------------------------------------


def test_fit_table_splits_and_keeps_keys() -> None:
    cols = ["norm", "final_test_acc", "best_test_acc", "samples_per_sec"]
    rows = [["batch", "0.6560 ± 0.0028" * 2, "0.6635 ± 0.0092" * 2, "155,674 ± 2,293" * 2]]
    text = fit_table("t", cols, rows, numeric={1, 2, 3}, keys=1, width=50)
    assert max_line_width(text) <= 50
    # Every part repeats the key column, numbers are never wrapped, the legend names the metric.
    assert text.count("batch") == 3 and "0.6560 ± 0.00280.6560 ± 0.0028" in text
    assert "test acc = final_test_acc" in text and "(1/3, continued below)" in text
    wide = fit_table("t", cols, rows, numeric={1, 2, 3}, width=None)
    assert len(wide.splitlines()) == 4 and "final_test_acc" in wide.splitlines()[1]


def test_stack_records_when_sentences_do_not_fit() -> None:
    cols = ["name", "summary"]
    rows = [["x", "word " * 40], ["y", "short"]]
    text = stack_records(cols, rows, width=60)
    assert max_line_width(text) <= 60 and text.startswith("x\n  summary: word")
    assert stack_records(cols, [["y", "short"]], width=60).splitlines()[0].startswith("name")


@pytest.mark.parametrize(
    "args", [["list"], ["list", "datasets"], ["list", "norms"], ["list", "metrics"]]
)
def test_list_fits_100_columns(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert max_line_width(result.stdout) <= 100
    assert max_line_width(invoke(*args, "--wide").stdout) > 100


def test_report_and_compare_fit_100_columns(run_path: Path) -> None:
    for args in (
        ["report", run_path, "-f", "table"],
        ["compare", run_path, run_path],
        ["compare", run_path, "--reference", "norm=none"],
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert max_line_width(result.stdout) <= 100, args
        assert "legend:" in result.stdout
        wide = invoke(*args, "--wide")
        assert max_line_width(wide.stdout) > 100 and "legend:" not in wide.stdout


def test_run_table_fits_100_columns(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: tiny\ndataset: {name: synthetic-blobs, num_samples: 200}\n"
        "model: {kind: mlp, hidden: [8]}\ntraining: {steps: 20, eval_every: 10, "
        "seeds: 1, batch_size: 20}\ngrid: {norm: [none, batch]}\n"
        "targets: {test_acc: 0.5}\n"
    )
    result = invoke("run", suite, "--out", tmp_path / "runs", "--no-report", "-q")
    assert result.exit_code == 0, result.output
    assert max_line_width(result.stdout) <= 100 and "samples/s" in result.stdout


# --- latest, version, help, did-you-mean ---------------------------------------------------


def test_latest_run_dir(run_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("report", "latest", "-f", "csv")
    assert result.exit_code == 2 and "'latest': no normbench run directory" in result.output
    for stamp in ("20260101-000000-aaaa", "20260102-000000-bbbb"):
        shutil.copytree(run_path, tmp_path / "reports" / "runs" / "synthetic" / stamp)
    result = invoke("report", "latest", "-f", "csv")
    assert result.exit_code == 0, result.output
    newer = tmp_path / "reports/runs/synthetic/20260102-000000-bbbb"
    assert invoke("report", "latest").exit_code == 0 and (newer / "report.html").is_file()
    assert not (tmp_path / "reports/runs/synthetic/20260101-000000-aaaa/report.html").exists()
    result = invoke("compare", "reports/runs/synthetic/20260101-000000-aaaa", "latest")
    assert result.exit_code == 0, result.output
    assert "20260102-000000-bbbb vs" in result.stdout.replace("\n", " ")


def test_version_and_full_help() -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"normbench {version('normbench')}"
    help_text = invoke("--help").stdout
    commands = help_text.split("Commands:")[1]
    assert "..." not in commands and "print a comparison table." in " ".join(commands.split())


@pytest.mark.parametrize(
    ("args", "suggestion"), [(["list", "norm"], "norms"), (["list", "dataset"], "datasets")]
)
def test_list_did_you_mean(args: list[str], suggestion: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"did you mean '{suggestion}'?" in result.output and "Traceback" not in result.output


# --- progress -------------------------------------------------------------------------------

TINY = (
    "name: tiny\ndataset: {name: synthetic-blobs, num_samples: 200}\n"
    "model: {kind: mlp, hidden: [8]}\ntraining: {steps: 60, eval_every: 20, seeds: 2, "
    "batch_size: 20}\ngrid: {norm: [none, batch]}\n"
)


def test_rate_window_is_recent_and_eta_agrees() -> None:
    from normbench.execute.progress import RateWindow, eta, fmt_duration

    w = RateWindow(window=10)
    for t in range(0, 31):  # 10 steps/s for 20 s, then 100 steps/s
        w.add(float(t), 10 * t if t <= 20 else 200 + 100 * (t - 20))
    assert w.rate() == pytest.approx(100.0)  # the since-start average would say 40
    assert eta(1000, w.rate()) == pytest.approx(10.0) and fmt_duration(10.0) == "0:10"
    assert eta(5, None) is None and fmt_duration(None) == "?"


def test_the_eta_does_not_jump_more_than_2x_once_a_tenth_is_done() -> None:
    import io
    import re

    from normbench.execute.progress import Progress

    # A slow CNN suite in one process: 100-step intervals, each followed by a long evaluation,
    # a task that ends early (its steps all count at once), updates seconds or a minute apart.
    now = [0.0]
    p = Progress(4, 1000, live=False, stream=io.StringIO(), clock=lambda: now[0])
    said, step = [], 0
    for task in ("a", "b", "c", "d"):
        for step in range(100, 1001, 100):
            now[0] += 3 if step % 300 else 60  # every third interval has a minute of evaluation
            p.update(task, step, 1000)
            if task == "b" and step == 300:
                p.finished({"status": "diverged", "variant_name": "b", "seed": 0}, "b")
                break
            text = re.search(r"ETA (\S+)", p.summary_line())[1]
            if text == "?":  # no rate yet: only at the very start
                assert p.steps_done() <= 100
                continue
            parts = [int(x) for x in text.split(":")]
            said.append(
                (
                    now[0],
                    p.steps_done() / p.total_steps,
                    sum(v * 60**i for i, v in enumerate(reversed(parts))),
                )
            )
    settled = [(t, left) for t, share, left in said if 0.1 <= share < 1]  # 0 at the end
    assert len(settled) > 10
    for (t0, e0), (t1, e1) in itertools.pairwise(settled):
        assert e1 <= 2 * e0 + 1, (t0, e0, t1, e1)  # rounded to whole seconds
        assert e1 >= (e0 - (t1 - t0)) / 2 - 1, (t0, e0, t1, e1)


def test_progress_lines_without_a_terminal() -> None:
    import io

    from normbench.execute.progress import Progress

    now = [0.0]
    out = io.StringIO()
    p = Progress(2, 100, live=False, stream=out, clock=lambda: now[0], summary_every=30)
    p.stage("generating mnist1d…")
    for step in range(0, 101, 10):
        now[0] += 5
        p.update("a-s0", step, 100, "norm=none s0")
    p.finished(
        {
            "status": "ok",
            "variant_name": "norm=none",
            "seed": 0,
            "metrics": {"final_test_acc": 0.5},
            "timing": {"train_seconds": 1.5},
        },
        "a-s0",
    )
    p.finished(
        {
            "status": "diverged",
            "variant_name": "norm=batch",
            "seed": 0,
            "diverged_at_step": 7,
            "metrics": {},
        },
        "b-s0",
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "generating mnist1d…"
    assert sum(line.startswith("progress: 0/2 done") for line in lines) == 1  # every 30 s only
    assert lines[1].endswith("25 % of steps, 2 steps/s  ETA 1:15")  # 150 steps left at 2/s
    assert lines[-2] == "[1/2] norm=none seed 0: test acc 0.5000, 1.5 s"
    assert lines[-1] == "[2/2] norm=batch seed 0: diverged at step 7"
    assert p.tally_words() == "2/2 done (1 ok, 1 diverged, 0 failed)"


def test_run_in_a_ci_log_prints_a_line_per_variant(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY)
    proc = run_cli("run", suite, "--out", tmp_path / "runs", "--no-report", "-f", "csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "loading synthetic-blobs…"
    done = [line for line in lines if line.startswith("[")]
    assert [d.split("]")[0] for d in done] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all("test acc" in d for d in done)


def test_ctrl_c_prints_the_resume_command(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY.replace("steps: 60", "steps: 400"))
    cmd = [
        sys.executable,
        "-m",
        "normbench",
        "run",
        str(suite),
        "--out",
        str(tmp_path / "runs"),
        "--no-report",
        "--set",
        "training.eval_every=50",
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # a real SIGINT once the first variant is stored
        if line.startswith("[1/4]"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    command = rest.split("resume with:\n")[1].splitlines()[0].strip()
    run_dir = next((tmp_path / "runs" / "tiny").iterdir())
    assert command == shlex.join(
        [
            "normbench",
            str(suite),
            "--out",
            str(tmp_path / "runs"),
            "--no-report",
            "--set",
            "training.eval_every=50",
            "--resume",
            str(run_dir),
        ]
    ).replace("normbench ", "normbench run ", 1)


# --- JSON Schema ------------------------------------------------------------------------------

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.yaml"))
# Bad suites that need context the schema cannot see (import a class, divide widths by
# groups, the batch size a norm sits in, the whole grid): `validate` rejects them, not the schema.
SEMANTIC_ONLY = {
    "yaml syntax",
    "exclude everything",
    "custom import",
    "batch size one",
    "groups",
    "instance on mlp",
}


@pytest.fixture(scope="module")
def validator():  # type: ignore[no-untyped-def]
    import jsonschema

    from normbench.spec import schema

    doc = schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


def _data(text: str):  # type: ignore[no-untyped-def]
    from normbench.yamlsrc import parse_yaml

    return parse_yaml(text, "s.yaml")[0]


def test_schema_is_editor_grade() -> None:
    from normbench.data.registry import DATASETS
    from normbench.norms.catalog import NORMS
    from normbench.spec import schema

    doc = schema()
    assert doc["$schema"].endswith("2020-12/schema") and doc["$id"].startswith("urn:normbench")
    assert doc["properties"]["name"]["pattern"] == "^[a-z0-9_-]+$"
    assert doc["properties"]["dataset"]["properties"]["name"]["enum"] == list(DATASETS)
    assert doc["properties"]["model"]["properties"]["norm"]["anyOf"][0]["enum"] == list(NORMS)
    missing = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, sub in (node.get("properties") or {}).items():
                if "const" not in sub and "description" not in sub:
                    missing.append(f"{path}.{key}")
            for key, sub in node.items():
                if key != "if":
                    walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(doc, "")
    assert missing == []


@pytest.mark.parametrize("suite", SUITES, ids=[s.stem for s in SUITES])
def test_schema_accepts_every_curated_suite(validator, suite: Path) -> None:  # type: ignore[no-untyped-def]
    text = suite.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/suite.schema.json\n")
    assert [e.message for e in validator.iter_errors(_data(text))] == []


def test_schema_rejects_what_validate_rejects(validator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from test_spec import BAD, BASE

    assert list(validator.iter_errors(_data(BASE))) == []
    for desc, transform, _ in BAD:
        text = transform(BASE)
        assert invoke("validate", _write(tmp_path, text)).exit_code == 2, desc
        if desc in SEMANTIC_ONLY:
            continue
        assert list(validator.iter_errors(_data(text))), desc
    for bad in ("norm: batchnrom", "norm: {kind: group, groupz: 2}", "norm: {kind: rms, eps: 0}"):
        text = BASE.replace("  norm: none", f"  {bad}")
        assert list(validator.iter_errors(_data(text))), bad
    adamm = BASE.replace("  lr: 0.1", "  lr: 0.1\n  optimizer: adamm")
    num = BASE.replace("name: synthetic-blobs", "name: synthetic-blobs\n  num_samplez: 3")
    cnn_key = BASE.replace("  hidden: [16, 16]", "  hidden: [16, 16]\n  kernel_size: 3")
    for text in (adamm, num, cnn_key, BASE.replace("name: t", "name: X Y")):
        assert list(validator.iter_errors(_data(text)))
        assert invoke("validate", _write(tmp_path, text)).exit_code == 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_committed_schema_file_is_current() -> None:
    import json

    from normbench.spec import schema

    committed = Path(__file__).resolve().parents[1] / "schema" / "suite.schema.json"
    assert json.loads(committed.read_text()) == schema(), (
        "regenerate: normbench schema > schema/suite.schema.json"
    )


# --- pandas / csv / parquet --------------------------------------------------------------------


def test_to_pandas_is_tidy(run_path: Path) -> None:
    import json

    import normbench

    df = normbench.load_run(run_path).to_pandas()
    records = [json.loads(p.read_text()) for p in sorted((run_path / "results").glob("*.json"))]
    points = sum(len(r["curves"]["step"]) for r in records)
    assert len(df) == points and {"norm", "placement", "lr_mult", "seed", "step"} <= set(df.columns)
    assert not df.duplicated(["variant_id", "seed", "step"]).any()
    one = next(r for r in records if r["status"] == "ok")
    got = df[(df.variant_id == one["variant_id"]) & (df.seed == one["seed"])]
    assert got["test_loss"].tolist() == one["curves"]["test_loss"]
    assert got["norm"].iloc[0] == one["params"]["norm"]
    # The same run gives the same rows, in the same order.
    assert normbench.load_run(run_path).to_pandas().equals(df)
    per_seed = normbench.load_run(run_path).to_pandas(curves=False)
    assert len(per_seed) == len(records) and "final_test_acc" in per_seed.columns


def test_report_curves_csv_and_parquet(run_path: Path, tmp_path: Path) -> None:
    import csv
    import io

    import pandas as pd

    result = invoke("report", run_path, "--format", "csv", "--curves")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and rows[0]["step"] and "norm" in rows[0]
    out = tmp_path / "run.parquet"
    with out.open("wb") as f:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "normbench",
                "report",
                str(run_path),
                "--format",
                "parquet",
                "--curves",
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            text=False,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out)
    assert len(frame) == len(rows) and list(frame.columns) == list(rows[0])
    bad = invoke("report", run_path, "--format", "table", "--curves")
    assert bad.exit_code == 2 and "--curves needs --format csv" in bad.output


def test_missing_pandas_is_one_sentence(run_path: Path) -> None:
    code = (
        "import sys; sys.modules['pandas'] = None; sys.argv = ['normbench', 'report', "
        f"{str(run_path)!r}, '--format', 'parquet']; from normbench.cli import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "pip install 'normbench[pandas]'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# --- memory -----------------------------------------------------------------------------------


def test_model_memory_is_accounted_tensor_by_tensor() -> None:
    import torch
    from torch import nn

    from normbench.train.timing import MIB, model_memory

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 400), nn.BatchNorm1d(400), nn.ReLU(), nn.Linear(400, 10))
    n = sum(p.numel() for p in model.parameters())
    x, y = torch.randn(512, 50), torch.randint(0, 10, (512,))
    opt = torch.optim.Adam(model.parameters())
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    small = model_memory(model, opt, nn.functional.cross_entropy, x, y, 128)
    big = model_memory(model, opt, nn.functional.cross_entropy, x, y, 512)
    assert small["grad_memory_mb"] == pytest.approx(4 * n / MIB)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert small["param_memory_mb"] == pytest.approx((4 * n + buffers) / MIB)
    # Adam keeps two moments per parameter (plus a step counter per tensor).
    assert 8 * n / MIB <= small["optimizer_state_mb"] < 8 * n / MIB + 0.01
    # Activations: at least the Linear output and the ReLU output per sample, linear in batch.
    assert small["activation_memory_mb"] >= 128 * 400 * 4 * 2 / MIB
    assert big["activation_memory_mb"] == pytest.approx(4 * small["activation_memory_mb"], rel=0.05)
    assert big["param_memory_mb"] == small["param_memory_mb"]
    assert small["model_memory_mb"] == pytest.approx(
        sum(
            small[k]
            for k in (
                "param_memory_mb",
                "grad_memory_mb",
                "optimizer_state_mb",
                "activation_memory_mb",
            )
        )
    )
    assert model.training and model[1].num_batches_tracked.item() == 1  # the run is untouched


def test_memory_metrics_registered_and_counts_without_std() -> None:
    from normbench.metrics import METRICS
    from normbench.report.tables import fmt_stats

    for name in ("model_memory_mb", "activation_memory_mb", "process_rss_mb"):
        assert METRICS[name].unit == "MiB" and not METRICS[name].higher_is_better
    assert (
        "RSS" in METRICS["process_rss_mb"].summary
        or "resident" in METRICS["process_rss_mb"].summary
    )
    assert fmt_stats({"mean": 15210, "std": 0.0, "n": 2, "values": [1, 1]}, "count") == "15,210"
    assert (
        fmt_stats({"mean": 0.5, "std": 0.0, "n": 2, "values": [1, 1]}, "fraction")
        == "0.5000 ± 0.0000"
    )


# --- the interactive report in a real browser ------------------------------------------------


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Headless Chromium driven by selenium through chromedriver (Debian's chromium-driver)."""
    import os

    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if webdriver is None or driver_path is None or chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs selenium, chromium and chromium-driver for the report test")
        pytest.skip("selenium / chromium / chromium-driver not installed; CI is not set")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from normbench.report.api import write_report

    run = make_run(
        tmp_path_factory.mktemp("html") / "run",
        steps=600,
        eval_every=100,
        fail=[("norm=layer,placement=pre,lr_mult=1", 1)],
    )
    write_report(run, warn=lambda m: None)
    return run / "report.html"


def test_report_is_self_contained_and_small(report_html: Path) -> None:
    text = report_html.read_text()
    assert "<script" in text and 'id="nb-data"' in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched
    assert len(text.encode()) < 2 * 2**20
    quick = QUICKSTART / "report.html"
    assert quick.stat().st_size < 2 * 2**20  # the committed quickstart report: ≤ 2 MB


def test_report_in_chromium(browser, report_html: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(report_html.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    import json

    values = json.loads((report_html.parent / "summary.json").read_text())["values"]
    panels = browser.find_elements(By.CSS_SELECTOR, ".nb-panel")
    assert len(panels) == len(values["lr_mult"]) > 1  # one per lr_mult: every one is drawn
    legend = browser.find_elements(By.CSS_SELECTOR, "#nb-legend button")
    key = legend[0].get_attribute("data-series")
    selector = f'g.nb-series[data-series="{key}"]'
    shown = browser.find_elements(By.CSS_SELECTOR, selector)
    assert len(shown) == len(panels) and all(g.is_displayed() for g in shown)
    legend[0].click()
    hidden = browser.find_elements(By.CSS_SELECTOR, selector)
    assert len(hidden) == len(panels) and not any(g.is_displayed() for g in hidden)
    assert legend[0].get_attribute("aria-pressed") == "false"
    others = browser.find_elements(By.CSS_SELECTOR, "g.nb-series:not(.nb-hidden)")
    assert others and all(g.get_attribute("data-series") != key for g in others)
    # Hover: the read-out names the step and says what the band is.
    svg = browser.find_elements(By.CSS_SELECTOR, ".nb-panel svg")[0]
    ActionChains(browser).move_to_element_with_offset(svg, 40, 0).perform()
    tip = browser.find_elements(By.CSS_SELECTOR, ".nb-tip")[0]
    assert tip.is_displayed() and tip.text.startswith("step ")
    assert "seeds" in tip.text and key not in tip.text
    # Sorting: click a numeric header twice, the column is ascending then descending.
    table = browser.find_element(By.CSS_SELECTOR, "#variants table.sortable")
    heads = table.find_elements(By.CSS_SELECTOR, "thead th")
    col = next(i for i, h in enumerate(heads) if h.text.strip() == "final_test_acc")

    def column() -> list[float]:
        cells = table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({col + 1})")
        return [float(c.text.split(" ")[0].replace(",", "")) for c in cells if c.text[:1].isdigit()]

    before = column()
    heads[col].click()
    assert heads[col].get_attribute("aria-sort") == "ascending" and column() == sorted(before)
    heads[col].click()
    assert column() == sorted(before, reverse=True)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_schema_covers_every_suite_key() -> None:
    """A key added to the suite models needs its schema entry (and description) too."""
    from normbench.models.catalog import MODELS
    from normbench.spec import ClaimCfg, OptimizerCfg, SuiteCfg, TrainingCfg
    from normbench.spec import schema as suite_schema

    props = suite_schema()["properties"]
    assert set(SuiteCfg.model_fields) == set(props)
    assert set(TrainingCfg.model_fields) == set(props["training"]["properties"])
    # The model section derives from the kinds' entries: every kind's keys, described.
    model = props["model"]
    assert set(model["properties"]) == {k for m in MODELS.values() for k in m.keys}
    assert all(p.get("description") for p in model["properties"].values())
    assert set(ClaimCfg.model_fields) == set(props["claims"]["items"]["properties"])
    optimizer = props["training"]["properties"]["optimizer"]["anyOf"][1]["properties"]
    assert set(OptimizerCfg.model_fields) <= set(optimizer)
