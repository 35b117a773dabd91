"""Training budgets in epochs, the batching mode, and keeping variant ids of older suites.

``training.epochs`` is the alternative to ``training.steps``: the loop still counts steps, so an
epoch budget is turned into ``steps = ceil(epochs × n_train / batch_size)`` when the suite is
resolved (at least ``epochs × n_train`` samples are drawn), where ``n_train`` is the size of the
training split after ``limit_train`` and ``domains``. ``eval_every_epochs`` likewise becomes
``eval_every = max(1, round(eval_every_epochs × n_train / batch_size))``. Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from normbench.errors import OptionError

DEFAULT_STEPS = 1000

# Keys added after 0.1.0, dropped from a resolved config while they hold their default, so a
# suite that does not use them keeps the variant ids (and comparable baselines) it had.
NEW_DEFAULTS: dict[str, dict[str, Any]] = {
    "dataset": {"domains": 1},
    "model": {
        "dropout": 0.0,
        "bidirectional": False,
        "fused": False,
        "target": None,
        "options": None,
        "swap": None,
    },
    "training": {
        "epochs": None,
        "eval_every_epochs": None,
        "batches": "mixed",
        "warmup_steps": 0,
        "warmup_fraction": None,
        "lr_floor": 0.0,
    },
}
# The same for keys of a mapping inside a section.
NEW_NESTED_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("training", "optimizer"): {"decay": "all"},
}
DOMAIN_KEYS = ("domain_scale", "domain_offset")  # meaningless with one domain


def steps_for_epochs(epochs: float, n_train: int, batch_size: int) -> int:
    """Steps that draw at least ``epochs`` passes over ``n_train`` samples (rounded up)."""
    # round() first so that 0.1 × 4000 / 100 = 4.000000000000001 does not become 5 steps.
    return max(1, math.ceil(round(epochs * n_train / batch_size, 9)))


def eval_every_for_epochs(epochs: float, n_train: int, batch_size: int) -> int:
    """Steps between evaluations for an interval given in epochs (nearest, at least 1)."""
    return max(1, round(epochs * n_train / batch_size))


def resolve_budget(training: dict[str, Any], given: set[str], dataset: dict[str, Any]) -> None:
    """Fill ``steps`` (and ``eval_every``) in place from ``epochs`` / ``eval_every_epochs``.

    ``given`` holds the training keys the suite wrote. ``OptionError`` (path below
    ``training``) when both forms of the same budget are given.
    """
    if "epochs" in given and "steps" in given:
        raise OptionError(
            "give the budget as steps: or as epochs:, not both (epochs: E means "
            "steps = ceil(E × training samples / batch_size))",
            ("epochs",),
        )
    if "warmup_steps" in given and "warmup_fraction" in given:
        raise OptionError(
            "give warm-up as warmup_steps: or warmup_fraction:, not both", ("warmup_fraction",)
        )
    if "eval_every_epochs" in given and "eval_every" in given:
        raise OptionError(
            "give eval_every: (steps) or eval_every_epochs:, not both", ("eval_every_epochs",)
        )
    uses_epochs = (
        training.get("epochs") is not None or training.get("eval_every_epochs") is not None
    )
    if not uses_epochs:
        if training.get("steps") is None:
            training["steps"] = DEFAULT_STEPS
        return
    from normbench.data.registry import train_size  # numpy only; may read a data file

    n = train_size(dataset)
    batch = training["batch_size"]
    training["train_samples"] = n
    if training.get("epochs") is not None:
        training["steps"] = steps_for_epochs(training["epochs"], n, batch)
    elif training.get("steps") is None:
        training["steps"] = DEFAULT_STEPS
    if training.get("eval_every_epochs") is not None:
        training["eval_every"] = eval_every_for_epochs(training["eval_every_epochs"], n, batch)


def check_batches(training: dict[str, Any], dataset: dict[str, Any]) -> None:
    """``batches: per_domain`` needs a dataset that records two domains."""
    if training.get("batches") == "per_domain" and dataset.get("domains", 1) != 2:
        raise OptionError(
            "per_domain batches need a dataset with two domains: set dataset "
            "domains: 2 (or use batches: mixed)",
            ("batches",),
        )


def drop_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Remove the post-0.1.0 keys that hold their default (see ``NEW_DEFAULTS``), in place."""
    for section, defaults in NEW_DEFAULTS.items():
        part = config.get(section)
        if not isinstance(part, dict):
            continue
        if section == "dataset" and part.get("domains", 1) == 1:
            for key in DOMAIN_KEYS:
                part.pop(key, None)
        for key, default in defaults.items():
            if key in part and part[key] == default and type(part[key]) is type(default):
                part.pop(key)
    for (section, key), defaults in NEW_NESTED_DEFAULTS.items():
        part = (config.get(section) or {}).get(key)
        if isinstance(part, dict):
            for name, default in defaults.items():
                if part.get(name, default) == default:
                    part.pop(name, None)
    return config
