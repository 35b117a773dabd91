"""Output into pipes that close and devices that are full: the work is never lost."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, start_cli, suite_text, write_suite

COMMITTED_RUN = Path(__file__).resolve().parent.parent / "reports" / "quickstart"
QUICK = suite_text(TINY, {"steps: 40": "steps: 10", "eval_every: 20": "eval_every: 5"})


def _closed_reader(*args: object, lines: int = 0, **kwargs) -> subprocess.Popen:
    """Start ``normbench ARGS`` with stdout (and stderr, when asked) into a pipe, read
    ``lines`` lines, then close the reading end like ``| head -N`` does."""
    proc = start_cli(*args, stdout=subprocess.PIPE, text=True, **kwargs)
    assert proc.stdout is not None
    for _ in range(lines):
        proc.stdout.readline()
    proc.stdout.close()
    return proc


@pytest.mark.parametrize(
    "args", [("schema",), ("list", "norms"), ("list", "datasets", "--format", "json"), ("--help",)]
)
def test_a_reader_that_goes_away_ends_a_listing_quietly(args: tuple[str, ...]) -> None:
    proc = _closed_reader(*args, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err == "", err  # no "Broken pipe", no traceback


def test_run_piped_into_head_finishes_training_and_its_files(tmp_path: Path) -> None:
    path = write_suite(tmp_path, QUICK)
    # `normbench run … 2>&1 | head -2`: progress and table share a pipe that closes early.
    proc = _closed_reader(
        "run", path, "--out", tmp_path / "runs", "--no-rel-cost", lines=2,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.wait(timeout=300) == 0
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert len(list((run_dir / "results").glob("*.json"))) == 6
    assert (run_dir / "report.md").is_file() and (run_dir / "summary.json").is_file()


def test_workers_survive_a_closed_stderr(tmp_path: Path) -> None:
    path = write_suite(tmp_path, QUICK)
    proc = _closed_reader(
        "run", path, "--out", tmp_path / "runs", "--no-rel-cost", "--no-report",
        "--workers", "2", stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.wait(timeout=300) == 0
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    found = [json.loads(p.read_text()) for p in (run_dir / "results").glob("*.json")]
    assert len(found) == 6 and all(r["status"] == "ok" for r in found)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_json_into_a_full_device_is_reported_and_the_run_kept(tmp_path: Path) -> None:
    path = write_suite(tmp_path, QUICK)
    with open("/dev/full", "w") as full:
        proc = start_cli(
            "run", path, "--out", tmp_path / "runs", "--no-rel-cost", "-q", "--format", "json",
            stdout=full, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "standard output could not be written (No space left on device)" in err
    assert "report could not be written" not in err and "Traceback" not in err
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert (run_dir / "report.html").is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_parquet_into_a_full_device_or_a_closed_pipe(tmp_path: Path) -> None:
    # The binary table goes through the same guard as the text ones.
    with open("/dev/full", "w") as full:
        proc = start_cli(
            "report", COMMITTED_RUN, "--format", "parquet",
            stdout=full, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.startswith("normbench: error: standard output could not be written (No space")
    proc = _closed_reader(
        "report", COMMITTED_RUN, "--format", "parquet", "--curves", stderr=subprocess.PIPE
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == "", err
