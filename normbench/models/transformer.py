"""A minimal transformer (GPT / ViT style) whose norms and their placement are the experiment.

Embedding (token ids, values or image patches) + positions → ``layers`` blocks, each an
attention and an MLP residual branch with the suite's norm where ``placement`` puts it →
readout → linear head. Every norm sees ``(N·T, C)``: one row per token, so the registry's
channels-first norms apply unchanged and ``layer``/``rms`` normalise each token over its
channels (``nn.LayerNorm`` on ``(N, T, C)``), while ``batch`` takes statistics over batch ×
positions per channel. With F a sublayer and N the norm:

- ``pre``:      x + F(N(x)), and a final N before the head
- ``post``:     N(x + F(x))
- ``peri``:     x + N_out(F(N_in(x))), and a final N
- ``deepnorm``: N(α·x + F(x)), α = (2L)^(1/4); FFN, value and output weights × β = (8L)^(-1/4)
- ``none``:     x + F(x)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from normbench.models.common import activation, init_weights
from normbench.norms import make

# Which placements put a norm before / after each sublayer, and a final norm before the head.
_NORM_IN = {"pre", "peri"}
_NORM_OUT = {"peri"}
_NORM_AFTER_ADD = {"post", "deepnorm"}
_FINAL_NORM = {"pre", "peri"}


def _token_norm(d_model: int, norm: dict[str, Any]) -> nn.Module | None:
    """The suite's norm for ``d_model`` channels, or None for no norm (nothing to call)."""
    module = make(d_model, norm)
    return None if isinstance(module, nn.Identity) else module


