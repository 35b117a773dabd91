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
from normbench.models.kinds import BUILT_IN_MODELS as MODELS

AFFINE_MODES: tuple[str, ...] = ("none", "per_feature", "linear")
LP_CHOICES: tuple[int | str, ...] = (1, 2, "inf")

# "package.module:Class" (the attribute part may be dotted, e.g. "pkg.mod:Outer.Inner").
_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Option:
    """One option of a norm: its type, default, allowed values or range, and meaning.

    ``type`` is one of ``int``, ``float``, ``bool``, ``choice``, ``affine``, ``str``.
    ``default`` is ``None`` only for a required option (``custom``'s ``target``).
    """

    name: str
    type: str
    default: Any
    summary: str
    choices: tuple[Any, ...] = ()
    min: float | None = None  # inclusive lower bound (ints and floats)
    max: float | None = None  # inclusive upper bound
    min_exclusive: bool = False  # e.g. eps > 0, not eps >= 0

    @property
    def required(self) -> bool:
        """True when the user must give the option (there is no default)."""
        return self.default is None

    def describe_type(self) -> str:
        """A short human-readable type, e.g. ``int >= 1`` or ``none|per_feature|linear``."""
        if self.type == "choice":
            return "|".join(str(c) for c in self.choices)
        if self.type == "affine":
            return "|".join(AFFINE_MODES)
        text = self.type
        if self.min is not None:
            text += f" {'>' if self.min_exclusive else '>='} {_fmt(self.min)}"
        if self.max is not None:
            text += f" <= {_fmt(self.max)}" if self.min is None else f", <= {_fmt(self.max)}"
        return text


@dataclass(frozen=True)
class NormEntry:
    """A registered norm: what `normbench list norms` shows and what validation relies on."""

    name: str
    summary: str
    options: tuple[Option, ...]
    models: tuple[str, ...]  # subset of MODELS the norm can sit in
    uses_batch_stats: bool  # statistics across the batch axis → batch_size 1 is impossible
    wraps_layer: bool  # weight norm: re-parametrises the preceding Linear/Conv via wrap()
    factory: str  # "module:function" building (num_features, spec) -> nn.Module, imported lazily
    reference: str = ""  # paper, for the docs
    extra_options: bool = False  # custom: arbitrary extra options are passed to the class
    wrapper: str = ""  # "module:function" that wrap() applies to the layer (weight norm)
    needs_spatial: bool = False  # statistics over H×W / L: meaningless on (N, C) inputs
    option_map: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_map", {o.name: o for o in self.options})

    def defaults(self) -> dict[str, Any]:
        """The option defaults (required options left out)."""
        return {o.name: o.default for o in self.options if not o.required}


@dataclass(frozen=True)
class NormContext:
    """Where the norm will sit; used for validation only."""

    model: str  # "mlp" | "cnn" | "rnn"
    widths: tuple[int, ...]  # num_features of every normalised layer
    spatial: int  # 0 for mlp/rnn, 1 for Conv1d, 2 for Conv2d
    batch_size: int
    placement: str  # "pre" | "post"


