"""Research norms written from their papers' formulas (batch renorm, FRN, DyT, Derf, …)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from normbench.norms.layers import build_batch, channel_view, make_affine

# Every module here takes channels on axis 1: (N, C), (N, C, L) or (N, C, H, W). "Batch"
# statistics are per channel over the batch axis and every spatial position, as in BN.
# Each class takes its registry options as keywords (``Class(num_features, **options)``).


def batch_dims(x: Tensor) -> tuple[int, ...]:
    """Axes that per-channel batch statistics reduce over: N and every spatial axis."""
    return (0, *range(2, x.dim()))


def match_dtype(x: Tensor, buffer: Tensor) -> Tensor:
    """Compute in the buffers' precision.

    Under autocast a Linear hands a float32 module bfloat16/float16 activations; statistics of
    those are imprecise and lerp_ refuses mixed dtypes, so upcast (as torch's BN kernels do).
    A module converted with ``.to(dtype)`` has buffers of that dtype and is left alone.
    """
    return x if x.dtype == buffer.dtype else x.to(buffer.dtype)


def spatial_dims(x: Tensor) -> tuple[int, ...]:
    """Axes that per-example, per-channel statistics reduce over (FRN, CrossNorm)."""
    return tuple(range(2, x.dim()))


class ReferenceBatchNorm(nn.Module):
    """Batch norm from the formulas, to check torch's kernel and as a readable baseline.

    Training: y = (x − μ_B)/√(σ²_B + ε) with the *biased* batch variance σ²_B; the running
    variance is updated with the *unbiased* one (n/(n−1)·σ²_B, n = N·spatial), like torch.
    Eval: y = (x − μ)/√(σ² + ε) with the running statistics.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.affine = make_affine(affine, num_features)

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        dims = batch_dims(x)
        if self.training:
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            with torch.no_grad():
                n = x.numel() // x.shape[1]
                unbiased = var * (n / max(n - 1, 1))
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - channel_view(mean, x.dim())) * channel_view(torch.rsqrt(var + self.eps), x.dim())
        return self.affine(y)


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017).

    Training: x̂ = (x − μ_B)/σ_B · r + d with σ_B = √(σ²_B + ε) (biased batch variance),
    r = clip(σ_B/σ, 1/r_max, r_max), d = clip((μ_B − μ)/σ, −d_max, d_max), r and d without
    gradient; then μ ← μ + α(μ_B − μ), σ ← σ + α(σ_B − σ) (the paper's running average of σ,
    not of σ²). Eval: x̂ = (x − μ)/σ. r_max grows linearly from 1 to its final value between
    steps r_max_start and r_max_end, d_max from 0 likewise; the step is the number of
    training-mode forward calls so far (buffer ``num_steps``, saved with the model).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,
        affine: str = "per_feature",
        r_max: float = 3.0,
        d_max: float = 5.0,
        r_max_start: int = 5000,
        r_max_end: int = 40000,
        d_max_start: int = 5000,
        d_max_end: int = 25000,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.r_max, self.d_max = r_max, d_max
        self.r_range = (r_max_start, r_max_end)
        self.d_range = (d_max_start, d_max_end)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))
        self.affine = make_affine(affine, num_features)

    @staticmethod
    def _ramp(step: Tensor, start: int, end: int) -> Tensor:
        """0 before ``start``, 1 after ``end``, linear in between (a tensor: no host sync)."""
        if end > start:
            return ((step - start) / (end - start)).clamp(0.0, 1.0)
        return (step >= start).to(step.dtype)

    def limits(self) -> tuple[Tensor, Tensor]:
        """(r_max, d_max) in force for the next training step."""
        step = self.num_steps.to(self.running_std.dtype)
        r_lim = 1.0 + (self.r_max - 1.0) * self._ramp(step, *self.r_range)
        d_lim = self.d_max * self._ramp(step, *self.d_range)
        return r_lim, d_lim

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        nd = x.dim()
        if not self.training:
            y = (x - channel_view(self.running_mean, nd)) / channel_view(self.running_std, nd)
            return self.affine(y)
        dims = batch_dims(x)
        mean = x.mean(dims)
        std = torch.sqrt(x.var(dims, unbiased=False) + self.eps)
        with torch.no_grad():
            # r, d are treated as constants in backprop (the paper's stop_gradient).
            r_lim, d_lim = self.limits()
            r = torch.clamp(std / self.running_std, min=1.0 / r_lim, max=r_lim)
            d = torch.clamp((mean - self.running_mean) / self.running_std, min=-d_lim, max=d_lim)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_std.lerp_(std, self.momentum)
            self.num_steps += 1
        y = (x - channel_view(mean, nd)) / channel_view(std, nd) * channel_view(
            r, nd
        ) + channel_view(d, nd)
        return self.affine(y)


class NoisyBatchNorm(nn.Module):
    """Batch norm followed by Santurkar et al.'s (2018, Alg. 1) noise, in training only.

    At every training step, per channel j: μ_j ~ U(−mean_range, mean_range),
    σ_j ~ U(scale_low, scale_high); per element: m ~ U(μ_j − w, μ_j + w), s ~ N(σ_j, std);
    output s·a + m, where a is the BN layer's output (after its affine step). Conv layers
    treat the spatial axes as batch, so m and s are drawn per sample *and* position. Draws use
    torch's global RNG, so a seeded run is reproducible. The batch norm takes the ``batch``
    norm's options (``momentum``, ``eps``, ``affine``, ``track_running_stats``).
    """

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        affine: str = "per_feature",
        track_running_stats: bool = True,
        mean_range: float = 0.5,
        scale_low: float = 1.0,
        scale_high: float = 1.25,
        sample_mean_width: float = 0.1,
        sample_scale_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.bn = build_batch(
            num_features,
            momentum=momentum,
            eps=eps,
            affine=affine,
            track_running_stats=track_running_stats,
        )
        self.mean_range = mean_range
        self.scale_low, self.scale_high = scale_low, scale_high
        self.sample_mean_width = sample_mean_width
        self.sample_scale_std = sample_scale_std

    def forward(self, x: Tensor) -> Tensor:
        a = self.bn(x)
        if not self.training:
            return a
        nd, c = a.dim(), a.shape[1]
        kw = {"device": a.device, "dtype": a.dtype}
        mu = channel_view((torch.rand(c, **kw) * 2 - 1) * self.mean_range, nd)
        sigma = channel_view(
            self.scale_low + (self.scale_high - self.scale_low) * torch.rand(c, **kw), nd
        )
        m = mu + (torch.rand_like(a) * 2 - 1) * self.sample_mean_width
        s = sigma + torch.randn_like(a) * self.sample_scale_std
        return torch.addcmul(m, s, a)

    def extra_repr(self) -> str:
        return (
            f"mean_range={self.mean_range}, scale=U({self.scale_low}, {self.scale_high}), "
            f"sample_mean_width={self.sample_mean_width}, "
            f"sample_scale_std={self.sample_scale_std}"
        )


class LpBatchNorm(nn.Module):
    """ℓp batch norm (Santurkar et al. 2018 §"ℓp normalisation"; per-unit formula ours).

    Per channel, over the batch (and space), with c = x − μ_B:
      p = 1:   y = c / (mean_B |c| + ε)
      p = inf: y = c / (max_B |c| + ε)
      p = 2:   y = c / √(mean_B c² + ε)   — exactly BN's training-mode output
    i.e. divide by the batch-average ℓp magnitude, (mean |c|^p)^(1/p), of the centred
    activations; ε enters under the root for p = 2 so a dead unit (c ≡ 0) has a finite
    gradient. Eval uses running averages of μ_B and of the denominator.
    """

    def __init__(
        self,
        num_features: int,
        p: int | str = 1,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        if p not in (1, 2, "inf"):
            raise ValueError(f"p must be 1, 2 or 'inf', got {p!r}")
        self.num_features = num_features
        self.p = p
        self.eps = eps
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(num_features))
        self.affine = make_affine(affine, num_features)

    def scale(self, c: Tensor) -> Tensor:
        """The per-channel denominator for centred activations ``c``."""
        dims = batch_dims(c)
        if self.p == 1:
            return c.abs().mean(dims) + self.eps
        if self.p == 2:
            return torch.sqrt(c.square().mean(dims) + self.eps)
        return c.abs().amax(dims) + self.eps

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        nd = x.dim()
        if self.training:
            mean = x.mean(batch_dims(x))
            c = x - channel_view(mean, nd)
            scale = self.scale(c)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_scale.lerp_(scale, self.momentum)
        else:
            c = x - channel_view(self.running_mean, nd)
            scale = self.running_scale
        return self.affine(c / channel_view(scale, nd))

    def extra_repr(self) -> str:
        return f"{self.num_features}, p={self.p}, eps={self.eps}, momentum={self.momentum}"


