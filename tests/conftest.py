"""Test-wide settings: one torch thread, so tests are fast and stable on a busy 2-core runner."""

from __future__ import annotations

import os

# Set before torch is first imported (the test modules import it lazily through normbench);
# worker subprocesses inherit it. Two threads on a loaded 2-core machine ran 10-30x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