def _fmt(value: Any) -> str:
    """Format a number compactly for messages and `list norms` (1e-05, 0.1, 3)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value)) if value != 0 else "0"
    return str(value)


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


_TRACK = Option(
    "track_running_stats",
    "bool",
    True,
    "keep running statistics for eval (false: batch statistics in eval too)",
)

_ALL = MODELS
_CNN = ("cnn",)


def _entry(
    name: str,
    summary: str,
    options: list[Option],
    *,
    models: tuple[str, ...] = _ALL,
    batch: bool = False,
    factory: str,
    reference: str = "",
    wrapper: str = "",
    extra: bool = False,
) -> NormEntry:
    return NormEntry(
        name=name,
        summary=summary,
        options=tuple(options),
        models=models,
        uses_batch_stats=batch,
        wraps_layer=bool(wrapper),
        factory=factory,
        reference=reference,
        extra_options=extra,
        wrapper=wrapper,
        needs_spatial="mlp" not in models and "rnn" not in models,
    )


_L = "normbench.norms.layers"
_R = "normbench.norms.research"

NORMS: dict[str, NormEntry] = {
    e.name: e
    for e in [
        _entry("none", "no normalisation (identity)", [], factory=f"{_L}:build_none"),
        _entry(
            "batch",
            "batch norm: statistics per channel over batch (and space); running statistics in eval",
            [_momentum(), _eps(), _affine(), _TRACK],
            batch=True,
            factory=f"{_L}:build_batch",
            reference="Ioffe & Szegedy 2015",
        ),
        _entry(
            "layer",
            "layer norm: per example over all non-batch axes (features; C and space "
            "for conv), per-channel γ/β",
            [_eps(), _affine()],
            factory=f"{_L}:build_layer",
            reference="Ba et al. 2016",
        ),
        _entry(
            "group",
            "group norm: per example over groups of C/groups channels (and space)",
            [
                Option(
                    "groups", "int", 32, "number of channel groups; must divide every width", min=1
                ),
                _eps(),
                _affine(),
            ],
            factory=f"{_L}:build_group",
            reference="Wu & He 2018",
        ),
        _entry(
            "instance",
            "instance norm: per example and channel over space (cnn only)",
            [_eps(), _affine()],
            models=_CNN,
            factory=f"{_L}:build_instance",
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
            factory=f"{_L}:build_rms",
            reference="Zhang & Sennrich 2019",
        ),
        _entry(
            "weight",
            "weight norm: w = g · v/‖v‖ on the preceding Linear/Conv (no activation normalisation)",
            [],
            wrapper=f"{_L}:wrap_weight",
            factory=f"{_L}:build_none",
            reference="Salimans & Kingma 2016",
        ),
        _entry(
            "custom",
            "your own class: target 'package.module:Class', built as "
            "Class(num_features, **options)",
            [Option("target", "str", None, "'package.module:Class' of the norm class")],
            factory=f"{_L}:build_custom",
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
            factory=f"{_R}:build_batch_renorm",
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
            factory=f"{_R}:build_noisy_batch",
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
            factory=f"{_R}:build_lp_batch",
            reference="Santurkar et al. 2018",
        ),
        _entry(
            "batch_reference",
            "batch norm written from the formulas (biased batch variance, "
            "unbiased running variance); equals torch BN",
            [_momentum(), _eps(), _affine()],
            batch=True,
            factory=f"{_R}:build_batch_reference",
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
            models=_CNN,
            factory=f"{_R}:build_frn",
            reference="Singh & Krishnan 2019",
        ),
        _entry(
            "mean_only_batch",
            "mean-only batch norm: x − μ_B (running mean in eval) + bias",
            [_momentum(), Option("bias", "bool", True, "add a learned per-channel bias")],
            batch=True,
            factory=f"{_R}:build_mean_only_batch",
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
            factory=f"{_R}:build_ghost_batch",
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
            models=_CNN,
            factory=f"{_R}:build_cross_norm",
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
            models=("mlp", "cnn"),
            batch=True,
            factory=f"{_R}:build_decorrelated_batch",
            reference="Huang et al. 2018",
        ),
    ]
}


# --- resolving ---------------------------------------------------------------------------------


def _type_error(opt: Option, value: Any, expected: str) -> OptionError:
    return OptionError(f"{opt.name} must be {expected}, got {value!r}", (opt.name,))


def _check_range(opt: Option, value: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"{opt.name} must be a finite number, got {value!r}", (opt.name,))
    low_bad = opt.min is not None and (value <= opt.min if opt.min_exclusive else value < opt.min)
    high_bad = opt.max is not None and value > opt.max
    if low_bad or high_bad:
        raise OptionError(f"{opt.name} must be {opt.describe_type()}, got {value!r}", (opt.name,))


def _coerce_affine(opt: Option, value: Any) -> str:
    # YAML `true`/`false` are the common spelling; a missing value (null) means none.
    if value is True:
        return "per_feature"
    if value is False or value is None:
        return "none"
    if isinstance(value, str) and value in AFFINE_MODES:
        return value
    raise OptionError(
        f"affine must be one of {', '.join(AFFINE_MODES)} (or true/false), got {value!r}"
        f"{did_you_mean(str(value), AFFINE_MODES)}",
        (opt.name,),
    )


def _coerce_choice(opt: Option, value: Any) -> Any:
    # Choices mix ints and the string "inf" (ℓp); accept the spellings YAML produces:
    # 2, 2.0, "2", "inf", .inf — and store one canonical, JSON-safe form.
    for choice in opt.choices:
        if isinstance(value, bool):
            break
        if value == choice or str(value).strip().lower() == str(choice):
            return choice
        if isinstance(value, float) and choice == "inf" and math.isinf(value) and value > 0:
            return choice
        if isinstance(value, float | int) and isinstance(choice, int) and value == choice:
            return choice
    raise OptionError(
        f"{opt.name} must be one of {', '.join(str(c) for c in opt.choices)}, got {value!r}",
        (opt.name,),
    )


def _coerce(opt: Option, value: Any) -> Any:
    """Check one option value's type and range; return its canonical form."""
    if opt.type == "bool":
        if not isinstance(value, bool):
            raise _type_error(opt, value, "true or false")
        return value
    if opt.type == "int":
        # bool is an int subclass in Python; `groups: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _type_error(opt, value, "an integer")
        _check_range(opt, value)
        return value
    if opt.type == "float":
        if isinstance(value, bool):
            raise _type_error(opt, value, "a number")
        if isinstance(value, str):
            # PyYAML reads `1e-5` (no dot) as a string; accept numeric strings for that reason.
            try:
                value = float(value)
            except ValueError:
                raise _type_error(opt, value, "a number") from None
        elif not isinstance(value, int | float):
            raise _type_error(opt, value, "a number")
        value = float(value)
        _check_range(opt, value)
        return value
    if opt.type == "affine":
        return _coerce_affine(opt, value)
    if opt.type == "choice":
        return _coerce_choice(opt, value)
    if opt.type == "str":
        if not isinstance(value, str):
            raise _type_error(opt, value, "a string")
        return value
    raise AssertionError(f"unknown option type {opt.type!r}")  # registry bug, not user input


