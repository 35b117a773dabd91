"""Run-directory store: atomic JSON writes, manifest and results, tolerant reading (torch-free)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench.errors import InputError
from normbench.results.records import ResultRecord

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RESOLVED = "resolved.json"
RESULTS = "results"
REQUIRED_RESULT_KEYS = ("variant_id", "seed", "status")

Warn = Callable[[str], None]
MIN_FREE_BYTES = 16 * 2**20  # refuse to start a run on a disk with less room than this
LOCK = ".normbench.lock"


class StorageError(InputError):
    """A write failed (disk full, no permission): the run stops, finished results stay."""


def storage_error(exc: OSError, path: Path, doing: str = "write") -> StorageError:
    """One sentence for a failed write, naming the file and what to do."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        why = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied" if exc.errno != errno.EROFS else "the file system is read-only"
    else:
        why = exc.strerror or str(exc)
    return StorageError(f"cannot {doing} {path}: {why}")


def check_output_dir(path: Path, what: str) -> None:
    """Before any work: ``path`` must be (or be creatable as) a writable directory with room."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise StorageError(f"{what} {path}: {existing} is a file, not a directory")
    # Nothing is created here (a refused run leaves no trace); a probe file tests the
    # nearest existing directory, which catches read-only mounts that os.access misses.
    try:
        probe = existing / f".probe.{os.getpid()}.{secrets.token_hex(3)}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise storage_error(exc, path, f"write to {what}") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise StorageError(
            f"{what} {path} has only {free // 2**20} MiB free; normbench needs at "
            f"least {MIN_FREE_BYTES // 2**20} MiB to store a run"
        )


def check_output_file(path: Path, what: str) -> None:
    """Before any work: ``path`` must be a file that can be written (not a directory)."""
    path = Path(path)
    if path.is_dir():
        raise StorageError(f"{what} {path} is a directory, not a file")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise StorageError(f"{what} {path}: {parent} is a file, not a directory")
    if not parent.exists():
        raise StorageError(f"{what} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise StorageError(f"cannot write {what} {path}: permission denied")


def stderr_warn(message: str) -> None:
    """Default warning sink: one line on stderr, in the CLI's format."""
    from normbench.naming import printable  # no control character drives the terminal

    print(f"normbench: warning: {printable(message)}", file=sys.stderr)


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
    text = json.dumps(obj, indent=indent, default=_json_default, allow_nan=True) + "\n"
    atomic_write_text(path, text)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file + ``os.replace``); a failed write is a ``StorageError``.

    Every file normbench writes goes through here (or ``atomic_write_json``), so a full disk
    or a missing permission is one sentence, and the old file, if any, is left untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(exc, path) from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


# No file normbench wrote is near this (a 100k-step run's result is a few MB); a bigger one is
# not ours, and reading it whole could take all memory.
MAX_READ_BYTES = 256 * 2**20
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotAFile(InputError):
    """A path that is no regular file of sensible size (a FIFO, a device, a 10 GB file):
    refused wherever it is met, never skipped as if it were a damaged result."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bounded(path: Path, what: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ``InputError`` naming it.

    A FIFO, a device (a result symlinked to ``/dev/zero``) or a directory is refused before a
    byte is read: the file is opened without blocking (a FIFO with no writer would wait for
    ever) and checked with ``fstat`` on that very descriptor (no race with a swap).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile(f"{path} is {_kind(st.st_mode)}, not a {what}: refused")
        raise NotAFile(_too_big(path, what, st.st_size, limit))
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew while being read
        raise NotAFile(_too_big(path, what, len(data), limit))
    return data


def _too_big(path: Path, what: str, size: int, limit: int) -> str:
    return (
        f"{path} is {size / 2**20:,.0f} MiB, larger than any {what} normbench writes "
        f"(at most {limit // 2**20} MiB): refused"
    )


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file or raise ``InputError`` naming it and what it should have been.

    Bounded (``read_bounded``): a huge file, a FIFO or a device is refused, never read whole.
    """
    text = read_bounded(path, what).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # A file cut off mid-write no longer ends with its closing bracket.
        kind = "corrupt" if text.rstrip().endswith(("}", "]")) else "truncated"
        raise InputError(
            f"{path} is not a valid {what} ({kind} JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # a 5000-digit integer, 100,000 nested lists
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise InputError(f"{path} is not a valid {what} ({why})") from None


STATUSES = ("ok", "diverged", "failed")
# key → the JSON types it may hold; every reader (report, compare, merge, --resume) relies on them
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "variant_id": (str,),
    "seed": (int,),
    "status": (str,),
    "variant_name": (str,),
    "params": (dict,),
    "config": (dict,),
    "error": (str, type(None)),
    "diverged_at_step": (int, type(None)),
    "curves": (dict,),
    "metrics": (dict,),
    "targets": (dict,),
    "timing": (dict,),
    "diagnostics": (dict,),
    "schema_version": (int,),
}
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", type(None): "null"}


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def plain_id(value: Any) -> bool:
    """Whether a variant id can be part of a file name here: no separator, no leading dot,
    nothing a shell or a file system treats specially (ids normbench makes are 10 hex)."""
    return isinstance(value, str) and bool(_PLAIN_ID.fullmatch(value))


