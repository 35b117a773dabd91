"""The models pre-flight: build each custom (or probed) model and run one batch before training."""

from __future__ import annotations

import json
from typing import Any

from normbench.errors import InputError
from normbench.spec import Suite


def _needs_preflight(config: dict[str, Any]) -> bool:
    """Custom models and datasets, and probes addressed by module path, are checked on data."""
    diags = config.get("diagnostics") or {}
    paths = isinstance((diags.get("activations") or {}).get("layer"), str) or any(
        isinstance(x, str) for x in (diags.get("ics") or {}).get("layers") or []
    )
    return config["model"]["kind"] == "custom" or config["dataset"]["name"] == "custom" or paths


def check_models(suite: Suite, variants: list[Any] | None = None) -> dict[str, Any]:
    """The pre-flight stage: build each custom model and run one batch, before training.

    Returns variant id → ``ModelCheck`` for custom models. A factory that raises, returns
    no module or the wrong output shape, a norm that cannot replace a layer, a probe path
    the model lacks: a located ``SuiteError`` (exit 2), and nothing has been trained yet.
    """
    from normbench.errors import OptionError, SuiteError
    from normbench.execute.local import load_split

    checks: dict[str, Any] = {}
    done: dict[str, Any] = {}
    for variant in suite.variants if variants is None else variants:
        config = variant.config
        if not _needs_preflight(config):
            continue
        key = json.dumps(
            {k: config[k] for k in ("dataset", "model", "diagnostics")}
            | {"batch": config["training"]["batch_size"]},
            sort_keys=True,
            default=str,
        )
        try:
            if key not in done:
                split = load_split(config)
                done[key] = _preflight_one(config, split)
            if done[key] is not None:
                checks[variant.id] = done[key]
        except OptionError as exc:
            prefix = f"variant '{variant.name}': " if suite.grid_keys else ""
            raise _locate(suite, variant, OptionError(prefix + exc.message, exc.path)) from None
        except InputError as exc:
            raise SuiteError(str(exc).rstrip("."), file=suite.file, path=("dataset",)) from None
    return checks


def _preflight_one(config: dict[str, Any], split: Any) -> Any:
    from normbench.models import build
    from normbench.models.custom import check_probe_paths, preflight

    if config["model"]["kind"] == "custom":
        return preflight(config, split)
    if config["diagnostics"]:
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build(config["model"], tuple(split.x_train.shape[1:]), int(split.num_outputs))
        check_probe_paths(model, config["diagnostics"])
    return None


def _locate(suite: Suite, variant: Any, exc: Any) -> Any:
    """A ``SuiteError`` at the grid entry responsible (as at load time), else at the key."""
    from normbench.spec import canonical_key

    grid = suite.raw.get("grid") or {}
    for key, value in variant.params.items():
        gpath = canonical_key(key)
        if exc.path[: len(gpath)] == gpath and key in grid:
            index = next((i for i, v in enumerate(grid[key]) if v == value), None)
            if index is not None:
                return suite.error(exc.message, ("grid", key, index))
    return suite.error(exc.message, exc.path)
