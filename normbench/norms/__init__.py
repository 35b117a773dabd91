"""Norm registry and factory: ``make(num_features, spec)`` builds any norm; torch loads lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from normbench.norms.catalog import (
    NORMS,
    NormContext,
    NormEntry,
    Option,
    check_custom_importable,
    check_norm,
    norm_rows,
    register_norm,
    resolve_norm,
)

if TYPE_CHECKING:  # only for type checkers: importing normbench.norms must not import torch
    from torch import nn

__all__ = [
    "NORMS",
    "NormContext",
    "NormEntry",
    "Option",
    "check_custom_importable",
    "check_norm",
    "make",
    "norm_rows",
    "register_norm",
    "resolve_norm",
    "wrap",
]


def _load(dotted: str) -> Any:
    """Import ``"package.module:Class"`` (the registry's class and wrapper paths)."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def _options(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a norm's class: every option of the resolved spec."""
    return {k: v for k, v in resolved.items() if k != "kind"}


def make(num_features: int, spec: str | Mapping[str, Any]) -> nn.Module:
    """Build the norm layer for ``num_features`` channels from a (resolved or raw) spec.

    The entry's class is built as ``cls(num_features, **options)``. The module takes channels
    on axis 1: (N, C), (N, C, L) or (N, C, H, W). Resolving is idempotent, so passing an
    already resolved spec costs only a dict walk.
    """
    resolved = resolve_norm(spec)
    return _load(NORMS[resolved["kind"]].cls)(num_features, **_options(resolved))


def wrap(layer: nn.Module, spec: str | Mapping[str, Any]) -> nn.Module:
    """Re-parametrise the Linear/Conv before the norm (weight norm); the layer itself otherwise."""
    resolved = resolve_norm(spec)
    entry = NORMS[resolved["kind"]]
    if not entry.wraps_layer:
        return layer
    return _load(entry.wrapper)(layer, **_options(resolved))