class FilterResponseNorm(nn.Module):
    """Filter response norm + TLU (Singh & Krishnan 2019), spatial inputs only.

    ν² = mean of x² over the spatial axes (per example and channel, no centring);
    y = γ · x/√(ν² + ε) + β, then z = max(y, τ) with a learned per-channel τ.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-6, affine: str = "per_feature", tlu: bool = True
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.affine = make_affine(affine, num_features)
        self.tau = nn.Parameter(torch.zeros(num_features)) if tlu else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError("filter response norm needs a spatial axis: (N, C, L) or (N, C, H, W)")
        nu2 = x.square().mean(spatial_dims(x), keepdim=True)
        y = self.affine(x * torch.rsqrt(nu2 + self.eps))
        return y if self.tau is None else torch.maximum(y, channel_view(self.tau, x.dim()))


class MeanOnlyBatchNorm(nn.Module):
    """Mean-only batch norm (Salimans & Kingma 2016): y = x − μ_B + b; running μ in eval."""

    def __init__(self, num_features: int, momentum: float = 0.1, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        if self.training:
            mean = x.mean(batch_dims(x))
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
        else:
            mean = self.running_mean
        y = x - channel_view(mean, x.dim())
        return y if self.bias is None else y + channel_view(self.bias, x.dim())


class GhostBatchNorm(nn.Module):
    """Ghost batch norm (Hoffer et al. 2017): BN statistics over virtual batches of ghost_size.

    Training: the batch is cut into consecutive chunks of ``ghost_size`` examples, each
    normalised with its own biased mean/variance (per channel, over its examples and space).
    If N is not a multiple of ghost_size the last chunk is smaller. The running mean/variance
    are updated once per step with the average over chunks of their mean and unbiased
    variance. Eval uses the running statistics, like BN.
    """

    def __init__(
        self,
        num_features: int,
        ghost_size: int = 32,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.ghost_size = ghost_size
        self.eps = eps
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.affine = make_affine(affine, num_features)

    def _normalise(self, xg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalise (k, g, C, *S) chunks; return output, chunk means and unbiased vars (k, C)."""
        dims = (1, *range(3, xg.dim()))
        mean = xg.mean(dims, keepdim=True)
        var = xg.var(dims, unbiased=False, keepdim=True)
        y = (xg - mean) * torch.rsqrt(var + self.eps)
        n = xg[0].numel() // xg.shape[2]  # values per channel in one chunk
        # (k, 1, C, 1, …) → (k, C)
        return y, mean.flatten(1), var.flatten(1) * (n / max(n - 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        nd = x.dim()
        if not self.training:
            y = (x - channel_view(self.running_mean, nd)) * channel_view(
                torch.rsqrt(self.running_var + self.eps), nd
            )
            return self.affine(y)
        n, g = x.shape[0], self.ghost_size
        if n % g == 0:
            # One reshape normalises every chunk at once: (N, C, *S) → (N/g, g, C, *S).
            y, means, vars_ = self._normalise(x.reshape(n // g, g, *x.shape[1:]))
            y = y.reshape(x.shape)
        else:
            parts = [self._normalise(chunk.unsqueeze(0)) for chunk in x.split(g)]
            y = torch.cat([p[0].squeeze(0) for p in parts])
            means = torch.cat([p[1] for p in parts])
            vars_ = torch.cat([p[2] for p in parts])
        with torch.no_grad():
            self.running_mean.lerp_(means.mean(0), self.momentum)
            self.running_var.lerp_(vars_.mean(0), self.momentum)
        return self.affine(y)


class CrossNorm(nn.Module):
    """CrossNorm (Tang et al. 2021), spatial inputs only; no normalisation of its own.

    In training, with probability p per forward call, examples are paired at random and each
    pair swaps its per-channel spatial mean and std: x_i ← (x_i − μ_i)/σ_i · σ_j + μ_j with
    σ = √(var + ε) (biased variance over space). With an odd batch one example keeps its own.
    Identity in eval. Draws use torch's global (CPU) RNG.
    """

    def __init__(self, num_features: int, p: float = 0.5, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.p = p
        self.eps = eps

    @staticmethod
    def pairing(n: int) -> Tensor:
        """A random involution of 0..n−1: partner[i] = j and partner[j] = i."""
        perm = torch.randperm(n)
        half = n // 2
        a, b = perm[:half], perm[half : 2 * half]
        partner = torch.arange(n)
        partner[a] = b
        partner[b] = a
        return partner

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError("cross norm needs a spatial axis: (N, C, L) or (N, C, H, W)")
        if not self.training:
            return x
        # Draw on the CPU generator even when skipping, so the RNG stream does not depend on x.
        swap = bool(torch.rand(()) < self.p)
        if not swap or x.shape[0] < 2:
            return x
        partner = self.pairing(x.shape[0]).to(x.device)
        dims = spatial_dims(x)
        mean = x.mean(dims, keepdim=True)
        std = torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + self.eps)
        return (x - mean) / std * std[partner] + mean[partner]

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}"


class DecorrelatedBatchNorm(nn.Module):
    """Decorrelated batch norm (Huang et al. 2018): ZCA whitening per group of channels.

    Channels are split into consecutive groups of ``group_size``. For each group, over the
    batch (and space): Σ = cov(x) + ε·I (biased), Σ = U Λ Uᵀ by torch.linalg.eigh,
    y = U Λ^(−1/2) Uᵀ (x − μ). Gradients flow through eigh (as in the paper); they are
    ill-conditioned when two eigenvalues coincide, e.g. several dead units in one group.
    Eval uses running averages of μ and of the whitening matrix.
    """

    def __init__(
        self,
        num_features: int,
        group_size: int = 16,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        if num_features % group_size != 0:
            raise ValueError(f"group_size {group_size} does not divide num_features {num_features}")
        self.num_features = num_features
        self.group_size = group_size
        self.eps = eps
        self.momentum = momentum
        groups = num_features // group_size
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_whiten", torch.eye(group_size).expand(groups, -1, -1).clone())
        self.affine = make_affine(affine, num_features)

    def whitening(self, xc: Tensor) -> Tensor:
        """ZCA matrices (groups, G, G) for centred (groups, G, M) data."""
        # eigh has no half-precision kernels and needs the accuracy: work in float32 at least,
        # with autocast off so the covariance matmul is not silently done in half precision.
        work = xc if xc.dtype in (torch.float32, torch.float64) else xc.float()
        with torch.autocast(xc.device.type, enabled=False):
            m = work.shape[-1]
            eye = torch.eye(self.group_size, device=work.device, dtype=work.dtype)
            cov = work @ work.transpose(1, 2) / m + self.eps * eye
            evals, evecs = torch.linalg.eigh(cov)
            # U diag(λ^−1/2) Uᵀ; the clamp only guards round-off below ε.
            w = (evecs * evals.clamp_min(self.eps).rsqrt().unsqueeze(-2)) @ evecs.transpose(1, 2)
        return w.to(xc.dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_mean)
        n, c = x.shape[:2]
        groups = c // self.group_size
        # (N, C, *S) → (C, N·S) → (groups, G, M): every column is one observation.
        xs = x.transpose(0, 1).reshape(groups, self.group_size, -1)
        if self.training:
            mean = xs.mean(2, keepdim=True)
            xc = xs - mean
            w = self.whitening(xc)
            with torch.no_grad():
                self.running_mean.lerp_(mean.reshape(c), self.momentum)
                self.running_whiten.lerp_(w, self.momentum)
        else:
            xc = xs - self.running_mean.view(groups, self.group_size, 1)
            w = self.running_whiten
        y = (w @ xc).reshape(c, n, *x.shape[2:]).transpose(0, 1).contiguous()
        return self.affine(y)


# --- point-wise replacements of normalisation, and batch statistics for transformers -------------


class DynamicTanh(nn.Module):
    """DyT (Zhu, Chen, He, LeCun & Liu 2025): y = γ·tanh(α·x) + β, no statistics at all.

    α is one learnable scalar (``alpha_init``, 0.5 in the authors' code), γ/β per channel
    (the ``affine`` step).
    """

    def __init__(
        self, num_features: int, alpha_init: float = 0.5, affine: str = "per_feature"
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.alpha = nn.Parameter(torch.full((1,), float(alpha_init)))
        self.affine = make_affine(affine, num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.affine(torch.tanh(self.alpha * x))

    def extra_repr(self) -> str:
        return f"{self.num_features}"


class DynamicErf(nn.Module):
    """Derf (Chen, Lu, Zhu, Sun & Liu 2025): y = γ·erf(α·x + s) + β.

    α and the shift s are learnable scalars (``alpha_init`` 0.5, ``shift_init`` 0, as in the
    authors' code), γ/β per channel (the ``affine`` step).
    """

    def __init__(
        self,
        num_features: int,
        alpha_init: float = 0.5,
        shift_init: float = 0.0,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.alpha = nn.Parameter(torch.full((1,), float(alpha_init)))
        self.shift = nn.Parameter(torch.full((1,), float(shift_init)))
        self.affine = make_affine(affine, num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.affine(torch.erf(self.alpha * x + self.shift))

    def extra_repr(self) -> str:
        return f"{self.num_features}"


class _PowerFunction(torch.autograd.Function):
    """PowerNorm's normalisation z = x / √(ψ² + ε) with its approximate backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        phi: Tensor,
        batch_sq: Tensor,
        ema_gz: Tensor,
        alpha_bwd: float,
        eps: float,
    ) -> Tensor:
        ndim = x.dim()
        z = x * channel_view(torch.rsqrt(phi + eps), ndim)
        ctx.save_for_backward(z, batch_sq, ema_gz)
        ctx.alpha_bwd, ctx.eps = alpha_bwd, eps
        return z

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        z, batch_sq, ema_gz = ctx.saved_tensors
        ndim, dims = grad.dim(), batch_dims(grad)
        # The batch's own gradient term mean(g·z)·z is replaced by a running average ν of it.
        g = grad - (1 - ctx.alpha_bwd) * channel_view(ema_gz, ndim) * z
        with torch.no_grad():
            ema_gz.add_((g * z).mean(dims))
        dx = g * channel_view(torch.rsqrt(batch_sq + ctx.eps), ndim)
        return dx, None, None, None, None, None


class PowerNorm(nn.Module):
    """PowerNorm (Shen, Yao, Gholami, Mahoney & Keutzer 2020), as the authors' code runs it.

    First each position is divided by its quadratic mean over channels (their GroupScaling1D,
    ``token_scaling``). Training: ψ²_B = mean x² per channel over the batch and every position
    (no mean is subtracted); z = x/√(ψ²_B + ε) for the first ``warmup_steps`` steps, then
    z = x/√(ψ² + ε) with the running ψ², which is updated after use: ψ² ← cumulative average
    of ψ²_B during warm-up, then ψ² ← α_f·ψ² + (1 − α_f)·ψ²_B. Backward (approximate, no
    gradient through the statistics): g̃ = g − (1 − α_b)·ν·z, ν ← ν + mean(g̃·z),
    dx = g̃/√(ψ²_B + ε), where g is the gradient at z. Eval: z = x/√(ψ² + ε). Then γ/β.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        alpha_fwd: float = 0.9,
        alpha_bwd: float = 0.9,
        warmup_steps: int = 10000,
        token_scaling: bool = True,
        affine: str = "per_feature",
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.alpha_fwd, self.alpha_bwd = alpha_fwd, alpha_bwd
        self.warmup_steps = warmup_steps
        self.token_scaling = token_scaling
        self.register_buffer("running_phi", torch.ones(num_features))
        self.register_buffer("ema_gz", torch.zeros(num_features))
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))
        self.affine = make_affine(affine, num_features)

    def forward(self, x: Tensor) -> Tensor:
        x = match_dtype(x, self.running_phi)
        if self.token_scaling:
            x = x * torch.rsqrt(x.square().mean(1, keepdim=True) + self.eps)
        if not self.training:
            return self.affine(x * channel_view(torch.rsqrt(self.running_phi + self.eps), x.dim()))
        with torch.no_grad():
            self.num_steps += 1
            step = int(self.num_steps)  # a host read: the warm-up decides which ψ² is used
            batch_sq = x.detach().square().mean(batch_dims(x))
        phi = batch_sq if step <= self.warmup_steps else self.running_phi
        z = _PowerFunction.apply(x, phi, batch_sq, self.ema_gz, self.alpha_bwd, self.eps)
        with torch.no_grad():
            if step < self.warmup_steps:
                self.running_phi.mul_((step - 1) / step).add_(batch_sq / step)
            self.running_phi.lerp_(batch_sq, 1 - self.alpha_fwd)
        return self.affine(z)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, alpha_fwd={self.alpha_fwd}, "
            f"alpha_bwd={self.alpha_bwd}, warmup_steps={self.warmup_steps}, "
            f"token_scaling={self.token_scaling}"
        )
