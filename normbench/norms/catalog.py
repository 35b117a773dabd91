"""Torch-free norm registry: names, options, defaults and validation of norm specs."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from normbench.errors import OptionError, did_you_mean, unknown

# Nothing in this module may import torch (directly or through normbench.norms.layers):
# `normbench validate`, `list` and `--help` must stay instant. A test checks it.
from normbench.models.catalog import NORM_LAYOUTS, kinds_with_layout
from normbench.options import AFFINE_MODES as AFFINE_MODES
from normbench.options import TARGET_RE as _TARGET_RE
from normbench.options import Option
from normbench.options import coerce as _coerce
from normbench.streams import stdout_to_stderr
from normbench.usercode import UserCodeStopped, describe

LP_CHOICES: tuple[int | str, ...] = (1, 2, "inf")

_IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class NormEntry:
    """A registered norm: what `normbench list norms` shows, what validation relies on, and
    what ``normbench.norms.make`` builds.

    Everything a norm needs lives here, so adding one is this entry (``register_norm``) plus
    its class: ``cls`` is built as ``cls(num_features, **options)`` with every option of the
    resolved spec as a keyword (the ``kind`` left out), like timm's ``create_norm_layer``.
    """

    name: str
    summary: str
    options: tuple[Option, ...]
    # Where it can sit, as its input looks there (models.catalog.NORM_LAYOUTS): the model kinds
    # it fits follow from the kinds' own layouts.
    layouts: tuple[str, ...]
    uses_batch_stats: bool  # statistics across the batch axis → batch_size 1 is impossible
    wraps_layer: bool  # weight norm: re-parametrises the preceding Linear/Conv via wrap()
    # "module:Class" (or a function with the same signature), imported lazily: a string, so
    # this module stays torch-free.
    cls: str
    reference: str = ""  # paper, for the docs
    extra_options: bool = False  # custom: arbitrary extra options are passed to the class
    wrapper: str = ""  # "module:function" that wrap() applies as wrapper(layer, **options)
    # Seeds of a variant with this norm may train as one stacked model (normbench.train.batched):
    # a per-member module with no cross-member state.
    stackable: bool = False
    # Subtracts a per-channel mean, which cancels a bias right before it exactly (Ioffe &
    # Szegedy §3.2), so the models drop that bias in "pre" placement. A mean over features
    # (layer, group) or no centring (rms) does not cancel a per-feature bias: those keep it.
    centres_per_channel: bool = False
    aliases: tuple[str, ...] = ()  # other spellings, used only to suggest this name
    # Checks between options of a resolved spec (raise OptionError), run by resolve_norm.
    check_options: OptionsCheck | None = field(default=None, compare=False)
    # Checks against where the norm sits (widths, batch size), run by check_norm.
    check_context: ContextCheck | None = field(default=None, compare=False)
    option_map: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_map", {o.name: o for o in self.options})

    @property
    def needs_spatial(self) -> bool:
        """Statistics over H×W / L: meaningless on (N, C) inputs."""
        return self.layouts == ("spatial",)

    @property
    def models(self) -> tuple[str, ...]:
        """The registered model kinds whose norm layout this norm fits."""
        return kinds_with_layout(self.layouts)

    def defaults(self) -> dict[str, Any]:
        """The option defaults (required options left out)."""
        return {o.name: o.default for o in self.options if not o.required}


@dataclass(frozen=True)
class NormContext:
    """Where the norm will sit; used for validation only."""

    model: str  # the model kind, for messages
    widths: tuple[int, ...]  # num_features of every normalised layer
    spatial: int  # 0 for mlp/rnn, 1 for Conv1d, 2 for Conv2d
    batch_size: int
    placement: str  # "pre" | "post" (or the kind's own placements)
    # models.catalog.NORM_LAYOUTS: how the norm's input looks there ("": the kind's own).
    layout: str = ""

    def __post_init__(self) -> None:
        if not self.layout:
            from normbench.models.catalog import MODELS

            kind = MODELS.get(self.model)
            object.__setattr__(self, "layout", kind.norm_layout if kind else "features")


# --- shared option definitions ---------------------------------------------------------------


def _eps(default: float = 1e-5) -> Option:
    return Option(
        "eps",
        "float",
        default,
        "added to the variance for numerical stability",
        min=0.0,
        min_exclusive=True,
    )


def _momentum(default: float = 0.1) -> Option:
    return Option(
        "momentum",
        "float",
        default,
        "update rate of the running statistics used in eval (torch convention)",
        min=0.0,
        max=1.0,
    )


def _affine(default: str = "per_feature") -> Option:
    return Option(
        "affine",
        "affine",
        default,
        "recovery step after normalising: none, per-feature γ/β, or a learned "
        "C×C linear map + bias (identity init); true = per_feature, false = none",
    )


def _alpha_init() -> Option:
    # DyT's and Derf's learnable input scale α starts at 0.5, as in the authors' code.
    return Option(
        "alpha_init", "float", 0.5, "initial α (0.5 in the authors' code)",
        min=0.0, min_exclusive=True,
    )  # fmt: skip


_TRACK = Option(
    "track_running_stats",
    "bool",
    True,
    "keep running statistics for eval (false: batch statistics in eval too)",
)

_ALL = tuple(NORM_LAYOUTS)
_SPATIAL = ("spatial",)

# An entry's checks: between options of a spec, and against where the norm sits.
OptionsCheck = Callable[[Mapping[str, Any]], None]
ContextCheck = Callable[[Mapping[str, Any], NormContext], None]


def _entry(
    name: str,
    summary: str,
    options: list[Option],
    *,
    layouts: tuple[str, ...] = _ALL,
    batch: bool = False,
    stackable: bool = False,
    cls: str,
    reference: str = "",
    wrapper: str = "",
    extra: bool = False,
    centres: bool = False,
    aliases: tuple[str, ...] = (),
    check_options: OptionsCheck | None = None,
    check_context: ContextCheck | None = None,
) -> NormEntry:
    return NormEntry(
        name=name,
        summary=summary,
        options=tuple(options),
        layouts=layouts,
        uses_batch_stats=batch,
        stackable=stackable,
        wraps_layer=bool(wrapper),
        cls=cls,
        reference=reference,
        extra_options=extra,
        wrapper=wrapper,
        centres_per_channel=centres,
        aliases=aliases,
        check_options=check_options,
        check_context=check_context,
    )


# --- the entries' own checks -------------------------------------------------------------------


def _check_custom_target(spec: Mapping[str, Any]) -> None:
    _check_target_form(spec["target"])


def _check_renorm_schedule(spec: Mapping[str, Any]) -> None:
    for which in ("r_max", "d_max"):
        if spec[f"{which}_end"] < spec[f"{which}_start"]:
            raise OptionError(
                f"{which}_end ({spec[f'{which}_end']}) must not be before {which}_start "
                f"({spec[f'{which}_start']})",
                (f"{which}_end",),
            )


def _check_noise_scale(spec: Mapping[str, Any]) -> None:
    if spec["scale_high"] < spec["scale_low"]:
        raise OptionError(
            f"scale_high ({spec['scale_high']}) must be >= scale_low ({spec['scale_low']})",
            ("scale_high",),
        )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _common_divisors(widths: tuple[int, ...]) -> list[int]:
    g = 0
    for w in widths:
        g = math.gcd(g, w)
    return _divisors(g) if g else []


def _check_divides(name: str, value: int, widths: tuple[int, ...], what: str) -> None:
    bad = [w for w in widths if w % value != 0]
    if bad:
        ok = _common_divisors(widths)
        hint = f" (values that divide all of them: {', '.join(map(str, ok))})" if ok else ""
        raise OptionError(
            f"{name} {value} must divide the number of {what} of every normalised layer, "
            f"but not {', '.join(map(str, sorted(set(bad))))}{hint}",
            (name,),
        )


AUTO_MAX_GROUPS = 32  # Wu & He's default, where a layer's width allows it


def auto_groups(channels: int, most: int = AUTO_MAX_GROUPS) -> int:
    """``groups: auto``: the largest divisor of ``channels`` that is at most ``most``."""
    return max(d for d in range(1, min(channels, most) + 1) if channels % d == 0)


def _check_group(spec: Mapping[str, Any], ctx: NormContext) -> None:
    if spec["groups"] != "auto":  # auto fits every width by construction
        _check_divides("groups", spec["groups"], ctx.widths, "channels")
    if ctx.layout == "spatial":
        return  # one channel per group is instance norm there: statistics over space
    for width in ctx.widths:
        # auto keeps two channels a group on (N, C) inputs (norms.layers.AutoGroupNorm)
        if spec["groups"] != "auto" and spec["groups"] == width:
            raise OptionError(
                f"{width} groups of {width} channels leave one value per group on this "
                f"model's (N, C) inputs, so every output would be the bias β; use fewer "
                f"groups (e.g. groups: {auto_groups(width, max(1, width // 2))}, or auto) "
                "or layer",
                ("groups",),
            )


def _check_decorrelated(spec: Mapping[str, Any], ctx: NormContext) -> None:
    _check_divides("group_size", spec["group_size"], ctx.widths, "channels")


def _check_ghost(spec: Mapping[str, Any], ctx: NormContext) -> None:
    size = spec["ghost_size"]
    if ctx.batch_size % size != 0:
        ok = [d for d in _divisors(ctx.batch_size) if d > 1]
        raise OptionError(
            f"ghost_size {size} must divide batch_size {ctx.batch_size} so that every virtual "
            f"batch has the same size (try one of {', '.join(map(str, ok)) or 'none'})",
            ("ghost_size",),
        )


_L = "normbench.norms.layers"
_R = "normbench.norms.research"

# name → entry, in the order `normbench list norms`, the schema and the docs show them.
NORMS: dict[str, NormEntry] = {}


def register_norm(entry: NormEntry) -> NormEntry:
    """Add a norm to the registry: after this, suites, `validate`, `list norms`, the schema and
    ``normbench.norms.make`` know it. Returns the entry.

    The registry lives in the process that registers: a run's worker processes start from a
    fresh interpreter (forkserver or spawn) and know only the norms registered on import of
    ``normbench.norms.catalog``. A norm registered from user code is unknown there, so its
    runs must train in-process (one local worker, no ``--threads-per-worker``, no devices),
    which is what a run chooses without ``--workers`` when a variant uses such a norm; the
    ``custom`` norm (``target: "package.module:Class"``) reaches workers instead.
    Raises ``ValueError`` for an entry that contradicts the registry (a registry bug, not user
    input): a taken name or alias, an unknown model, a malformed class path.
    """
    taken = {alias: name for name, e in NORMS.items() for alias in (name, *e.aliases)}
    for word in (entry.name, *entry.aliases):
        if word in taken:
            raise ValueError(f"norm name or alias {word!r} is taken by norm {taken[word]!r}")
        # _unknown_norm looks words up lower-cased with '-' as '_': another form never matches.
        if word != word.strip().lower().replace("-", "_"):
            raise ValueError(f"norm name or alias {word!r} must be lower case, '_' for '-'")
    if len(set(entry.aliases)) != len(entry.aliases):
        raise ValueError(f"norm {entry.name!r} lists an alias twice")
    if not entry.layouts or not set(entry.layouts) <= set(NORM_LAYOUTS):
        raise ValueError(f"norm {entry.name!r}: layouts must be some of {', '.join(NORM_LAYOUTS)}")
    for path in filter(None, (entry.cls, entry.wrapper)):
        if not _TARGET_RE.match(path):
            raise ValueError(f"norm {entry.name!r}: {path!r} is not 'package.module:Class'")
    if entry.wraps_layer != bool(entry.wrapper):
        raise ValueError(f"norm {entry.name!r}: wraps_layer needs a wrapper and vice versa")
    NORMS[entry.name] = entry
    return entry


def _register_all(entries: list[NormEntry]) -> None:
    for entry in entries:
        register_norm(entry)


# The built-in norms, registered like any other.
_register_all(
    [
        _entry(
            "none",
            "no normalisation (identity)",
            [],
            cls="torch.nn:Identity",
            stackable=True,
            aliases=("identity", "no", "off"),
        ),
        _entry(
            "batch",
            "batch norm: statistics per channel over batch (and space); running statistics in eval",
            [_momentum(), _eps(), _affine(), _TRACK],
            batch=True,
            stackable=True,
            cls=f"{_L}:build_batch",
            centres=True,
            aliases=("batchnorm", "bn", "batch_norm"),
            reference="Ioffe & Szegedy 2015",
        ),
        _entry(
            "layer",
            "layer norm: per example over all non-batch axes (features; C and space "
            "for conv; each token over its channels in a transformer), per-channel γ/β",
            [_eps(), _affine()],
            stackable=True,
            cls=f"{_L}:build_layer",
            aliases=("layernorm", "ln", "layer_norm"),
            reference="Ba et al. 2016",
        ),
        _entry(
            "group",
            "group norm: per example over groups of C/groups channels (and space)",
            [
                Option(
                    "groups",
                    "int_or_auto",
                    "auto",
                    "number of channel groups (must divide every width), or auto: per layer the "
                    f"largest divisor of its width up to {AUTO_MAX_GROUPS} (recorded per layer)",
                    min=1,
                ),
                _eps(),
                _affine(),
            ],
            cls=f"{_L}:build_group",
            aliases=("groupnorm", "gn", "group_norm"),
            check_context=_check_group,
            reference="Wu & He 2018",
        ),
        _entry(
            "instance",
            "instance norm: per example and channel over space (cnn only)",
            [_eps(), _affine()],
            layouts=_SPATIAL,
            cls=f"{_L}:build_instance",
            centres=True,
            aliases=("instancenorm", "in", "instance_norm"),
            reference="Ulyanov et al. 2016",
        ),
        _entry(
            "rms",
            "RMSNorm: a / RMS(a) · g over the same axes as layer, no centring",
            [
                _eps(1e-6),
                _affine(),
                Option(
                    "bias", "bool", False, "add a learned bias after the gain (the paper has none)"
                ),
            ],
            cls=f"{_L}:build_rms",
            stackable=True,
            aliases=("rmsnorm", "rms_norm"),
            reference="Zhang & Sennrich 2019",
        ),
        _entry(
            "weight",
            "weight norm: w = g · v/‖v‖ on the preceding Linear/Conv (no activation normalisation)",
            [],
            wrapper=f"{_L}:wrap_weight",
            # A transformer's norms sit on the residual stream, not right after a layer.
            layouts=("features", "recurrent", "spatial"),
            cls="torch.nn:Identity",
            aliases=("weightnorm", "wn", "weight_norm"),
            reference="Salimans & Kingma 2016",
        ),
        _entry(
            "custom",
            "your own class: target 'package.module:Class', built as "
            "Class(num_features, **options)",
            [Option("target", "str", None, "'package.module:Class' of the norm class")],
            cls=f"{_L}:build_custom",
            check_options=_check_custom_target,
            extra=True,
        ),
        # --- research norms -------------------------------------------------------------
        _entry(
            "batch_renorm",
            "batch renorm: x̂ = (x−μ_B)/σ_B · r + d, r = clip(σ_B/σ, 1/r_max, "
            "r_max), d = clip((μ_B−μ)/σ, ±d_max), r_max/d_max relaxed linearly "
            "from 1/0",
            [
                Option(
                    "momentum",
                    "float",
                    0.01,
                    "update rate α of the running μ and σ (renorm uses them in training too)",
                    min=0.0,
                    max=1.0,
                ),
                _eps(),
                _affine(),
                Option("r_max", "float", 3.0, "final r_max", min=1.0),
                Option("d_max", "float", 5.0, "final d_max", min=0.0),
                Option(
                    "r_max_start",
                    "int",
                    5000,
                    "training step where r_max starts to grow from 1",
                    min=0,
                ),
                Option(
                    "r_max_end",
                    "int",
                    40000,
                    "training step where r_max reaches its final value",
                    min=0,
                ),
                Option(
                    "d_max_start",
                    "int",
                    5000,
                    "training step where d_max starts to grow from 0",
                    min=0,
                ),
                Option(
                    "d_max_end",
                    "int",
                    25000,
                    "training step where d_max reaches its final value",
                    min=0,
                ),
            ],
            batch=True,
            cls=f"{_R}:BatchRenorm",
            centres=True,
            aliases=("batchrenorm", "renorm", "brn"),
            check_options=_check_renorm_schedule,
            reference="Ioffe 2017",
        ),
        _entry(
            "noisy_batch",
            "batch norm + Santurkar's noise (training only): per unit "
            "μ~U(−0.5,0.5), σ~U(1,1.25); per sample m~U(μ±0.1), s~N(σ,0.1); "
            "a ← s·a + m",
            [
                _momentum(),
                _eps(),
                _affine(),
                _TRACK,
                Option(
                    "mean_range", "float", 0.5, "per-unit μ ~ U(−mean_range, mean_range)", min=0.0
                ),
                Option("scale_low", "float", 1.0, "per-unit σ ~ U(scale_low, scale_high)", min=0.0),
                Option("scale_high", "float", 1.25, "per-unit σ ~ U(scale_low, scale_high)"),
                Option("sample_mean_width", "float", 0.1, "per-sample m ~ U(μ−w, μ+w)", min=0.0),
                Option("sample_scale_std", "float", 0.1, "per-sample s ~ N(σ, std)", min=0.0),
            ],
            batch=True,
            cls=f"{_R}:NoisyBatchNorm",
            centres=True,
            aliases=("noisy",),
            check_options=_check_noise_scale,
            reference="Santurkar et al. 2018",
        ),
        _entry(
            "lp_batch",
            "ℓp batch norm, per channel over the batch, c = x − μ_B: p=1 c/(mean|c| "
            "+ ε), p=inf c/(max|c| + ε), p=2 c/√(mean c² + ε) (= BN); running μ "
            "and denominator in eval",
            [
                Option("p", "choice", 1, "which ℓp magnitude to divide by", choices=LP_CHOICES),
                _momentum(),
                _eps(),
                _affine(),
            ],
            batch=True,
            cls=f"{_R}:LpBatchNorm",
            centres=True,
            reference="Santurkar et al. 2018",
        ),
        _entry(
            "batch_reference",
            "batch norm written from the formulas (biased batch variance, "
            "unbiased running variance); equals torch BN",
            [_momentum(), _eps(), _affine()],
            batch=True,
            cls=f"{_R}:ReferenceBatchNorm",
            centres=True,
            reference="Ioffe & Szegedy 2015",
        ),
        _entry(
            "frn",
            "filter response norm + TLU: ν² = mean x² over space; max(γ·x/√(ν²+ε)+β, τ) (cnn only)",
            [
                _eps(1e-6),
                _affine(),
                Option("tlu", "bool", True, "apply the thresholded linear unit max(y, τ)"),
            ],
            layouts=_SPATIAL,
            cls=f"{_R}:FilterResponseNorm",
            aliases=("filterresponsenorm",),
            reference="Singh & Krishnan 2019",
        ),
        _entry(
            "mean_only_batch",
            "mean-only batch norm: x − μ_B (running mean in eval) + bias",
            [_momentum(), Option("bias", "bool", True, "add a learned per-channel bias")],
            batch=True,
            cls=f"{_R}:MeanOnlyBatchNorm",
            centres=True,
            aliases=("meanonly",),
            reference="Salimans & Kingma 2016",
        ),
        _entry(
            "ghost_batch",
            "ghost batch norm: batch norm statistics over virtual sub-batches "
            "of ghost_size examples",
            [
                Option(
                    "ghost_size",
                    "int",
                    32,
                    "examples per virtual batch; must divide batch_size",
                    min=2,
                ),
                _momentum(),
                _eps(),
                _affine(),
            ],
            batch=True,
            cls=f"{_R}:GhostBatchNorm",
            centres=True,
            aliases=("ghostbatchnorm", "ghost", "gbn"),
            check_context=_check_ghost,
            reference="Hoffer et al. 2017",
        ),
        _entry(
            "cross_norm",
            "CrossNorm: in training, with probability p swap per-channel mean/std "
            "between randomly paired examples; identity in eval (cnn only)",
            [
                Option(
                    "p",
                    "float",
                    0.5,
                    "probability of swapping at each training step",
                    min=0.0,
                    max=1.0,
                ),
                _eps(),
            ],
            layouts=_SPATIAL,
            cls=f"{_R}:CrossNorm",
            aliases=("crossnorm",),
            reference="Tang et al. 2021",
        ),
        _entry(
            "decorrelated_batch",
            "decorrelated batch norm: ZCA whitening Σ^(−1/2)(x − μ) over "
            "groups of group_size channels; running μ and whitening "
            "matrix in eval",
            [
                Option(
                    "group_size",
                    "int",
                    16,
                    "channels whitened together; must divide every width",
                    min=1,
                ),
                _eps(),
                _momentum(),
                _affine(),
            ],
            # Not rnn: per-time-step whitening of a recurrent state fails to converge
            # (linalg.eigh) on every seed, so it is refused at validation instead.
            layouts=("features", "spatial"),
            batch=True,
            cls=f"{_R}:DecorrelatedBatchNorm",
            centres=True,
            aliases=("dbn",),
            check_context=_check_decorrelated,
            reference="Huang et al. 2018",
        ),
        # --- point-wise replacements and batch statistics for transformers --------------
        _entry(
            "dyt",
            "Dynamic Tanh: γ·tanh(α·x) + β, α one learnable scalar; no statistics "
            "(a drop-in for layer norm in transformers)",
            [
                _alpha_init(),
                _affine(),
            ],
            stackable=True,  # point-wise, per-member parameters only
            cls=f"{_R}:DynamicTanh",
            aliases=("dynamic_tanh", "dynamictanh"),
            reference="Zhu, Chen, He, LeCun & Liu 2025",
        ),
        _entry(
            "derf",
            "Dynamic erf: γ·erf(α·x + s) + β, α and s learnable scalars; no statistics",
            [
                _alpha_init(),
                Option("shift_init", "float", 0.0, "initial shift s (0 in the authors' code)"),
                _affine(),
            ],
            stackable=True,  # point-wise, per-member parameters only
            cls=f"{_R}:DynamicErf",
            aliases=("dynamic_erf", "dynamicerf"),
            reference="Chen, Lu, Zhu, Sun & Liu 2025",
        ),
        _entry(
            "power",
            "PowerNorm: x / √(ψ² + ε) with ψ² the quadratic mean per channel over batch and "
            "positions — the batch's for warmup_steps steps, then the running one — and an "
            "approximate backward with a running gradient statistic; each position first "
            "divided by its RMS over channels (token_scaling)",
            [
                _eps(),
                Option(
                    "alpha_fwd",
                    "float",
                    0.9,
                    "decay of the running ψ² (forward)",
                    min=0.0,
                    max=1.0,
                ),
                Option(
                    "alpha_bwd",
                    "float",
                    0.9,
                    "decay factor of the backward's running gradient statistic",
                    min=0.0,
                    max=1.0,
                ),
                Option(
                    "warmup_steps",
                    "int",
                    10000,
                    "training steps that divide by the batch's ψ² (10,000 in the authors' code)",
                    min=0,
                ),
                Option(
                    "token_scaling",
                    "bool",
                    True,
                    "first divide each position by its quadratic mean over channels, as the "
                    "authors' code does",
                ),
                _affine(),
            ],
            batch=True,
            cls=f"{_R}:PowerNorm",
            aliases=("powernorm", "pn", "power_norm"),
            reference="Shen, Yao, Gholami, Mahoney & Keutzer 2020",
        ),
    ]
)

# What a worker process knows: it imports this module, not the code that registers more.
BUILT_IN_NORMS = frozenset(NORMS)


# --- resolving ---------------------------------------------------------------------------------


def _unknown_norm(word: object) -> str:
    """``unknown norm 'x' — did you mean 'y'? (choose from …)``, suggesting through aliases."""
    names = list(NORMS)
    text = str(word).strip().lower().replace("-", "_")
    # Aliases are other spellings people type (torch / paper names), used only to suggest the
    # canonical name: "batchnrom" is closest to "batchnorm", so it suggests 'batch', not
    # 'batch_renorm'.
    candidates = {
        **{n: n for n in names},
        **{alias: n for n, e in NORMS.items() for alias in e.aliases},
    }
    match = candidates.get(text)
    if match is None:
        import difflib

        close = difflib.get_close_matches(text, list(candidates), n=1, cutoff=0.6)
        match = candidates[close[0]] if close else None
    hint = f" — did you mean '{match}'?" if match else ""
    return f"unknown norm '{word}'{hint} (choose from {', '.join(names)})"


def resolve_norm(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """Turn a norm name or mapping into a full spec with every option filled in.

    ``"batch"`` → ``{"kind": "batch", "momentum": 0.1, "eps": 1e-05, "affine": "per_feature",
    "track_running_stats": True}``. Idempotent: resolving a resolved spec returns it unchanged.
    Raises ``OptionError`` with the path below the norm mapping on an unknown kind or option,
    a wrong type or an out-of-range value.
    """
    names = list(NORMS)
    if isinstance(value, str):
        if value not in NORMS:
            raise OptionError(_unknown_norm(value))
        raw: dict[str, Any] = {}
        kind = value
    elif isinstance(value, Mapping):
        if "kind" not in value:
            raise OptionError(f"a norm mapping needs 'kind' (one of {', '.join(names)})")
        kind = value["kind"]
        if not isinstance(kind, str) or kind not in NORMS:
            raise OptionError(_unknown_norm(kind), ("kind",))
        raw = {k: v for k, v in value.items() if k != "kind"}
    else:
        raise OptionError(
            f"a norm must be a name or a mapping like {{kind: group, groups: 8}}, got {value!r}"
        )

    entry = NORMS[kind]
    out: dict[str, Any] = {"kind": kind}
    for opt in entry.options:
        if opt.name in raw:
            out[opt.name] = _coerce(opt, raw[opt.name])
        elif opt.required:
            raise OptionError(f"norm '{kind}' needs option '{opt.name}' ({opt.summary})")
        else:
            out[opt.name] = opt.default

    extras = sorted(k for k in raw if k not in entry.option_map)
    if extras and not entry.extra_options:
        bad = extras[0]
        choices = [o.name for o in entry.options]
        if not choices:
            raise OptionError(f"norm '{kind}' takes no options, got '{bad}'", (bad,))
        raise OptionError(unknown(f"norm '{kind}' option", bad, choices), (bad,))
    for key in extras:
        # Extras become keyword arguments of the user's class: they must be identifiers.
        if not isinstance(key, str) or not _IDENT_RE.match(key):
            raise OptionError(
                f"custom norm option names must be Python identifiers, got {key!r}", (key,)
            )
        out[key] = raw[key]

    if entry.check_options is not None:
        entry.check_options(out)
    return out


def _check_target_form(target: str) -> None:
    if not _TARGET_RE.match(target):
        raise OptionError(
            f"target must look like 'package.module:Class', got {target!r}", ("target",)
        )


def split_target(target: str) -> tuple[str, str]:
    """Split ``"pkg.mod:Class"`` into module and attribute path (form already checked)."""
    module, _, attr = target.partition(":")
    return module, attr


# --- checks against where the norm sits ------------------------------------------------------


def check_norm(spec: str | Mapping[str, Any], ctx: NormContext) -> None:
    """Raise ``OptionError`` when a resolved norm spec cannot work where it will sit.

    Pure (never imports anything); ``check_custom_importable`` is the separate import check.
    """
    spec = resolve_norm(spec)  # idempotent; lets callers pass a name or a raw mapping too
    kind = spec["kind"]
    entry = NORMS[kind]
    if ctx.layout not in entry.layouts:
        why = (
            " — it needs a spatial axis (statistics over H×W or L), which an "
            f"{ctx.model} layer does not have"
            if entry.needs_spatial
            else f" (it fits {', '.join(entry.layouts)} layouts, not {ctx.layout})"
        )
        raise OptionError(
            f"norm '{kind}' works with {', '.join(entry.models)} models only, not {ctx.model}{why}"
        )
    if entry.needs_spatial and ctx.spatial < 1:
        raise OptionError(f"norm '{kind}' needs a spatial axis (Conv1d/Conv2d activations)")
    if entry.uses_batch_stats and ctx.batch_size < 2:
        raise OptionError(
            f"batch statistics undefined with batch_size {ctx.batch_size}: norm '{kind}' "
            "normalises with statistics across the batch; use layer, group or rms instead"
        )
    if entry.check_context is not None:
        entry.check_context(spec, ctx)


def check_custom_importable(spec: Mapping[str, Any]) -> None:
    """Import a custom norm's target and check it builds an ``nn.Module``.

    Kept apart from ``check_norm`` because it runs the user's module code (like Hydra's
    ``_target_``: importing the module executes it, so ``validate`` does too).
    Raises ``OptionError`` at path ``("target",)`` with a sentence naming the target and why.
    """
    if spec.get("kind") != "custom":
        return
    resolve_target(spec["target"])


MODULE_CLASS = "torch.nn.modules.module.Module"  # compared by name: no torch import here


def is_module_class(obj: Any) -> bool:
    """Whether ``obj`` is a subclass of ``torch.nn.Module`` (checked without importing torch)."""
    return isinstance(obj, type) and any(
        f"{c.__module__}.{c.__qualname__}" == MODULE_CLASS for c in obj.__mro__
    )


def is_module_factory(obj: Any) -> bool:
    """A Python function whose return annotation is an ``nn.Module`` subclass."""
    import inspect
    import typing

    if not inspect.isfunction(obj):
        return False
    try:
        returned = typing.get_type_hints(obj).get("return")
    except Exception:  # an annotation naming something unimportable: read its spelling
        returned = obj.__annotations__.get("return")
    if isinstance(returned, str):
        return returned.split(".")[-1] == "Module"
    return is_module_class(returned)


def resolve_target(target: str, what: str = "custom norm", accept: str = "module") -> Any:
    """Import ``"pkg.mod:Class"`` and return the object; ``OptionError`` on any failure.

    ``what`` names the target in messages (custom norm, model factory, dataset loader).
    ``accept="module"``: the object must be an ``nn.Module`` subclass, or a factory function
    annotated to return one (``def make(num_features: int, **options) -> nn.Module``);
    ``accept="function"``: an ``nn.Module`` subclass or any Python function (model factories
    and dataset loaders, whose results are checked on one batch before training). Anything
    else (``os:system``, ``collections:OrderedDict``) is refused before it is ever called.
    """
    import importlib

    if not _TARGET_RE.match(target):
        raise OptionError(
            f"target must look like 'package.module:name', got {target!r}", ("target",)
        )
    module_name, attr = split_target(target)
    try:
        # Importing runs the user's module: its prints must not reach stdout (--format json).
        with stdout_to_stderr():
            obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        hint = _module_hint(module_name) if isinstance(err, ModuleNotFoundError) else ""
        raise OptionError(
            f"cannot import {what} target '{target}': {err}{hint}", ("target",)
        ) from None
    except KeyboardInterrupt:
        raise UserCodeStopped(f"interrupted while importing {what} target '{target}'") from None
    except BaseException as err:  # the user's module raised or exited while importing
        raise OptionError(
            f"cannot import {what} target '{target}': importing '{module_name}' {describe(err)}",
            ("target",),
        ) from None
    owner = module_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise OptionError(
                f"cannot import {what} target '{target}': '{owner}' has no "
                f"attribute '{part}'{did_you_mean(part, names)}",
                ("target",),
            )
        obj = getattr(obj, part)
        owner = f"{owner}:{part}" if owner == module_name else f"{owner}.{part}"
    import inspect

    if accept == "function":
        fits, wanted = (
            is_module_class(obj) or inspect.isfunction(obj),
            "a Python function or a torch.nn.Module subclass",
        )
    else:
        fits = is_module_class(obj) or is_module_factory(obj)
        wanted = "a torch.nn.Module subclass (or a function annotated '-> nn.Module')"
    if not fits:
        raise OptionError(
            f"{what} target '{target}' is a {type(obj).__name__}, not {wanted}",
            ("target",),
        )
    return obj


def _module_hint(module_name: str) -> str:
    """`` — did you mean 'x'?`` for a module that was not found, from its package's modules
    (or the top-level ones on the path: the suite's folder and the working directory)."""
    import importlib
    import pkgutil

    parent, _, leaf = module_name.rpartition(".")
    try:
        path = importlib.import_module(parent).__path__ if parent else None
    except (Exception, SystemExit):  # the hint must never fail the message it decorates
        return ""
    names = [m.name for m in pkgutil.iter_modules(path)]
    return did_you_mean(leaf, names)


# --- listing -----------------------------------------------------------------------------------


def norm_rows() -> list[dict[str, str]]:
    """One row per norm for `normbench list norms`: name, models, options, summary."""
    rows = []
    for entry in NORMS.values():
        opts = ", ".join(o.describe() for o in entry.options)
        if entry.extra_options:
            opts += ", …any options of the class"
        rows.append(
            {
                "name": entry.name,
                "models": ", ".join(entry.models),
                "layouts": ", ".join(entry.layouts),
                "options": opts,
                "summary": entry.summary,
            }
        )
    return rows
