"""Pre-flight costs: one real step of each distinct model, counted and timed, once per plan."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def cost_key(config: dict[str, Any]) -> str:
    """What a step's cost depends on: data, model, batch, optimizer, precision (not the lr)."""
    training = config["training"]
    return json.dumps(
        {
            "dataset": config["dataset"],
            "model": config["model"],
            "batch": training["batch_size"],
            "optimizer": training["optimizer"],
            "precision": training.get("precision"),
        },
        sort_keys=True,
        default=str,
    )


def step_costs(variants: Iterable[Any]) -> dict[str, Any]:
    """Variant id → its ``StepCost`` (one probe per distinct model), None where none ran."""
    from normbench.data.registry import load_split
    from normbench.train.step_cost import measure_step

    seen: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for v in variants:
        key = cost_key(v.config)
        if key not in seen:
            try:
                seen[key] = measure_step(v.config, load_split(v.config))
            except (Exception, SystemExit):  # a raise or the user's code's (os.)_exit: training
                seen[key] = None  # itself reports what is wrong with this model, as a failure
        out[v.id] = seen[key]
    return out
