"""Custom models: build the user's factory, swap its norm layers, and check it before training.

The factory (a function or an ``nn.Module`` class) is called as
``factory(num_outputs=K, input_shape=(C, …), **options)`` and must return an ``nn.Module``
mapping a batch ``(N, *input_shape)`` to ``(N, K)``. ``preflight`` does that once on one batch
of the dataset, so every problem is one sentence and exit code 2 before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from normbench.errors import OptionError
from normbench.models.catalog import KEEP
from normbench.models.sites import resolve_layer
from normbench.models.swap import Site, check_fit, find_sites, swap_norms, trace_sites
from normbench.norms.catalog import resolve_target
from normbench.usercode import UserCodeError, call, global_rng_state, seed_everything, supervised


def call_factory(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """The user's module, unswapped; OptionError (path ``target``) when the call goes wrong."""
    target = cfg["target"]
    factory = resolve_target(target, what="custom model factory", accept="function")
    try:
        model = call(
            f"custom model factory '{target}'",
            factory,
            num_outputs=num_outputs,
            input_shape=tuple(sample_shape),
            **(cfg.get("options") or {}),
        )
    except UserCodeError as exc:  # raised, or exited: one sentence at model.target
        raise OptionError(str(exc), ("target",)) from None
    if not isinstance(model, nn.Module):
        raise OptionError(
            f"custom model factory '{target}' returned a {type(model).__name__}, not an nn.Module",
            ("target",),
        )
    return model


def _sites(model: nn.Module, cfg: dict[str, Any]) -> list[Site]:
    sites = find_sites(model, cfg.get("swap"))
    if cfg.get("swap") is not None and not sites:
        raise OptionError(f"swap: {cfg['swap']} matches no layer of the model", ("swap",))
    return sites


def build_custom(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build the factory's model and replace its norm layers by ``cfg["norm"]`` (unless keep).

    The factory runs first, under the caller's seed, and replacing draws no random numbers
    for the registry's deterministic norms, so ``norm: keep`` is the factory's model exactly.
    ``model.normbench_swaps`` lists what was replaced; ``normbench_sites`` the site paths.
    """
    model = call_factory(cfg, sample_shape, num_outputs)
    sites = _sites(model, cfg)
    norm = cfg["norm"]
    if norm["kind"] == KEEP:
        records = [{"path": s.path, "old": s.old, "new": "kept"} for s in sites]
    else:
        records = swap_norms(model, sites, norm)
    model.normbench_swaps = records
    model.normbench_sites = [s.path for s in sites]
    return model


@dataclass
class ModelCheck:
    """What the pre-flight check found for one variant (``validate --show-model`` prints it)."""

    target: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    num_params: int
    swaps: list[dict[str, str]] = field(default_factory=list)


def _fail(message: str, path: tuple[Any, ...]) -> OptionError:
    return OptionError(message, ("model", *path))


def preflight(config: dict[str, Any], split: Any) -> ModelCheck:
    """Build a variant's custom model and run one batch, before any training.

    Checks, each as an OptionError with a key path below the suite root: the factory
    returns a module; its output on a batch is (N, outputs); the norm fits every replaced
    layer; the swapped model runs a training-mode batch; probe module paths exist.
    """
    cfg, training = config["model"], config["training"]
    sample_shape = tuple(split.x_train.shape[1:])
    batch = min(training["batch_size"], split.x_train.shape[0])
    x = torch.as_tensor(split.x_train[:batch], dtype=torch.float32)
    with torch.random.fork_rng(devices=[]), global_rng_state():
        seed_everything(0)
        try:
            model = call_factory(cfg, sample_shape, int(split.num_outputs))
            sites = _sites(model, cfg)
        except OptionError as exc:
            raise _fail(exc.message, exc.path) from None
        try:
            with supervised(f"the model from '{cfg['target']}'"):
                out = trace_sites(model, sites, x)
        except UserCodeError as exc:
            raise _fail(
                f"the model from '{cfg['target']}' fails on one batch of shape "
                f"{tuple(x.shape)}: {exc.deed}",
                ("target",),
            ) from None
        want = (batch, int(split.num_outputs))
        what = f"{split.num_outputs} outputs per sample"
        if split.layout == "tokens":  # a label per position: (N, T, K), the classes last
            want = (batch, *split.y_train.shape[1:], int(split.num_outputs))
            what = f"{split.num_outputs} logits per position"
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise _fail(
                f"the model from '{cfg['target']}' returns {got} for a batch of shape "
                f"{tuple(x.shape)}, but the dataset needs {want} ({what})",
                ("target",),
            )
        norm = cfg["norm"]
        if norm["kind"] == KEEP:
            swaps = [{"path": s.path, "old": s.old, "new": "kept"} for s in sites]
        elif not sites:
            raise _fail(
                f"the model from '{cfg['target']}' has no normalisation layer to replace "
                f"by norm '{norm['kind']}' (no BatchNorm, InstanceNorm, GroupNorm, "
                "LayerNorm or RMSNorm); list your own norm classes under swap:",
                ("norm",),
            )
        else:
            try:
                check_fit(sites, norm, training["batch_size"])
            except OptionError as exc:
                raise _fail(exc.message, exc.path) from None
            try:
                with supervised(f"the model with norm '{norm['kind']}'"):  # a custom norm runs too
                    swaps = swap_norms(model, sites, norm)
                    if batch >= 2:
                        with torch.no_grad():
                            model.train()(x)
            except UserCodeError as exc:
                raise _fail(
                    f"the model with norm '{norm['kind']}' fails on one batch: {exc.deed}",
                    ("norm",),
                ) from None
        model.normbench_sites = [s.path for s in sites]
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not num_params:  # the optimizer would refuse it in every task, after start-up
        raise _fail(
            f"the model from '{cfg['target']}' has no trainable parameters, so there is "
            "nothing to train",
            ("target",),
        )
    check_probe_paths(model, config.get("diagnostics") or {})
    return ModelCheck(cfg["target"], sample_shape, tuple(out.shape), num_params, swaps)


def check_probe_paths(model: nn.Module, diagnostics: dict[str, Any]) -> None:
    """OptionError when a probe names a module path or a site index the model lacks."""
    act = diagnostics.get("activations")
    if act is not None:
        try:
            resolve_layer(model, act["layer"])
        except (LookupError, AttributeError) as exc:
            raise OptionError(str(exc), ("diagnostics", "activations", "layer")) from None
    ics = diagnostics.get("ics")
    for i, layer in enumerate((ics or {}).get("layers") or []):
        if isinstance(layer, str):
            try:
                model.get_submodule(layer)
            except AttributeError:
                raise OptionError(
                    f"the model has no module '{layer}'", ("diagnostics", "ics", "layers", i)
                ) from None


def render_checks(variants: list[Any], checks: dict[str, ModelCheck]) -> str:
    """Per variant: the model, its output, and every replaced layer (path, old → new)."""
    lines = []
    for variant in variants:
        check = checks.get(variant.id)
        if check is None:
            continue
        shape = ", ".join(["N", *map(str, check.input_shape)])
        lines.append(
            f"  {variant.name}: {check.target}, input ({shape}) → output "
            f"(N, {check.output_shape[1]}), {check.num_params:,} parameters"
        )
        width = max((len(s["path"]) for s in check.swaps), default=0)
        for swap in check.swaps:
            lines.append(f"    {swap['path']:<{width}}  {swap['old']} → {swap['new']}")
        if not check.swaps:
            lines.append("    (no norm layer matched: nothing replaced)")
    return "".join(line + "\n" for line in lines)
