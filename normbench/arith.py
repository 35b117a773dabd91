"""What selects a run's arithmetic (torch-free): intra-op threads, CPU kernel level, pinned mode."""

# Two runs of one (variant, seed) give bit-identical numbers only when the same kernels run
# with the same reduction order: the intra-op thread count splits reductions differently,
# ATen dispatches to AVX2 or AVX-512 kernels by CPU, MKL and oneDNN pick code paths by ISA.
# Everything here is decided from the configuration when a run is planned (never from the
# machine's momentary load), recorded, and checked by compare, resume and merge.

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Intra-op threads when neither training.threads nor --threads-per-worker says: small models
# cannot use more than one thread well (and spin-waiting threads collapse on a busy machine),
# large ones (see execute.plan.LARGE_FLOPS_PER_STEP) get a fixed few, capped by the cores.
SMALL_MODEL_THREADS = 1
LARGE_MODEL_THREADS = 4

# Environment variables that steer kernel selection or thread pools: recorded in manifests.
KERNEL_ENV_VARS = (
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "KMP_AFFINITY",
    "OMP_PROC_BIND",
    "GOMP_CPU_AFFINITY",
)

# The reproducible mode pins every library to the AVX2 level on x86-64, which every x86 CPU
# of the last decade reaches (Intel Haswell 2013+, AMD Zen 2017+), so an AVX-512 machine and
# an AVX2-only one run the same kernels. Elsewhere only ATen's dispatch has a portable level.
X86_PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
}
OTHER_PINNED = {"ATEN_CPU_CAPABILITY": "default"}
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")


def pinned_env(machine: str | None = None) -> dict[str, str]:
    """The environment the reproducible mode sets before torch starts, for this CPU family."""
    machine = (machine or platform.machine()).lower()
    return dict(X86_PINNED if machine in X86_MACHINES else OTHER_PINNED)


def pinned_capability(machine: str | None = None) -> str:
    """What ``torch.backends.cpu.get_cpu_capability()`` reports under the reproducible mode."""
    return pinned_env(machine)["ATEN_CPU_CAPABILITY"].upper()


def apply_pinned_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the reproducible mode's variables in ``environ`` (default: this process's); returns them.

    Effective only for a torch that has not initialised yet: this process's when torch is
    not imported, and every process started after this call (workers inherit it).
    """
    env = os.environ if environ is None else environ
    values = pinned_env()
    env.update(values)
    return values


def thread_env(threads: int) -> dict[str, str]:
    """Variables that size the OpenMP/MKL pools of a process that has not started torch yet."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def kernel_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kernel-steering variables set in ``environ`` (default: this process's)."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in KERNEL_ENV_VARS if k in env}


# --- threads ----------------------------------------------------------------------------------


def default_task_threads(large: bool) -> int:
    """Intra-op threads of a task when nothing asks for a number (see the constants above)."""
    return LARGE_MODEL_THREADS if large else SMALL_MODEL_THREADS


def task_threads(configured: int | None, requested: int | None, large: bool) -> int:
    """A variant's threads: ``training.threads``, else ``--threads-per-worker``, else a default."""
    if configured is not None:
        return int(configured)
    if requested is not None:
        return int(requested)
    return default_task_threads(large)