def _apply(norm: nn.Module | None, x: Tensor) -> Tensor:
    """``norm`` on each token: (N, T, C) → rows (N·T, C) → back."""
    if norm is None:
        return x
    return norm(x.reshape(-1, x.shape[-1])).view(x.shape)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    ``watch = True`` (set by the attention diagnostic) also records ``max_logit``, the largest
    |q·k|/√d of the last forward (Wortsman et al.'s instability signal), computed apart from the
    fused kernel so training arithmetic is the same with and without it.
    """

    def __init__(self, d: int, heads: int, causal: bool, qk_norm: bool, drop: float) -> None:
        super().__init__()
        self.heads, self.causal, self.drop = heads, causal, drop
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        head_dim = d // heads
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else None
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else None
        self.watch = False
        self.max_logit: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        # split + view + transpose (not one view + permute): the same strides forward, and the
        # backward is one concatenation instead of a stack and a copy (nanoGPT's layout).
        shape = (n, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in self.qkv(x).split(c, dim=2))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.watch:
            with torch.no_grad():
                logits = (q @ k.transpose(-2, -1)).abs() / math.sqrt(q.shape[-1])
                self.max_logit = float(logits.max())
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.drop if self.training else 0.0, is_causal=self.causal
        )
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    """One attention and one MLP residual branch; ``act`` is the MLP's non-linearity (the
    module the activation diagnostics hook, as in the other kinds' blocks)."""

    def __init__(self, d: int, cfg: dict[str, Any], alpha: float) -> None:
        super().__init__()
        norm, placement = cfg["norm"], cfg["placement"]
        self.placement, self.alpha = placement, alpha
        p = float(cfg.get("dropout", 0.0))
        self.attn = Attention(d, cfg["heads"], cfg["causal"], cfg["qk_norm"], p)
        hidden = max(1, round(d * cfg["mlp_ratio"]))
        self.fc1, self.act = nn.Linear(d, hidden), activation(cfg["activation"])
        self.fc2 = nn.Linear(hidden, d)
        self.drop = nn.Dropout(p) if p > 0 else None
        has = placement != "none"
        # norm1/norm2: before the sublayer (pre, peri) or after the addition (post, deepnorm).
        self.norm1 = _token_norm(d, norm) if has else None
        self.norm2 = _token_norm(d, norm) if has else None
        self.out1 = _token_norm(d, norm) if placement in _NORM_OUT else None
        self.out2 = _token_norm(d, norm) if placement in _NORM_OUT else None
        self.norm_in, self.after_add = placement in _NORM_IN, placement in _NORM_AFTER_ADD

    def mlp(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def _branch(self, x: Tensor, f: Any, n_in: Any, n_out: Any) -> Tensor:
        # The hot path: flags decided once in __init__, no per-call set lookups.
        y = f(_apply(n_in, x)) if self.norm_in else f(x)
        if n_out is not None:
            y = _apply(n_out, y)
        if self.drop is not None:
            y = self.drop(y)
        if self.after_add:
            return _apply(n_in, x * self.alpha + y if self.alpha != 1.0 else x + y)
        return x + y

    def forward(self, x: Tensor) -> Tensor:
        x = self._branch(x, self.attn, self.norm1, self.out1)
        return self._branch(x, self.mlp, self.norm2, self.out2)


def sinusoidal(length: int, d: int) -> Tensor:
    """The fixed sine/cosine position table of Vaswani et al. (length, d)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


class Transformer(nn.Module):
    """Embedding → positions → ``blocks`` → final norm (pre, peri) → readout → head.

    Inputs: token ids (N, T) (stored as floats, exact below 2^24), values (N, T, F) or images
    (N, C, H, W) cut into ``patch``×``patch`` patches. ``readout: tokens`` returns (N, T, V)
    logits, one prediction per position (the loop's per-token cross-entropy).
    """

    def __init__(self, sample_shape: tuple[int, ...], cfg: dict[str, Any], num_outputs: int):
        super().__init__()
        d, self.readout = cfg["d_model"], cfg["readout"]
        self.tokens = len(sample_shape) == 1
        if self.tokens:
            self.embed: nn.Module = nn.Embedding(num_outputs, d)
            length = sample_shape[0]
        elif len(sample_shape) == 2:
            self.embed = nn.Linear(sample_shape[1], d)
            length = sample_shape[0]
        else:
            c, h, w = sample_shape
            p = cfg["patch"]
            if h % p or w % p:
                raise ValueError(f"model.patch {p} must divide the {h}×{w} images")
            self.embed = nn.Conv2d(c, d, p, stride=p)
            length = (h // p) * (w // p)
        length += self.readout == "cls"
        self.cls = nn.Parameter(torch.zeros(1, 1, d)) if self.readout == "cls" else None
        self.pos: nn.Parameter | None = None
        if cfg["positions"] == "learned":
            self.pos = nn.Parameter(torch.randn(1, length, d) * 0.02)
        elif cfg["positions"] == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal(length, d)[None], persistent=False)
        layers = cfg["layers"]
        alpha = (2 * layers) ** 0.25 if cfg["placement"] == "deepnorm" else 1.0
        self.blocks = nn.ModuleList(Block(d, cfg, alpha) for _ in range(layers))
        self.final = _token_norm(d, cfg["norm"]) if cfg["placement"] in _FINAL_NORM else None
        p = float(cfg.get("dropout", 0.0))  # dropped from the config while 0 (ids)
        self.drop = nn.Dropout(p) if p > 0 else None
        self.head = nn.Linear(d, num_outputs)
        if cfg["tie_embeddings"]:
            if not self.tokens:
                raise ValueError("model.tie_embeddings needs token inputs (a text dataset)")
            self.head.weight = self.embed.weight
        _init(self, cfg)

    def embed_inputs(self, x: Tensor) -> Tensor:
        if self.tokens:
            h = self.embed(x.long())
        elif x.dim() == 3:
            h = self.embed(x)
        else:
            h = self.embed(x).flatten(2).transpose(1, 2)  # (N, d, H/p, W/p) → (N, T, d)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
        if self.pos is not None:
            h = h + self.pos
        elif hasattr(self, "pos_table"):
            h = h + self.pos_table
        return h if self.drop is None else self.drop(h)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed_inputs(x)
        for block in self.blocks:
            h = block(h)
        h = _apply(self.final, h)
        if self.readout == "tokens":
            return self.head(h)  # (N, T, V): the loop's loss takes every position as a row
        pooled = {"mean": lambda: h.mean(1), "cls": lambda: h[:, 0], "last": lambda: h[:, -1]}
        return self.head(pooled[self.readout]())


def _init(model: Transformer, cfg: dict[str, Any]) -> None:
    """``gpt2``: N(0, 0.02) weights, zero biases, residual projections / √(2L) (GPT-2);
    otherwise the shared schemes. DeepNorm then scales the FFN, value and output weights by β."""
    layers = cfg["layers"]
    if cfg["init"] == "gpt2":
        with torch.no_grad():
            for name, module in model.named_modules():
                if isinstance(module, nn.Linear | nn.Embedding | nn.Conv2d):
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj", "fc2")) else 0.02
                    module.weight.normal_(0.0, std)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
    else:
        init_weights(model, cfg)
    if cfg["placement"] == "deepnorm":
        beta = (8 * layers) ** -0.25
        with torch.no_grad():
            for block in model.blocks:
                d = block.attn.proj.in_features
                for weight in (block.fc1.weight, block.fc2.weight, block.attn.proj.weight):
                    weight.mul_(beta)
                block.attn.qkv.weight[2 * d :].mul_(beta)  # the value projection


def build_transformer(
    cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int
) -> Transformer:
    """``models.build`` entry point for kind ``transformer``."""
    return Transformer(tuple(sample_shape), cfg, num_outputs)
