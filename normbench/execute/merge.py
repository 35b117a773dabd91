"""Merge shard run directories into one run (torch-free): same suite required, results copied."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench import __version__, arith
from normbench.errors import InputError
from normbench.execute.plan import checked_result, suite_difference
from normbench.execute.signals import stop_on_signals
from normbench.results.store import (
    RESOLVED,
    RESULTS,
    RunDir,
    Warn,
    atomic_write_text,
    fresh_name,
    open_run_dir,
    pid_alive,
    read_bounded,
    result_name,
    stderr_warn,
    storage_error,
)

PREFERRED = {"ok": 0, "diverged": 1, "failed": 2}  # which duplicate to keep


@dataclass
class MergeOutcome:
    """What ``merge_runs`` produced: the merged run and how complete it is."""

    run_dir: RunDir
    records: list[dict[str, Any]] = field(default_factory=list)
    status: str = "complete"
    expected: int = 0
    duplicates: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return self.expected - len(self.records)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]


def _atomic_copy_text(src: Path, dst: Path) -> None:
    """Copy a text file (bounded: a FIFO or a huge file is refused) so that ``dst`` is never
    seen half-written."""
    atomic_write_text(dst, read_bounded(src, "suite file").decode("utf-8", errors="replace"))


def _check_same_suite(runs: Sequence[RunDir]) -> dict[str, Any]:
    """Every run's ``resolved.json`` must be identical; returns it, else raises with the change."""
    resolved = []
    for run in runs:
        data = run.read_resolved()
        if data is None:
            raise InputError(f"{run.path} has no {RESOLVED}, so it cannot be merged")
        resolved.append(data)
    for run, data in zip(runs[1:], resolved[1:], strict=True):
        if data != resolved[0]:
            why = (
                suite_difference(resolved[0], data)
                or _threads_difference(resolved[0], data)
                or "the resolved configuration differs"
            )
            raise InputError(
                f"cannot merge {run.path}: its suite differs from {runs[0].path}'s: {why}"
            )
    return resolved[0]


def _threads_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """``not bit-comparable: threads 1 vs 2`` when the same variants were planned differently."""

    def settings(resolved: dict[str, Any]) -> dict[str, Any]:
        training = [
            (v.get("config") or {}).get("training") or {} for v in resolved.get("variants", [])
        ]
        threads = sorted({t.get("threads") for t in training if t.get("threads") is not None})
        return {
            "threads": threads[0] if len(threads) == 1 else tuple(threads) or None,
            "reproducible": next((t.get("reproducible") for t in training), None),
        }

    return arith.not_bit_comparable(settings(a), settings(b))


def _check_same_kernels(runs: Sequence[RunDir], manifests: list[dict[str, Any]]) -> None:
    """Shards trained with other kernels (AVX512 vs AVX2) would mix two arithmetics in one run."""

    def kernels(manifest: dict[str, Any]) -> dict[str, Any]:
        # Which variants batch their seeds is decided per variant from the suite, so shards
        # holding different variants may differ in it without mixing arithmetics.
        return {**arith.signature(manifest), "batched": None}

    first = kernels(manifests[0])
    for run, manifest in zip(runs[1:], manifests[1:], strict=True):
        why = arith.not_bit_comparable(first, kernels(manifest))
        if why:
            raise InputError(
                f"cannot merge {run.path}: its results are {why} with "
                f"{runs[0].path}'s; run every shard with the same kernels "
                "(e.g. --reproducible on each) and merge again"
            )


def _pick(runs: Sequence[RunDir], variant_id: str, seed: int) -> tuple[dict[str, Any] | None, int]:
    """The best record of (variant, seed) across the runs, and how many distinct ones.

    The same shard given twice (or two identical copies) counts once. A result file that is
    not a complete, valid result (truncated, wrong types, a newer schema, no metrics, a FIFO)
    is refused with its name: merging around it would hide that a shard is damaged, and
    ``compare`` would refuse the merged run for it later.
    """
    found: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for run in runs:
        path = run.result_path(variant_id, seed)
        if not (path.exists() or path.is_symlink()):
            continue
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        record, why = checked_result(path, variant_id, seed)
        if record is None:
            raise InputError(
                f"cannot merge: {why}; nothing was written (remove the file, merge again, "
                "then --resume the merged run to compute that result anew)"
            )
        if record not in found:
            found.append(record)
    if not found:
        return None, 0
    return min(found, key=lambda r: PREFERRED.get(r["status"], 3)), len(found)