_PLAIN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_=,+.-]{0,199}")


def result_problem(record: Any) -> str | None:
    """Why ``record`` is not a valid result record (types included), or ``None`` when it is."""
    if not isinstance(record, dict):
        return "a JSON object was expected"
    missing = [k for k in REQUIRED_RESULT_KEYS if k not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    for key, types in RESULT_TYPES.items():
        value = record.get(key)
        if key not in record or (isinstance(value, bool) and bool not in types):
            if key in record:
                return f"'{key}' is {str(value).lower()}, expected {_TYPE_NAMES[types[0]]}"
            continue
        if not isinstance(value, types):
            wanted = " or ".join(_TYPE_NAMES[t] for t in types)
            return f"'{key}' is a {type(value).__name__}, expected {wanted}"
    if not plain_id(record["variant_id"]):
        return f"'variant_id' is {record['variant_id'][:40]!r}, not a plain name (a path?)"
    if record["status"] not in STATUSES:
        return f"'status' is {record['status']!r}, expected one of {', '.join(STATUSES)}"
    if record["seed"] < 0:
        return f"'seed' is {record['seed']}, expected a non-negative integer"
    bad = next((k for k, v in record.get("metrics", {}).items() if not _is_number(v)), None)
    if bad is not None:
        return f"metric '{bad}' is {record['metrics'][bad]!r}, expected a number or null"
    for name, curve in record.get("curves", {}).items():
        if not isinstance(curve, list) or not all(_is_number(v) for v in curve):
            return f"curve '{name}' must be a list of numbers"
    return None


# Every finished (ok or diverged) record carries these, null when they do not apply.
CORE_METRICS = (
    "final_test_acc",
    "best_test_acc",
    "final_test_loss",
    "final_train_loss",
    "samples_per_sec",
    "ms_per_step",
    "train_seconds",
)


def missing_metrics(record: dict[str, Any]) -> list[str]:
    """The core metrics a finished record lacks (a failed one has none to lack)."""
    if record.get("status") == "failed":
        return []
    return [m for m in CORE_METRICS if m not in record.get("metrics", {})]


def check_result(record: Any, path: Path) -> ResultRecord:
    """Validate a result record against its schema (types included); ``InputError`` otherwise."""
    if isinstance(record, dict):
        version = record.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise InputError(
                f"{path} has result schema_version {version}, newer than this "
                f"normbench understands ({SCHEMA_VERSION}): upgrade normbench"
            )
    problem = result_problem(record)
    if problem is not None:
        raise InputError(f"{path} is not a valid result file ({problem})")
    return record


def result_name(variant_id: str, seed: int) -> str:
    """File name of one variant × seed result."""
    return f"{variant_id}-s{seed}.json"


class MisnamedResult(InputError):
    """A valid record under a name that is not its own (``X-s0 (1).json``): not counted."""


def load_result(path: Path) -> ResultRecord:
    """One result file, validated, and only under its own name: a file-manager copy
    (``X-s0 (1).json``, ``X-s0.json.json``) would otherwise count as one more seed."""
    record = check_result(read_json(path, "result file"), path)
    own = result_name(record["variant_id"], record["seed"])
    if Path(path).name != own:
        raise MisnamedResult(
            f"{path} holds the result {own} under another name (a copy?); "
            f"only {own} counts, so it is ignored"
        )
    return record


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
            raise InputError(
                f"{self.path / MANIFEST} is not a valid manifest (a JSON object was expected)"
            )
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
        if not isinstance(data, dict):
            return None
        variants = data.get("variants", [])
        if (
            not isinstance(data.get("suite", {}), dict)
            or not isinstance(variants, list)
            or not all(
                isinstance(v, dict)
                and isinstance(v.get("id"), str)
                and isinstance(v.get("seeds", []), list)
                and all(type(seed) is int and seed >= 0 for seed in v.get("seeds", []))
                for v in variants
            )
        ):
            raise InputError(
                f"{path} is not a valid resolved suite (wrong types in 'suite' or 'variants')"
            )
        bad = next((v["id"] for v in variants if not plain_id(v["id"])), None)
        if bad is not None:  # ids become file names: '../x' would read or write elsewhere
            raise InputError(
                f"{path} is not a valid resolved suite (variant id {bad[:40]!r} is not a "
                "plain name)"
            )
        return data

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

    def iter_results(
        self, strict: bool = False, warn: Warn | None = None
    ) -> Iterator[ResultRecord]:
        """Yield every valid result record.

        A corrupt or truncated file (e.g. a run killed mid-write by an old version, or a
        copy gone wrong) is skipped with a warning naming it, so one bad file does not hide
        a whole run; under ``strict`` it raises ``InputError`` instead. A FIFO, a device or
        a huge file is always refused (``NotAFile``); a valid record under another name
        than its own (a copy) is ignored with a warning.
        """
        warn = warn or stderr_warn
        for path in self.result_files():
            try:
                record = load_result(path)
            except MisnamedResult as exc:  # the record counts under its own name, if there
                warn(str(exc))
                continue
            except NotAFile:  # planted, not damaged: reading on would hide it
                raise
            except InputError as exc:
                if strict:
                    raise InputError(f"{exc} (--strict)") from None
                warn(f"{exc}; skipped")
                continue
            lacking = missing_metrics(record)
            if lacking:
                message = f"{path} lacks the metrics {', '.join(lacking)}"
                if strict:
                    raise InputError(f"{message} (--strict)")
                warn(f"{message}; its variant shows no value for them")
            yield record

    def to_pandas(self, curves: bool = True, strict: bool = False) -> Any:
        """A pandas DataFrame: one row per variant × seed × eval point (``curves=False``: one
        per variant × seed with every metric), the swept keys as columns. Needs pandas."""
        from normbench.results.tidy import rows_for, to_dataframe

        return to_dataframe(rows_for(self.iter_results(strict=strict), curves))


def fresh_name() -> str:
    """``<UTC timestamp>-<4 hex>``: sortable, and unique when two runs start the same second."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def create_run_dir(out: Path, suite_name: str) -> RunDir:
    """Create ``<out>/<suite>/<timestamp>-<short>/results`` and return it."""
    base = Path(out) / suite_name
    for _ in range(20):
        path = base / fresh_name()
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
        mode = path.stat().st_mode
        kind = "a file" if stat.S_ISREG(mode) else _kind(mode)
        raise InputError(f"{path} is not a normbench run directory (it is {kind})")
    if not (path / MANIFEST).is_file():
        raise InputError(f"{path} is not a normbench run directory (no {MANIFEST})")
    return RunDir(path)


def tracked_by_git(run_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` in ``run_dir`` git tracks (committed files); [] without git or a repo."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *names],
            cwd=run_dir,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.stdout.splitlines() if line] if out.returncode == 0 else []


RUNS = Path("reports/runs")  # where `run` writes by default, so where `latest` looks


def suite_of(run_dir: Path) -> str | None:
    """The suite name a run directory records in its manifest (None if it cannot be read)."""
    from normbench.errors import NormbenchError

    try:
        return read_json(Path(run_dir) / MANIFEST, "manifest")["suite_name"]
    except (NormbenchError, KeyError, TypeError):
        return None


def resolve_run_path(arg: str | Path, suite: str | None = None, runs: Path = RUNS) -> Path:
    """A run directory argument: ``latest`` is the newest run under reports/runs (of ``suite``).

    The one rule for the CLI and ``normbench.load_run``; a directory really named ``latest``
    wins.
    """
    if str(arg) != "latest" or Path(arg).exists():
        return Path(arg)
    try:
        return latest_run_dir(runs, suite).path
    except InputError as exc:
        raise InputError(
            f"'latest': {exc} (run a suite first, e.g. normbench run suites/quickstart.yaml)"
        ) from None


RUN_NAME = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")  # what ``fresh_name`` makes


def _stamp(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_time(manifest: dict[str, Any]) -> datetime | None:
    """When a run last did something, by its manifest: started, finished or resumed."""
    resumes = manifest.get("resumes")
    times = [manifest.get("started"), manifest.get("finished")] + [
        r.get("started")
        for r in (resumes if isinstance(resumes, list) else [])
        if isinstance(r, dict)
    ]
    stamps = [t for t in map(_stamp, (x for x in times if x)) if t is not None]
    return max(stamps, default=None)


def copied_from(path: Path, manifest: dict[str, Any]) -> str | None:
    """The run a directory is a copy of (its manifest names another directory), else None.

    A run records its own directory name (``run_id``); a copy or a renamed folder keeps the
    original's manifest, so its name disagrees. Runs made before ``run_id`` count as their
    own when their name is one normbench makes.
    """
    own = manifest.get("run_id")
    if isinstance(own, str):
        return None if own == path.name else own
    return None if RUN_NAME.fullmatch(path.name) else "an unrecorded run"


def latest_run_dir(out: Path, suite_name: str | None = None) -> RunDir:
    """The most recent run under ``<out>/<suite>`` (or under ``<out>`` for any suite).

    Most recent by the manifests' own timestamps, not by directory name or mtime; a copied or
    renamed run (``copied_from``) is never chosen, so ``--resume latest`` cannot write into
    a copy. Equal times (runs made the same second) fall back to the directory name.
    """
    base = Path(out) / suite_name if suite_name else Path(out)
    pattern = "*/" + MANIFEST if suite_name else "*/*/" + MANIFEST
    candidates: list[tuple[datetime, str, Path]] = []
    copies: list[str] = []
    for manifest_path in base.glob(pattern):
        path = manifest_path.parent
        if path.name.startswith("."):  # a merge or write in progress
            continue
        try:
            manifest = read_json(manifest_path, "manifest")
        except InputError:
            continue
        if not isinstance(manifest, dict):
            continue
        if copied_from(path, manifest) is not None:
            copies.append(str(path))
            continue
        when = run_time(manifest) or datetime.min.replace(tzinfo=timezone.utc)
        candidates.append((when, path.name, path))
    if not candidates:
        extra = (
            f" ({len(copies)} copied or renamed run{'s' * (len(copies) > 1)} there, e.g. "
            f"{copies[0]}, are not taken as latest: name one explicitly)"
            if copies
            else ""
        )
        raise InputError(f"no normbench run directory under {base}{extra}")
    return RunDir(max(candidates)[2])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory while a process writes into it.

    ``flock`` on ``.normbench.lock`` (released by the kernel when its holder dies, even by
    ``kill -9``), and the holder's pid inside it for the message. A lock file whose pid is gone
    is stale: it is taken over with a note on ``warn``.
    """

    def __init__(self, run_dir: Path, warn: Warn | None = None) -> None:
        self.path = Path(run_dir) / LOCK
        self.warn = warn or stderr_warn
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _holder(self) -> int | None:
        try:
            text = read_bounded(self.path, "lock file", 64).decode(errors="replace").split()
            return int(text[0]) if text else None
        except (InputError, ValueError):
            return None

    def _open(self, flags: int) -> int:
        """The lock file's descriptor; anything but a regular file there (a FIFO would block,
        a link to a device cannot be truncated) is one sentence asking to remove it."""
        nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags | nofollow, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
                raise InputError(self._not_a_lock("a symbolic link")) from None
            raise storage_error(exc, self.path, "lock") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise InputError(self._not_a_lock(_kind(mode)))
        return fd

    def _not_a_lock(self, kind: str) -> str:
        return (
            f"{self.path} is {kind}, not normbench's lock file: remove it, then retry "
            "(no normbench process made it)"
        )

    def acquire(self) -> None:
        fd = self._open(os.O_RDWR | os.O_CREAT)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): the pid alone decides
            holder = self._holder()
            if holder is not None and holder != os.getpid() and pid_alive(holder):
                os.close(fd)
                raise self._busy(holder) from None
        except OSError:
            os.close(fd)
            raise self._busy(self._holder()) from None
        holder = self._holder()
        if holder is not None and holder != os.getpid():
            state = "no longer running" if not pid_alive(holder) else "it let go of it"
            self.warn(f"{self.path.parent}: took over the lock of process {holder} ({state})")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def check(self) -> None:
        """``InputError`` now if another process holds the lock (changes nothing on disk)."""
        if not (self.path.exists() or self.path.is_symlink()):
            return
        try:
            import fcntl
        except ImportError:
            return
        fd = self._open(os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            raise self._busy(self._holder()) from None
        finally:
            os.close(fd)

    def _busy(self, holder: int | None) -> InputError:
        who = f"process {holder}" if holder else "another process"
        return InputError(
            f"{self.path.parent} is in use by {who} (a run or --resume is writing "
            f"into it); wait for it to finish or stop it, then retry"
        )

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)  # an empty lock file: released cleanly, nothing stale
        os.close(self.fd)
        self.fd = None