# Other spellings people type (torch / paper names). Used only to suggest the canonical name:
# "batchnrom" is closest to "batchnorm", so the suggestion is 'batch', not 'batch_renorm'.
_ALIASES: dict[str, str] = {
    "batchnorm": "batch",
    "bn": "batch",
    "batch_norm": "batch",
    "layernorm": "layer",
    "ln": "layer",
    "layer_norm": "layer",
    "groupnorm": "group",
    "gn": "group",
    "group_norm": "group",
    "instancenorm": "instance",
    "in": "instance",
    "instance_norm": "instance",
    "rmsnorm": "rms",
    "rms_norm": "rms",
    "weightnorm": "weight",
    "wn": "weight",
    "weight_norm": "weight",
    "identity": "none",
    "no": "none",
    "off": "none",
    "batchrenorm": "batch_renorm",
    "renorm": "batch_renorm",
    "brn": "batch_renorm",
    "ghostbatchnorm": "ghost_batch",
    "ghost": "ghost_batch",
    "gbn": "ghost_batch",
    "filterresponsenorm": "frn",
    "crossnorm": "cross_norm",
    "dbn": "decorrelated_batch",
    "meanonly": "mean_only_batch",
    "noisy": "noisy_batch",
}


def _unknown_norm(word: object) -> str:
    """``unknown norm 'x' — did you mean 'y'? (choose from …)``, suggesting through aliases."""
    names = list(NORMS)
    text = str(word).strip().lower().replace("-", "_")
    candidates = {**{n: n for n in names}, **_ALIASES}
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

    if kind == "custom":
        _check_target_form(out["target"])
    if kind == "batch_renorm":
        for which in ("r_max", "d_max"):
            if out[f"{which}_end"] < out[f"{which}_start"]:
                raise OptionError(
                    f"{which}_end ({out[f'{which}_end']}) must not be before {which}_start "
                    f"({out[f'{which}_start']})",
                    (f"{which}_end",),
                )
    if kind == "noisy_batch" and out["scale_high"] < out["scale_low"]:
        raise OptionError(
            f"scale_high ({out['scale_high']}) must be >= scale_low ({out['scale_low']})",
            ("scale_high",),
        )
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


def custom_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments a custom norm class receives (everything but kind and target)."""
    return {k: v for k, v in spec.items() if k not in ("kind", "target")}


# --- checks against where the norm sits ------------------------------------------------------


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


def _check_group(spec: Mapping[str, Any], ctx: NormContext) -> None:
    _check_divides("groups", spec["groups"], ctx.widths, "channels")


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


_EXTRA_CHECKS: dict[str, Callable[[Mapping[str, Any], NormContext], None]] = {
    "group": _check_group,
    "decorrelated_batch": _check_decorrelated,
    "ghost_batch": _check_ghost,
}


def check_norm(spec: str | Mapping[str, Any], ctx: NormContext) -> None:
    """Raise ``OptionError`` when a resolved norm spec cannot work where it will sit.

    Pure (never imports anything); ``check_custom_importable`` is the separate import check.
    """
    spec = resolve_norm(spec)  # idempotent; lets callers pass a name or a raw mapping too
    kind = spec["kind"]
    entry = NORMS[kind]
    if ctx.model not in entry.models:
        why = (
            " — it needs a spatial axis (statistics over H×W or L), which an "
            f"{ctx.model} layer does not have"
            if entry.needs_spatial
            else ""
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
    check = _EXTRA_CHECKS.get(kind)
    if check is not None:
        check(spec, ctx)


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
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise OptionError(f"cannot import {what} target '{target}': {err}", ("target",)) from None
    except (Exception, SystemExit) as err:  # the user's module raised or exited while importing
        raise OptionError(
            f"cannot import {what} target '{target}': importing '{module_name}' raised "
            f"{type(err).__name__}: {err}",
            ("target",),
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise OptionError(
                f"cannot import {what} target '{target}': '{module_name}' has no "
                f"attribute '{attr}'",
                ("target",),
            )
        obj = getattr(obj, part)
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


# --- listing -----------------------------------------------------------------------------------


def option_text(opt: Option) -> str:
    """``groups=32`` / ``target (required)`` for `normbench list norms`."""
    if opt.required:
        return f"{opt.name} (required)"
    default = opt.default
    if isinstance(default, bool):
        return f"{opt.name}={'true' if default else 'false'}"  # YAML spelling, as users write it
    return f"{opt.name}={_fmt(default)}"


def norm_rows() -> list[dict[str, str]]:
    """One row per norm for `normbench list norms`: name, models, options, summary."""
    rows = []
    for entry in NORMS.values():
        opts = ", ".join(option_text(o) for o in entry.options)
        if entry.extra_options:
            opts += ", …any options of the class"
        rows.append(
            {
                "name": entry.name,
                "models": ", ".join(entry.models),
                "options": opts,
                "summary": entry.summary,
            }
        )
    return rows
