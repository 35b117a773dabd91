"""Test-wide settings and shared helpers: the tiny suite, suite files, the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Set before torch is first imported (the test modules import it lazily through normbench);
# worker subprocesses inherit it. Two threads on a loaded 2-core machine ran 10-30x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# The smallest suite that still trains every kind of norm: three norms × two seeds of a 40-step
# MLP on blobs, a few seconds in all. Tests derive variants from it by exact text replacement.
TINY = """\
name: tiny
dataset:
  name: synthetic-blobs
  input_norm: zscore
model:
  kind: mlp
  hidden: [16, 16]
  activation: relu
training:
  optimizer: adam
  lr: 0.01
  batch_size: 32
  steps: 40
  eval_every: 20
  seeds: 2
  device: cpu
grid:
  norm: [none, batch, layer]
"""


def suite_text(text: str = TINY, overrides: dict[str, str] | None = None) -> str:
    """``text`` with each ``old: new`` replacement applied once, in order.

    An override that matches nothing fails loudly: the suite it meant to change would
    otherwise run unchanged and the test would check the wrong thing.
    """
    for old, new in (overrides or {}).items():
        assert old in text, f"override {old!r} matches nothing in the suite"
        text = text.replace(old, new)
    return text


def write_suite(directory: Path, text: str = TINY, name: str = "s.yaml") -> Path:
    """Write a suite file and return its path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Callable[..., Path]:
    """A factory: ``tiny_suite({"seeds: 2": "seeds: 3"}, name="s.yaml", text=TINY)`` writes
    the (overridden) suite into ``tmp_path`` and returns its path."""

    def make(
        overrides: dict[str, str] | None = None, *, name: str = "s.yaml", text: str = TINY
    ) -> Path:
        return write_suite(tmp_path, suite_text(text, overrides), name)

    return make


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment with the checkout and tests/ (the custom norms) first on the path."""
    path = os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def start_cli(*args: object, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """``python -m normbench ARGS`` started in a real process and not waited for (signal tests).

    ``env`` is the whole environment (default: ``subprocess_env()``); other keyword arguments
    (``stderr``, ``text``, ``start_new_session``) go to ``subprocess.Popen``.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "normbench", *map(str, args)],
        env=subprocess_env() if env is None else env,
        **kwargs,
    )


def run_cli(
    *args: object,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``python -m normbench ARGS`` in a real process, output captured as text.

    ``env`` is the whole environment (default: ``subprocess_env()``); other keyword arguments
    (``cwd``, ``check``) go to ``subprocess.run``.
    """
    return subprocess.run(
        [sys.executable, "-m", "normbench", *map(str, args)],
        env=subprocess_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
