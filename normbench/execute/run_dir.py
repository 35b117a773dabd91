"""A run directory's manifest: created, reopened by ``--resume``, closed with a status."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normbench import __version__
from normbench.execute.plan import remove_stale_temp_files
from normbench.execute.run_plan import RunPlan, tasks_of
from normbench.results.store import RunDir, atomic_write_text, create_run_dir
from normbench.spec import Suite


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_run(
    suite: Suite, out: Path, command: list[str] | None = None, extra: dict[str, Any] | None = None
) -> RunDir:
    """Create the run directory and write ``suite.yaml``, ``resolved.json`` and the manifest."""
    from normbench.results.environment import capture

    devices = {v.config["training"]["device"] for v in suite.variants}
    environment = capture(devices.pop() if len(devices) == 1 else "auto")
    planned = [v.config["training"].get("threads") for v in suite.variants]
    if planned and all(isinstance(t, int) for t in planned):  # what each task trains with
        environment["threads"] = max(planned)
    run_dir = create_run_dir(Path(out), suite.name)
    atomic_write_text(run_dir.path / "suite.yaml", suite.text)
    run_dir.write_json("resolved.json", suite.resolved())
    run_dir.write_manifest(
        {
            "schema_version": 1,
            "normbench_version": __version__,
            "run_id": run_dir.path.name,  # a copy of the folder is told from the run by it
            "suite_name": suite.name,
            "suite_file": suite.file,
            "command": command or sys.argv,
            "started": _now(),
            "finished": None,
            "status": "running",
            "environment": environment,
            "tasks": len(tasks_of(suite)),
            **(extra or {}),
        }
    )
    return run_dir


def finish_run(run_dir: RunDir, status: str) -> None:
    """Record the final status and end time in the manifest."""
    manifest = run_dir.read_manifest()
    manifest.update(status=status, finished=_now())
    run_dir.write_manifest(manifest)


def reopen(plan: RunPlan) -> RunDir:
    """Mark a resumed run as running again, noting this resumption in its manifest."""
    run_dir = plan.resume_dir
    assert run_dir is not None
    remove_stale_temp_files(run_dir.path)  # left by a writer that was killed mid-write
    manifest = run_dir.read_manifest()
    manifest.setdefault("resumes", []).append(
        {
            "started": _now(),
            "command": plan.command,
            "previous_status": manifest.get("status"),
            "already_done": len(plan.done),
            "execution": plan.execution(),
        }
    )
    manifest.update(status="running", finished=None)
    run_dir.write_manifest(manifest)
    return run_dir
