"""Environment capture for manifest.json: Python, torch, device, CPU, threads, platform, git."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit of the working directory, if it is a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def capture(device: str | None = None) -> dict[str, Any]:
    """Everything a reader needs to interpret timings; imports torch (the run side only)."""
    import torch

    from normbench.train.device import device_name, resolve_device

    dev = resolve_device(device or "auto")
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(dev),
        "device_name": device_name(dev),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }
