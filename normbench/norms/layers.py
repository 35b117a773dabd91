"""Standard norm layers (batch, layer, group, instance, rms, weight, custom) and affine steps."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from normbench.norms.catalog import resolve_target

# Every module here takes channels on axis 1: (N, C), (N, C, L) or (N, C, H, W).


def channel_view(t: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel vector (C,) so it broadcasts against an (N, C, *spatial) input."""
    return t.view((1, -1) + (1,) * (ndim - 2))


class ChannelAffine(nn.Module):
    """Per-channel γ (and β): y = γ·x + β, the usual recovery step after normalising."""

    def __init__(self, num_features: int, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            # (N, C): plain broadcasting; addcmul fuses the multiply-add.
            return (
                x * self.weight if self.bias is None else torch.addcmul(self.bias, x, self.weight)
            )
        y = x * channel_view(self.weight, x.dim())
        return y if self.bias is None else y + channel_view(self.bias, x.dim())

    def extra_repr(self) -> str:
        return f"{self.num_features}, bias={self.bias is not None}"


class ChannelLinear(nn.Module):
    """A learned C×C map over channels + bias, initialised to the identity (affine: linear)."""

    def __init__(self, num_features: int, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.weight = nn.Parameter(torch.eye(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return F.linear(x, self.weight, self.bias)
        # Move channels last so one matmul mixes them at every position, then move back.
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, bias={self.bias is not None}"


def make_affine(mode: str, num_features: int, bias: bool = True) -> nn.Module:
    """The recovery step for ``affine: none | per_feature | linear``."""
    if mode == "none":
        return nn.Identity()
    if mode == "per_feature":
        return ChannelAffine(num_features, bias=bias)
    if mode == "linear":
        return ChannelLinear(num_features, bias=bias)
    raise ValueError(f"unknown affine mode {mode!r}")


def with_affine(core: nn.Module, mode: str, num_features: int) -> nn.Module:
    """Append the affine step to a core that was built without one (``none``/``linear``).

    ``per_feature`` is fused into the torch kernels by the callers instead (hot path).
    """
    if mode == "none":
        return core
    return nn.Sequential(core, make_affine(mode, num_features))


class BatchNorm(_BatchNorm):
    """torch's batch norm for any input rank ≥ 2: (N, C), (N, C, L), (N, C, H, W), ….

    Same kernel and buffers as nn.BatchNorm1d/2d (F.batch_norm handles (N, C, *) generically),
    so it is exactly as fast; only the rank check is relaxed so one class serves every model.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected (N, C, *) input, got {input.dim()}D")


class LayerNorm(nn.Module):
    """Layer norm over every non-batch axis, with a per-channel γ/β.

    (N, C): over the C features — F.layer_norm, identical to nn.LayerNorm(C).
    (N, C, *spatial): over C and all positions together (Ba et al.'s "all hidden units of the
    layer"); the affine is per channel, not per (C, H, W) element, so one module fits any
    spatial size. F.group_norm with one group computes exactly that in one fused kernel.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return F.layer_norm(x, (self.num_features,), self.weight, self.bias, self.eps)
        return F.group_norm(x, 1, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class InstanceNorm(nn.GroupNorm):
    """Instance norm = group norm with one channel per group: per example and channel over space.

    Unlike nn.InstanceNorm1d/2d it has no running statistics (instance statistics are used in
    eval too, as in Ulyanov et al.), and one class works for (N, C, L) and (N, C, H, W).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__(num_features, num_features, eps=eps, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            # On (N, C) each statistic would cover one number: the output would be all zeros.
            raise ValueError("instance norm needs a spatial axis: (N, C, L) or (N, C, H, W)")
        return super().forward(x)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): a / RMS(a) · g, over the same axes as LayerNorm.

    (N, C): RMS over the features; (N, C, *spatial): over C and all positions, gain per channel.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-6, affine: bool = True, bias: bool = False
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            weight = self.weight
            if weight is not None and weight.dtype != x.dtype:
                # Under autocast x may be bf16/fp16: a matching weight keeps the fused kernel.
                weight = weight.to(x.dtype)
            y = F.rms_norm(x, (self.num_features,), weight, self.eps)
            return y if self.bias is None else y + self.bias
        y = F.rms_norm(x, x.shape[1:], None, self.eps)
        if self.weight is not None:
            y = y * channel_view(self.weight, x.dim())
        if self.bias is not None:
            y = y + channel_view(self.bias, x.dim())
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}, "
            f"bias={self.bias is not None}"
        )


# --- factories: the entries whose construction is more than ``Class(num_features, **options)``
#
# The affine mode decides the module's structure: ``per_feature`` is the γ/β fused into the
# torch kernel (the training hot path), ``none``/``linear`` a core without affine plus the
# recovery step (``with_affine``), so one constructor cannot stand for all three and keep the
# parameters and state-dict keys. ``custom`` builds the class its spec names.


def build_batch(
    num_features: int, *, momentum: float, eps: float, affine: str, track_running_stats: bool
) -> nn.Module:
    """Batch norm; with ``affine: per_feature`` a bare torch kernel (the training hot path)."""
    core = BatchNorm(
        num_features,
        eps=eps,
        momentum=momentum,
        affine=affine == "per_feature",
        track_running_stats=track_running_stats,
    )
    return core if affine == "per_feature" else with_affine(core, affine, num_features)


def build_layer(num_features: int, *, eps: float, affine: str) -> nn.Module:
    """Layer norm over all non-batch axes (see LayerNorm)."""
    core = LayerNorm(num_features, eps=eps, affine=affine == "per_feature")
    return core if affine == "per_feature" else with_affine(core, affine, num_features)


class AutoGroupNorm(nn.GroupNorm):
    """Group norm with ``groups: auto``: the largest divisor of the width up to 32, except on
    (N, C) inputs, where one channel per group would normalise a single value (every output
    β): there at least two channels per group, decided at the first forward (the layout)."""

    normbench_auto_groups = True

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2 and self.num_groups == self.num_channels > 1:
            from normbench.norms.catalog import auto_groups

            self.num_groups = auto_groups(self.num_channels, self.num_channels // 2)
        return super().forward(x)


def build_group(num_features: int, *, groups: int | str, eps: float, affine: str) -> nn.Module:
    """Group norm; nn.GroupNorm already accepts (N, C, *) of any rank.

    ``groups: auto`` takes the largest divisor of this layer's width up to 32; the module is
    marked so the training record lists the count chosen for each layer.
    """
    from normbench.norms.catalog import auto_groups

    auto = groups == "auto"
    count = auto_groups(num_features) if auto else int(groups)
    if num_features % count != 0:
        raise ValueError(f"groups {count} does not divide num_features {num_features}")
    cls = AutoGroupNorm if auto else nn.GroupNorm
    core = cls(count, num_features, eps=eps, affine=affine == "per_feature")
    return core if affine == "per_feature" else with_affine(core, affine, num_features)


def build_instance(num_features: int, *, eps: float, affine: str) -> nn.Module:
    """Instance norm (spatial inputs only)."""
    core = InstanceNorm(num_features, eps=eps, affine=affine == "per_feature")
    return core if affine == "per_feature" else with_affine(core, affine, num_features)


def build_rms(num_features: int, *, eps: float, affine: str, bias: bool) -> nn.Module:
    """RMSNorm; ``bias`` adds a learned shift after the gain (and is the linear map's bias)."""
    if affine == "linear":
        core = RMSNorm(num_features, eps=eps, affine=False)
        return nn.Sequential(core, ChannelLinear(num_features, bias=bias))
    return RMSNorm(num_features, eps=eps, affine=affine == "per_feature", bias=bias)


def build_custom(num_features: int, *, target: str, **options: Any) -> nn.Module:
    """``Class(num_features, **options)`` for ``{kind: custom, target: "pkg.mod:Class", …}``."""
    cls = resolve_target(target)
    module = cls(num_features, **options)
    if not isinstance(module, nn.Module):  # a factory that broke its annotation's promise
        raise TypeError(
            f"custom norm target '{target}' returned a {type(module).__name__}, not an nn.Module"
        )
    return module


def wrap_weight(layer: nn.Module) -> nn.Module:
    """Weight normalisation w = g · v/‖v‖ of a Linear/Conv (g per output unit, dim 0).

    torch's parametrization recomputes w from (g, v) at every forward; g starts at ‖v‖ so the
    layer computes the same function as before wrapping.
    """
    from torch.nn.utils.parametrizations import weight_norm

    if not isinstance(getattr(layer, "weight", None), nn.Parameter):
        raise TypeError(
            f"weight norm needs a layer with a 'weight' parameter, got {type(layer).__name__}"
        )
    return weight_norm(layer, name="weight", dim=0)
