"""Run (variant, seed) tasks in this process, one after another, writing each result atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from normbench.spec import Variant

OnResult = Callable[[dict[str, Any]], None]
OnProgress = Callable[[str, int, int, int], None]  # task key, step, total steps, seed


@dataclass(frozen=True)
class Task:
    """One unit of work: a variant and a seed."""

    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        return f"{self.variant.id}-s{self.seed}"


def load_split(config: dict[str, Any]) -> Any:
    """The variant's data, viewed for its model kind (cached by the data registry)."""
    from normbench.data.registry import load_dataset, view_for_model

    return view_for_model(load_dataset(config["dataset"]), config["model"]["kind"])


def make_probes(config: dict[str, Any]) -> list[Any]:
    """The diagnostics probes the variant asked for (none: the loop's fast path)."""
    if not config.get("diagnostics"):
        return []
    from normbench.train.probes import build_probes

    return build_probes(config["diagnostics"], config)


def run_task(task: Task, on_progress: OnProgress | None = None) -> dict[str, Any]:
    """Train one task and return its record; data errors become a ``failed`` record too."""
    from normbench.train.loop import SCHEMA_VERSION, run_variant

    variant = task.variant
    meta = {"variant_id": variant.id, "variant_name": variant.name, "params": variant.params}
    try:
        split = load_split(variant.config)
        probes = make_probes(variant.config)
    except Exception as exc:  # reported as a failed variant; the suite goes on
        return {"schema_version": SCHEMA_VERSION, **meta, "seed": task.seed, "config": variant.config,
                "status": "failed", "error": f"{type(exc).__name__}: {exc}", "curves": {},
                "metrics": {}, "targets": {}, "timing": {}, "diagnostics": {}}

    def progress(step: int, total: int, *_: Any) -> None:
        if on_progress is not None:
            on_progress(task.key, step, total, task.seed)

    return run_variant(variant.config, task.seed, split, probes=probes, on_progress=progress, meta=meta)


def run_serial(tasks: Iterable[Task], on_result: OnResult, on_progress: OnProgress | None = None) -> None:
    """Run tasks one by one in this process; ``on_result`` stores each record as it finishes."""
    for task in tasks:
        on_result(run_task(task, on_progress))
