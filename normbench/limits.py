"""Bounds on what input may ask for: sizes that must fit this machine's memory."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from normbench.errors import InputError


def physical_memory() -> int:
    """This machine's physical memory in bytes (a huge number when it cannot be told)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def gib(num_bytes: float) -> str:
    """``14,901.2 GiB``."""
    return f"{num_bytes / 2**30:,.1f} GiB"


def check_fits(
    shape: Iterable[int], bytes_per_value: int, what: str, detail: str = "", memory: int = 0
) -> None:
    """``InputError`` "WHAT needs N GiB DETAIL, more than this machine's memory" when
    ``shape`` values of ``bytes_per_value`` bytes exceed ``memory`` (default: this
    machine's); computed on Python integers, so no size overflows."""
    need = math.prod(int(n) for n in shape) * bytes_per_value
    have = memory or physical_memory()
    if need > have:
        raise InputError(
            f"{what} needs {gib(need)}{detail}, more than this machine's memory ({gib(have)})"
        )