def _warn_strays(runs: Sequence[RunDir], resolved: dict[str, Any], warn: Warn) -> None:
    """Name the files in ``results/`` that are no result of the suite (``X-s0 (1).json``)."""
    names = {
        result_name(v["id"], seed)
        for v in resolved.get("variants", [])
        for seed in v.get("seeds", [])
    }
    for run in runs:
        for path in run.result_files():
            if path.name not in names:
                warn(f"{path} is not the name of a result of this suite (a copy?); ignored")


def _status(records: list[dict[str, Any]], expected: int) -> str:
    if len(records) < expected:
        return "interrupted"  # resumable: `normbench run SUITE --resume MERGED` fills the gaps
    return "failed" if any(r["status"] == "failed" for r in records) else "complete"


MERGING = ".merging-"  # a merge in progress writes here; never taken for a run


def _remove_abandoned(base: Path) -> None:
    """Delete what merges killed by SIGKILL left (their process is gone)."""
    for tmp in base.glob(MERGING + "*"):
        pid = tmp.name.removeprefix(MERGING).split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, manifest: dict[str, Any]) -> RunDir:
    """Write the manifest last, then rename the finished folder into place: a merge is seen
    whole or not at all (``run_id`` names the folder it ends up in)."""
    for _ in range(20):
        name = fresh_name()
        final = tmp.parent / name
        if final.exists():
            continue
        RunDir(tmp).write_manifest({**manifest, "run_id": name})
        try:
            os.rename(tmp, final)
        except OSError:  # taken in between by a run started the same second
            continue
        return RunDir(final)
    raise InputError(f"could not create a fresh run directory under {tmp.parent}")


def merge_runs(
    dirs: Sequence[Path], out: Path, command: list[str], warn: Warn | None = None
) -> MergeOutcome:
    """Combine shard run directories into a new run directory (``<out>/<suite>/…``).

    Built in a hidden folder and renamed into place when complete; SIGINT or SIGTERM (or a
    refused result file) removes the folder, so there is never a half-merged run.
    """
    if not dirs:
        raise InputError("merge needs at least one run directory")
    warn = warn or stderr_warn
    runs = [open_run_dir(Path(d)) for d in dirs]
    resolved = _check_same_suite(runs)
    manifests = [run.read_manifest() for run in runs]
    _check_same_kernels(runs, manifests)
    _warn_strays(runs, resolved, warn)
    name = resolved.get("suite", {}).get("name") or manifests[0].get("suite_name") or "merged"
    base = Path(out) / name  # like `run --out`: <out>/<suite>/<timestamp>-<id>
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, base, "create") from None
    _remove_abandoned(base)
    tmp = base / f"{MERGING}{os.getpid()}-{secrets.token_hex(3)}"
    with stop_on_signals(raise_interrupt=True):
        try:
            (tmp / RESULTS).mkdir(parents=True)
            outcome = _merge_into(RunDir(tmp), runs, resolved, manifests, command)
            outcome.run_dir = _publish(tmp, outcome.manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return outcome


def _merge_into(
    target: RunDir,
    runs: Sequence[RunDir],
    resolved: dict[str, Any],
    manifests: list[dict[str, Any]],
    command: list[str],
) -> MergeOutcome:
    """Copy suite, resolved configuration and the best result of each task into ``target``."""
    if (runs[0].path / "suite.yaml").is_file():
        _atomic_copy_text(runs[0].path / "suite.yaml", target.path / "suite.yaml")
    target.write_json(RESOLVED, resolved)
    outcome = MergeOutcome(target)
    for variant in resolved.get("variants", []):
        for seed in variant.get("seeds", []):
            outcome.expected += 1
            record, copies = _pick(runs, variant["id"], seed)
            outcome.duplicates += max(0, copies - 1)
            if record is not None:
                target.write_result(record)
                outcome.records.append(record)
    outcome.status = _status(outcome.records, outcome.expected)
    starts = [m["started"] for m in manifests if m.get("started")]
    base = manifests[0]
    outcome.manifest = {
        "schema_version": base.get("schema_version", 1),
        "normbench_version": base.get("normbench_version"),
        "merged_by": __version__,  # the shards' own versions are under merged_from
        "suite_name": base.get("suite_name"),
        "suite_file": base.get("suite_file"),
        "command": command,
        "started": min(starts) if starts else None,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": outcome.status,
        "environment": base.get("environment", {}),
        **({"arith": base["arith"]} if "arith" in base else {}),
        "tasks": outcome.expected,
        "merged_from": [
            {
                "path": str(run.path),
                "run_id": m.get("run_id", run.path.name),
                "normbench_version": m.get("normbench_version"),
                "schema_version": m.get("schema_version"),
                "shard": m.get("shard"),
                "status": m.get("status"),
                "started": m.get("started"),
                "environment": m.get("environment", {}),
            }
            for run, m in zip(runs, manifests, strict=True)
        ],
    }
    return outcome
