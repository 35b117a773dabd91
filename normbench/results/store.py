"""Run-directory store: atomic JSON writes, manifest and result files, tolerant reading (torch-free)."""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from normbench.errors import InputError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RESOLVED = "resolved.json"
RESULTS = "results"
REQUIRED_RESULT_KEYS = ("variant_id", "seed", "status")

Warn = Callable[[str], None]


def stderr_warn(message: str) -> None:
    """Default warning sink: one line on stderr, in the CLI's format."""
    print(f"normbench: warning: {message}", file=sys.stderr)


def _json_default(obj: Any) -> Any:
    """Serialise numpy scalars/arrays and paths without importing numpy here."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 1) -> None:
    """Write JSON so that readers see either the old file or the complete new one, never half.

    The temp file lives in the same directory (``os.replace`` is only atomic within a
    filesystem) and starts with a dot so ``iter_results`` never picks it up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=indent, default=_json_default, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file or raise ``InputError`` naming it and what it should have been."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # A file cut off mid-write no longer ends with its closing bracket.
        kind = "corrupt" if text.rstrip().endswith(("}", "]")) else "truncated"
        raise InputError(f"{path} is not a valid {what} ({kind} JSON: {exc.msg} at line "
                         f"{exc.lineno} column {exc.colno})") from None


def check_result(record: Any, path: Path) -> dict[str, Any]:
    """Validate the few keys every consumer relies on; ``InputError`` otherwise."""
    if not isinstance(record, dict):
        raise InputError(f"{path} is not a valid result file (a JSON object was expected)")
    missing = [k for k in REQUIRED_RESULT_KEYS if k not in record]
    if missing:
        raise InputError(f"{path} is not a valid result file (missing {', '.join(missing)})")
    version = record.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise InputError(f"{path} has result schema_version {version}, newer than this normbench "
                         f"understands ({SCHEMA_VERSION}): upgrade normbench")
    return record


def result_name(variant_id: str, seed: int) -> str:
    """File name of one variant × seed result."""
    return f"{variant_id}-s{seed}.json"


class RunDir:
    """One run directory: ``manifest.json``, ``resolved.json``, ``results/`` and the report."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def results_dir(self) -> Path:
        return self.path / RESULTS

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` atomically (called at start and again at the end)."""
        atomic_write_json(self.path / MANIFEST, manifest)

    def read_manifest(self) -> dict[str, Any]:
        """The manifest; ``InputError`` when it is missing or not JSON."""
        data = read_json(self.path / MANIFEST, "manifest")
        if not isinstance(data, dict):
            raise InputError(f"{self.path / MANIFEST} is not a valid manifest (a JSON object was expected)")
        return data

    def write_json(self, name: str, obj: Any) -> Path:
        """Write any top-level JSON file of the run (``resolved.json``, ``summary.json``)."""
        path = self.path / name
        atomic_write_json(path, obj)
        return path

    def read_resolved(self) -> dict[str, Any] | None:
        """``resolved.json`` if present, else ``None`` (older or partial runs may lack it)."""
        path = self.path / RESOLVED
        if not path.exists():
            return None
        data = read_json(path, "resolved suite")
        return data if isinstance(data, dict) else None

    def result_path(self, variant_id: str, seed: int) -> Path:
        return self.results_dir / result_name(variant_id, seed)

    def has_result(self, variant_id: str, seed: int) -> bool:
        """Whether this variant × seed finished (used by ``--resume``)."""
        return self.result_path(variant_id, seed).exists()

    def write_result(self, record: dict[str, Any]) -> Path:
        """Write one result record atomically under ``results/``."""
        path = self.result_path(record["variant_id"], record["seed"])
        atomic_write_json(path, record)
        return path

    def result_files(self) -> list[Path]:
        """Result files in a stable order; dot-files are temp files of writes in progress."""
        if not self.results_dir.is_dir():
            return []
        return sorted(p for p in self.results_dir.glob("*.json") if not p.name.startswith("."))

    def iter_results(self, strict: bool = False, warn: Warn | None = None) -> Iterator[dict[str, Any]]:
        """Yield every valid result record.

        A corrupt or truncated file (e.g. a run killed mid-write by an old version, or a
        copy gone wrong) is skipped with a warning naming it, so one bad file does not hide
        a whole run; under ``strict`` it raises ``InputError`` instead.
        """
        warn = warn or stderr_warn
        for path in self.result_files():
            try:
                yield check_result(read_json(path, "result file"), path)
            except InputError as exc:
                if strict:
                    raise InputError(f"{exc} (--strict)") from None
                warn(f"{exc}; skipped")

    def to_pandas(self, curves: bool = True, strict: bool = False) -> Any:
        """A pandas DataFrame: one row per variant × seed × eval point (``curves=False``: one
        per variant × seed with every metric), the swept keys as columns. Needs pandas."""
        from normbench.results.tidy import rows_for, to_dataframe

        return to_dataframe(rows_for(self.iter_results(strict=strict), curves))


def _fresh_name() -> str:
    """``<UTC timestamp>-<4 hex>``: sortable, and unique when two runs start the same second."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def create_run_dir(out: Path, suite_name: str) -> RunDir:
    """Create ``<out>/<suite>/<timestamp>-<short>/results`` and return it."""
    base = Path(out) / suite_name
    for _ in range(20):
        path = base / _fresh_name()
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        (path / RESULTS).mkdir()
        return RunDir(path)
    raise InputError(f"could not create a fresh run directory under {base}")


def open_run_dir(path: Path) -> RunDir:
    """Open an existing run directory; ``InputError`` with a clear sentence otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is not a normbench run directory (it is a file)")
    if not (path / MANIFEST).is_file():
        raise InputError(f"{path} is not a normbench run directory (no {MANIFEST})")
    return RunDir(path)


def latest_run_dir(out: Path, suite_name: str | None = None) -> RunDir:
    """The most recent run under ``<out>/<suite>`` (or under ``<out>`` for any suite)."""
    base = Path(out) / suite_name if suite_name else Path(out)
    pattern = "*/" + MANIFEST if suite_name else "*/*/" + MANIFEST
    runs = sorted(base.glob(pattern), key=lambda p: p.parent.name)
    if not runs:
        raise InputError(f"no normbench run directory under {base}")
    return RunDir(runs[-1].parent)


def finite_or_none(value: Any) -> float | None:
    """A JSON number as float, or ``None`` for null, NaN, ±inf, bools and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
