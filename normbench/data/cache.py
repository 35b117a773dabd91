"""Dataset cache: the cache directory, content keys, atomic .npz files and an in-process memo."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

# Bump when the layout of cached arrays changes, so stale files are never read back.
CACHE_FORMAT = 1

T = TypeVar("T")


def cache_root() -> Path:
    """The user cache directory: ``$NORMBENCH_CACHE``, else ``$XDG_CACHE_HOME/normbench``,
    else ``~/.cache/normbench``."""
    explicit = os.environ.get("NORMBENCH_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "normbench"


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_signature(paths: Iterable[Path]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` per source file: a changed file means a new cache key."""
    out: list[list[Any]] = []
    for path in paths:
        st = path.stat()
        out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


CHECKSUM = "_checksum"  # the cache file's own entry: sha256 of every other array


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if k != CHECKSUM):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """All arrays of a cached .npz, or ``None`` when it is absent, unreadable or does not
    match the checksum written with it (changed on disk): the caller then rebuilds it."""
    if not path.is_file():  # follows links: a FIFO or a device is no cache file
        return None
    try:
        # allow_pickle=False: nothing read from disk is ever unpickled.
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    stored = arrays.pop(CHECKSUM, None)
    if stored is None or str(stored) != arrays_checksum(arrays):
        if stored is not None:
            warnings.warn(
                f"normbench: dataset cache {path} does not match its checksum (changed "
                "since it was written); it is rebuilt",
                stacklevel=2,
            )
        return None
    return arrays


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` (and their checksum) to ``path`` via a temp file + ``os.replace``;
    False if not writable.

    Readers (other worker processes) therefore see either no file or a complete one.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            # uncompressed: reading back is then close to memcpy
            np.savez(handle, **arrays, **{CHECKSUM: np.array(arrays_checksum(arrays))})
        os.replace(tmp_name, path)
        return True
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        # A read-only cache only costs speed, so it is a warning rather than an error.
        warnings.warn(f"normbench: could not write dataset cache {path}: {exc}", stacklevel=2)
        return False


class Memo(Generic[T]):
    """A small LRU map: repeated loads in one process are free, yet a sweep over many
    large datasets does not keep all of them alive."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: T) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
