"""normbench: a command-line benchmark for normalization layers in PyTorch.

The Python API behind the commands (imported lazily, so ``import normbench`` stays light)::

    import normbench
    suite = normbench.load_suite("suites/quickstart.yaml", ["training.steps=200"])
    outcome = normbench.run_suite(suite, "reports/runs")
    run = normbench.load_run(outcome.run_dir.path)
    comparison = normbench.compare_runs(baseline_dir, candidate_dir, gates=["final_test_acc:-1%"])
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "load_suite": "normbench.spec",
    "run_suite": "normbench.api",
    "load_run": "normbench.api",
    "compare_runs": "normbench.api",
    "merge_runs": "normbench.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import the API functions on first use."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'normbench' has no attribute {name!r}")
