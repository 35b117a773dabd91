"""Environment capture for manifest.json: Python, torch, device, CPU, kernels, threads, git."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


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


def device_name(device: torch.device) -> str:
    """A human name for a ``torch.device`` (the GPU model, or the CPU's)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return cpu_model()


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit of the working directory, if it is a repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# CPU flags that decide which kernels ATen, MKL and oneDNN may take (x86 and Arm).
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)


@functools.cache
def isa_flags() -> list[str]:
    """The kernel-relevant ISA extensions this CPU reports in /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            present = set(line.split(":", 1)[1].split())
            return [f for f in ISA_FLAGS if f in present]
    return []


def _build_line(show: str, marker: str) -> str | None:
    """The line of ``torch.__config__.show()`` that names ``marker`` (a library's version)."""
    for line in show.splitlines():
        if marker in line:
            return line.strip().lstrip("- ").strip()
    return None


def kernels() -> dict[str, Any]:
    """What selects the CPU kernels: capability, BLAS/oneDNN builds, ISA flags, steering env."""
    import torch

    from normbench.arith import kernel_env

    show = torch.__config__.show()
    blas = next(
        (
            part.split("=", 1)[1]
            for part in show.replace(",", " ").split()
            if part.startswith("BLAS_INFO=")
        ),
        None,
    )
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "mkl": _build_line(show, "Math Kernel Library")
        if torch.backends.mkl.is_available()
        else None,
        "onednn": _build_line(show, "MKL-DNN") if torch.backends.mkldnn.is_available() else None,
        "isa_flags": isa_flags(),
        "env": kernel_env(),
    }


def capture(device: str | None = None) -> dict[str, Any]:
    """Everything a reader needs to interpret timings; imports torch (the run side only)."""
    import torch

    from normbench.train.device import resolve_device

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
        "kernels": kernels(),
    }
