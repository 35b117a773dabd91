"""Norm swapping: find the normalisation layers of any ``nn.Module`` and replace them.

A *site* is one matched layer: its module path, its class, its channel count and where its
channels sit. Registry norms take channels on axis 1, as BatchNorm/GroupNorm/InstanceNorm do;
LayerNorm and RMSNorm over one trailing axis normalise channels *last* (``(N, T, C)``), so
their replacement is wrapped in ``ChannelsLast``, which moves that axis to 1 and back.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from normbench.errors import OptionError
from normbench.norms import NORMS, NormContext, check_norm, make
from normbench.norms.catalog import resolve_target

# Every torch normalisation family (RMSNorm exists from torch 2.4).
NORM_FAMILIES: tuple[type[nn.Module], ...] = tuple(
    c
    for c in (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, getattr(nn, "RMSNorm", None))
    if c is not None
)
_CLASS_RE = re.compile(r"^(torch\.nn\.)?[A-Z]\w*$")
_DIMS = re.compile(r"([123])d$")


@dataclass
class Site:
    """One layer to replace (or keep): where it is, what it is, its channels."""

    path: str
    old: str  # e.g. "BatchNorm2d(64)"
    features: int
    channels_last: bool
    spatial: int | None  # spatial axes of the (channels-first) input; None until traced
    shape: tuple[int, ...] | None = None  # the traced input shape, channels first


class ChannelsLast(nn.Module):
    """Apply a channels-first norm to a channels-last input: (N, …, C) → (N, C, …) → back."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self.norm(x)
        return self.norm(x.movedim(-1, 1)).movedim(1, -1)


def features_of(module: nn.Module, path: str) -> tuple[int, bool]:
    """(channel count, channels last?) of a norm layer; OptionError when it cannot be told."""
    shape = getattr(module, "normalized_shape", None)
    if shape is not None:  # LayerNorm / RMSNorm
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return int(shape[0] if len(shape) > 1 else shape[-1]), len(shape) == 1
    for attr in ("num_features", "num_channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value, False
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 1 and weight.numel() > 0:
        return int(weight.numel()), False
    raise OptionError(
        f"cannot tell the channel count of '{path}' ({type(module).__name__}): it "
        "has no num_features, num_channels, normalized_shape or 1-D weight",
        ("swap",),
    )


def _class_dims(module: nn.Module) -> int | None:
    """Spatial axes implied by the class (BatchNorm2d → 2); None when only a forward tells."""
    match = _DIMS.search(type(module).__name__)
    if match is None or match.group(1) == "1":
        return None  # BatchNorm1d takes (N, C) and (N, C, L)
    return int(match.group(1))


def _selectors(swap: Sequence[str] | None) -> tuple[list[type], list[str]]:
    """Split ``swap:`` entries into classes and module-path globs."""
    if swap is None:
        return list(NORM_FAMILIES), []
    classes: list[type] = []
    globs: list[str] = []
    for i, entry in enumerate(swap):
        if ":" in entry:
            obj = resolve_target(entry, what="swap class")
        elif _CLASS_RE.match(entry):
            obj = getattr(nn, entry.removeprefix("torch.nn."), None)
            if obj is None:
                raise OptionError(
                    f"torch.nn has no class '{entry}'; give a torch norm class "
                    "(BatchNorm2d, LayerNorm, …), 'package.module:Class' or a "
                    "module-path pattern",
                    ("swap", i),
                )
        else:
            globs.append(entry)
            continue
        if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
            raise OptionError(f"swap entry '{entry}' is not an nn.Module class", ("swap", i))
        classes.append(obj)
    return classes, globs


def find_sites(model: nn.Module, swap: Sequence[str] | None) -> list[Site]:
    """The layers ``swap`` selects, outermost first in module order (none inside another).

    ``None``: every torch norm layer. Class entries select their instances; a glob
    (``layer1.*.bn?``) selects the torch norm layers whose module path matches it.
    """
    classes, globs = _selectors(swap)
    sites: list[Site] = []
    taken: list[str] = []
    for path, module in model.named_modules():
        if not path or any(path.startswith(t + ".") for t in taken):
            continue
        by_class = isinstance(module, tuple(classes)) if classes else False
        by_glob = isinstance(module, NORM_FAMILIES) and any(
            fnmatch.fnmatchcase(path, g) for g in globs
        )
        if not (by_class or by_glob):
            continue
        features, last = features_of(module, path)
        sites.append(
            Site(path, f"{type(module).__name__}({features})", features, last, _class_dims(module))
        )
        taken.append(path)
    return sites


@torch.no_grad()
def trace_sites(model: nn.Module, sites: list[Site], x: torch.Tensor) -> torch.Tensor:
    """One eval-mode forward of ``x``, recording each site's input shape; returns the output.

    Eval mode and no_grad leave parameters and running statistics untouched.
    """
    handles = []
    for site in sites:

        def hook(_m: nn.Module, args: Any, site: Site = site) -> None:
            if site.shape is None and args and isinstance(args[0], torch.Tensor):
                shape = tuple(args[0].shape)
                if site.channels_last and len(shape) > 2:
                    shape = (shape[0], shape[-1], *shape[1:-1])
                site.shape = shape
                site.spatial = len(shape) - 2

        handles.append(model.get_submodule(site.path).register_forward_pre_hook(hook))
    was_training = model.training
    try:
        model.eval()
        return model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


def describe_norm(norm: dict[str, Any]) -> str:
    """``group(groups=8)``: the kind and the options that differ from their defaults."""
    entry = NORMS.get(norm["kind"])
    defaults = entry.defaults() if entry is not None else {}
    extra = {k: v for k, v in norm.items() if k != "kind" and defaults.get(k, object()) != v}
    inner = ", ".join(f"{k}={v}" for k, v in extra.items())
    return f"{norm['kind']}({inner})" if inner else norm["kind"]


def check_fit(sites: list[Site], norm: dict[str, Any], batch_size: int) -> None:
    """OptionError (path ``norm``) naming the first site where ``norm`` cannot sit."""
    entry = NORMS[norm["kind"]]
    for site in sites:
        spatial = site.spatial or 0
        shape = ", ".join(["N", *map(str, site.shape[1:])]) if site.shape else f"N, {site.features}"
        where = (
            f"cannot replace '{site.path}' ({site.old}, input ({shape})) by norm '{norm['kind']}'"
        )
        if entry.needs_spatial and spatial < 1:
            raise OptionError(
                f"{where}: it needs a spatial axis (statistics over L or H×W), "
                "which this layer's input has not",
                ("norm",),
            )
        ctx = NormContext(
            model="custom",
            layout="spatial" if spatial else "features",
            widths=(site.features,),
            spatial=min(spatial, 2),
            batch_size=batch_size,
            placement="pre",
        )
        try:
            check_norm(norm, ctx)
        except OptionError as exc:
            raise OptionError(f"{where}: {exc.message}", ("norm",)) from None


def swap_norms(model: nn.Module, sites: list[Site], norm: dict[str, Any]) -> list[dict[str, str]]:
    """Replace every site by ``make(features, norm)`` in place; what was replaced, in order."""
    records = []
    new_name = describe_norm(norm)
    for site in sites:
        new = make(site.features, norm)
        if site.channels_last:
            new = ChannelsLast(new)
        parent_path, _, name = site.path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, new)
        records.append({"path": site.path, "old": site.old, "new": new_name})
    return records
