"""Model builders: ``build(model_cfg, sample_shape, num_outputs)`` (torch imported lazily)."""

from __future__ import annotations

import importlib
from typing import Any

from normbench.models.catalog import MODELS


def build(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> Any:
    """Build the ``nn.Module`` for a resolved model config and one sample's shape."""
    module, function = MODELS[cfg["kind"]].builder.split(":")
    return getattr(importlib.import_module(module), function)(cfg, sample_shape, num_outputs)