def fit_to_cores(workers: int, threads: int, cores: int) -> tuple[int, int, list[str]]:
    """Workers and threads with workers × threads ≤ cores, and a warning sentence per cap.

    Threads are capped first (a task never uses more threads than there are cores), then
    workers, so that a slow neighbour may slow a run but never makes it oversubscribe.
    """
    warnings = []
    if threads > cores:
        warnings.append(
            f"{threads} intra-op threads asked for but only {cores} cores are usable: "
            f"using {cores} (more would oversubscribe the CPU)"
        )
        threads = cores
    fit = max(1, cores // threads)
    if workers > fit:
        warnings.append(
            f"{workers} workers × {threads} thread{'s' * (threads > 1)} would exceed "
            f"the {cores} usable cores: using {fit} worker{'s' * (fit > 1)}"
        )
        workers = fit
    return workers, threads, warnings


# --- the CPU's vendor: MKL's code paths depend on it, not only on the ISA level ----------------

# MKL pins its reproducible code branch (MKL_CBWR=AVX2) on Intel CPUs only; on others it runs
# its automatic branch, so at equal ISA level an AMD and an Intel CPU round GEMMs differently
# (measured: an AMD EPYC's train losses differ from an Intel Xeon's in the 9th significant
# digit at step 50, by one test example in 1000 at step 250). Within Intel, the pinned branch
# holds across models; other vendors' families may dispatch differently, so they count too.
PINNED_ACROSS_FAMILIES = ("GenuineIntel",)

# A run recorded before the vendor was: inferred from its CPU model name.
VENDOR_OF_NAME = {"intel": "GenuineIntel", "amd": "AuthenticAMD"}


@functools.cache
def cpu_vendor() -> dict[str, Any]:
    """This CPU's ``vendor`` (``GenuineIntel``, ``AuthenticAMD``) and ``family`` (Linux x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"vendor": None, "family": None}
    fields = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in text.splitlines()[:30])
    )
    family = fields.get("cpu family", "")
    return {
        "vendor": fields.get("vendor_id") or None,
        "family": int(family) if family.isdigit() else None,
    }


def vendor_of_name(name: str | None) -> str | None:
    """The vendor id a CPU model name implies (``Intel(R) Xeon(R)``: GenuineIntel), or None."""
    words = (name or "").lower().replace("(r)", " ").split()
    return next((VENDOR_OF_NAME[w] for w in words if w in VENDOR_OF_NAME), None)


# --- signatures: what two runs must share to be bit-comparable --------------------------------


def signature(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The arithmetic-selecting settings recorded in a manifest (missing ones are None)."""
    arith = manifest.get("arith") or {}
    env = manifest.get("environment") or {}
    kernels = env.get("kernels") or {}
    threads = arith.get("threads")
    return {
        "threads": tuple(threads) if isinstance(threads, list) else threads,
        "cpu_capability": arith.get("cpu_capability") or kernels.get("cpu_capability"),
        "cpu_vendor": arith.get("cpu_vendor") or vendor_of_name(env.get("cpu")),
        "cpu_family": arith.get("cpu_family"),
        "reproducible": arith.get("reproducible"),
        "torch": env.get("torch"),
        # Seeds trained as one stacked model round differently from separate runs.
        "batched": bool((manifest.get("execution") or {}).get("batch_seeds")),
    }


def _threads_text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "/".join(str(v) for v in value)
    return str(value)


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """How two signatures differ, one short phrase each (``threads 1 vs 2``, ``AVX512 vs AVX2``).

    A setting missing on either side (a run made before it was recorded) is not a difference.
    """
    out = []
    if (
        a.get("threads") is not None
        and b.get("threads") is not None
        and a["threads"] != b["threads"]
    ):
        out.append(f"threads {_threads_text(a['threads'])} vs {_threads_text(b['threads'])}")
    ca, cb = a.get("cpu_capability"), b.get("cpu_capability")
    if ca and cb and ca != cb:
        out.append(f"{ca} vs {cb}")
    out += _vendor_differences(a, b)
    ra, rb = a.get("reproducible"), b.get("reproducible")
    if ra is not None and rb is not None and ra != rb:
        out.append(f"reproducible mode {'on' if ra else 'off'} vs {'on' if rb else 'off'}")
    ba, bb = a.get("batched"), b.get("batched")
    if ba is not None and bb is not None and ba != bb:
        out.append(f"batched seeds {'on' if ba else 'off'} vs {'on' if bb else 'off'}")
    if a.get("torch") and b.get("torch") and a["torch"] != b["torch"]:
        out.append(f"torch {a['torch']} vs {b['torch']}")
    return out


def _vendor_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``GenuineIntel vs AuthenticAMD``, or ``AuthenticAMD family 23 vs 25``, or nothing."""
    va, vb = a.get("cpu_vendor"), b.get("cpu_vendor")
    if not va or not vb:
        return []
    if va != vb:
        return [f"{va} vs {vb}"]
    fa, fb = a.get("cpu_family"), b.get("cpu_family")
    if va not in PINNED_ACROSS_FAMILIES and fa is not None and fb is not None and fa != fb:
        return [f"{va} family {fa} vs {fb}"]
    return []


def not_bit_comparable(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """``"not bit-comparable: threads 1 vs 2"`` for two signatures that differ, else None."""
    diff = differences(a, b)
    return f"not bit-comparable: {'; '.join(diff)}" if diff else None


DETERMINISTIC_NOTE = (
    "accuracy and loss are bit-identical only when these match, so "
    "differences in the last digits (and, over long runs, of a few tenths "
    "of a point per seed) are expected here"
)


def run_arith(threads: list[int], reproducible: bool, cpu_capability: str | None) -> dict[str, Any]:
    """The manifest's ``arith`` block: threads, capability, mode and the CPU's vendor/family."""
    distinct = sorted(set(threads))
    cpu = cpu_vendor()
    return {
        "threads": distinct[0] if len(distinct) == 1 else distinct,
        "cpu_capability": cpu_capability,
        "reproducible": reproducible,
        "cpu_vendor": cpu["vendor"],
        "cpu_family": cpu["family"],
    }
