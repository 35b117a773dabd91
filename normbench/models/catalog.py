"""Model-kind and activation registries (torch-free): one entry holds everything per kind.

A ``ModelKind`` is the one seat of per-kind behaviour: its keys (typed ``Option``s, from which
the suite schema, validation and ``normbench list models`` derive), its own checks, the data
layouts it takes and how it views them, where its norms sit (the norm layout), the widths and
blocks diagnostics address, its placements and readouts, and its builder. Nothing outside an
entry and its builder module names a kind: adding one is an entry here, its builder module and
its docs (``tests/test_model_registry.py`` registers a toy kind from one test module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from normbench.errors import OptionError, unknown
from normbench.options import TARGET_RE, Option
from normbench.options import fill as fill_options

ACTIVATIONS: dict[str, str] = {
    "relu": "max(0, x)",
    "sigmoid": "1 / (1 + exp(-x)), as in Ioffe & Szegedy's MNIST net",
    "tanh": "hyperbolic tangent",
    "gelu": "Gaussian error linear unit",
    "silu": "x · sigmoid(x) (swish)",
    "leaky_relu": "max(0.01 x, x)",
    "identity": "no non-linearity (a linear network)",
}

# Where a norm sits, as the norm sees its input (a norm entry lists the layouts it fits):
# "features" (N, C) hidden units; "recurrent" (N, C) inside a recurrence, once per time step;
# "spatial" (N, C, L) or (N, C, H, W) convolution maps; "tokens" (N·T, C): each token of an
# (N, T, C) sequence is a row, so a per-row norm (layer, rms) normalises each token over its
# channels and batch norm takes statistics over batch × positions per channel.
NORM_LAYOUTS: dict[str, str] = {
    "features": "(N, C) hidden units",
    "recurrent": "(N, C) per time step inside a recurrence",
    "spatial": "(N, C, L) or (N, C, H, W) convolution maps",
    "tokens": "(N·T, C): each token of a sequence over its channels",
}

# The placements of the classic kinds: where the norm sits around the activation.
CLASSIC_PLACEMENTS: dict[str, str] = {
    "pre": "Layer → Norm → Act (the norm before the non-linearity, as Ioffe & Szegedy)",
    "post": "Layer → Act → Norm (the norm after the non-linearity)",
}

# ``norm: keep`` leaves a custom model's own norm layers as they are.
KEEP = "keep"

ModelCheck = Callable[[dict[str, Any], set[str]], None]
DataView = Callable[[Any, str], tuple[Any, str]]


@dataclass(frozen=True)
class ModelKind:
    """One model family and everything normbench knows of it.

    ``builder`` is ``"module:function"``, imported only when a model is built (the registry
    stays torch-free), called as ``function(model_cfg, sample_shape, num_outputs)``.
    ``options`` are the kind's keys besides ``kind`` and ``norm`` (common keys included, with
    this kind's defaults). ``accepts`` are the dataset layouts it takes and ``view(x, layout)``
    reshapes a dataset's inputs for it (returning the new layout); ``None`` keeps them.
    ``widths`` / ``blocks`` give the normalised widths and the number of blocks diagnostics
    index (``None``: known once built). ``fill(cfg, given, data_layout)`` sets defaults that
    depend on the data. ``stackable``: its seeds may train as one stacked model.
    ``id_defaults`` are keys the resolved config carries beyond its options, so that variant
    ids made before the registry stay as they were. ``normless`` are the placements that build
    the same model when the norm is ``none`` (nothing is placed): a grid sweeping them with no
    norm trains one model several times, which the suite's warnings say.
    """

    name: str
    summary: str
    options: tuple[Option, ...]
    builder: str
    norm_layout: str
    accepts: tuple[str, ...]
    placements: Mapping[str, str] = field(default_factory=lambda: CLASSIC_PLACEMENTS)
    view: DataView | None = field(default=None, compare=False)
    widths: Callable[[dict[str, Any]], tuple[int, ...]] = field(
        default=lambda cfg: (), compare=False
    )
    blocks: Callable[[dict[str, Any]], int | None] = field(default=lambda cfg: None, compare=False)
    check: ModelCheck | None = field(default=None, compare=False)
    fill: Callable[[dict[str, Any], set[str], str], None] | None = field(
        default=None, compare=False
    )
    spatial: Callable[[str], int] = field(default=lambda layout: 0, compare=False)
    stackable: bool = False
    id_defaults: Mapping[str, Any] = field(default_factory=dict)
    normless: frozenset[str] = frozenset(CLASSIC_PLACEMENTS)
    custom: bool = False  # the user's own factory: resolved by normbench.models.custom

    @property
    def keys(self) -> frozenset[str]:
        """Every key a suite may write under ``model:`` for this kind."""
        return frozenset({"kind", "norm", *(o.name for o in self.options)})

    @property
    def option_map(self) -> dict[str, Option]:
        return {o.name: o for o in self.options}


MODELS: dict[str, ModelKind] = {}


def register_model(entry: ModelKind) -> ModelKind:
    """Add a model kind (built-ins too); its layout and placements are checked here."""
    if entry.norm_layout not in NORM_LAYOUTS:
        raise AssertionError(
            f"model kind {entry.name!r}: unknown norm layout {entry.norm_layout!r}"
        )
    if not entry.custom and "placement" not in entry.option_map:
        raise AssertionError(f"model kind {entry.name!r} needs a placement option")
    MODELS[entry.name] = entry
    return entry


def kinds_with_layout(layouts: tuple[str, ...]) -> tuple[str, ...]:
    """The registered kinds whose norms see one of ``layouts`` (for norm messages)."""
    return tuple(m.name for m in MODELS.values() if m.norm_layout in layouts and not m.custom)


# --- common keys ------------------------------------------------------------------------------


def common_options(
    *,
    activation: str = "relu",
    placements: Mapping[str, str] = CLASSIC_PLACEMENTS,
    placement: str = "pre",
    inits: tuple[str, ...] = ("default", "gaussian", "xavier", "kaiming"),
    init: str = "default",
) -> tuple[Option, ...]:
    """The keys every built-in kind takes, with that kind's defaults."""
    return (
        Option(
            "activation",
            "choice",
            activation,
            "non-linearity (normbench list activations)",
            choices=tuple(ACTIVATIONS),
        ),
        Option(
            "placement",
            "choice",
            placement,
            "where the norm sits: " + "; ".join(f"{k}: {v}" for k, v in placements.items()),
            choices=tuple(placements),
        ),
        Option("init", "choice", init, "weight initialisation scheme", choices=inits),
        Option("init_std", "float", 0.01, "std of init: gaussian", min=0.0, min_exclusive=True),
        Option(
            "dropout",
            "float",
            0.0,
            "dropout probability after each block (0: none)",
            min=0.0,
            max=1.0,
            max_exclusive=True,
        ),
    )


def _readout(choices: tuple[str, ...], summary: str) -> Option:
    return Option("readout", "choice", choices[0], summary, choices=choices)


# --- the classic kinds --------------------------------------------------------------------------

# Keys every kind written before the registry resolved with (one flat model section): ids
# hash the resolved config, so those kinds keep carrying these defaults.
_V1_FLAT: dict[str, Any] = {
    "hidden": None,
    "channels": None,
    "kernel_size": 3,
    "stride": 1,
    "pool": "max",
    "convs_per_stage": 1,
    "readout": None,
    "cell": "gru",
    "layers": 1,
    "residual": False,
    "activation": "relu",
    "placement": "pre",
    "init": "default",
    "init_std": 0.01,
    "dropout": 0.0,
    "bidirectional": False,
    "fused": False,
    "target": None,
    "options": None,
    "swap": None,
}


def _as_list(hidden: int | list[int]) -> list[int]:
    return [hidden] if isinstance(hidden, int) else list(hidden)


def _flatten(x: Any, layout: str) -> tuple[Any, str]:
    return x.reshape(len(x), -1), "vector"  # (N, F)


def _channels_first(x: Any, layout: str) -> tuple[Any, str]:
    if layout == "sequence" and x.ndim == 2:
        return x[:, None, :], layout  # (N, L) → (N, 1, L) for Conv1d
    return x, layout  # (N, C, L) and (N, C, H, W) are already channels-first


def _time_major(x: Any, layout: str) -> tuple[Any, str]:
    if layout == "sequence" and x.ndim == 2:
        return x[:, :, None], "sequence"  # (N, L) → (N, L, 1)
    if layout == "sequence":
        return x.transpose(0, 2, 1).copy(), "sequence"  # (N, C, L) → (N, L, C)
    n, c, h, w = x.shape
    # Rows become time steps: (N, C, H, W) → (N, H, C, W) → (N, H, C*W).
    return x.transpose(0, 2, 1, 3).copy().reshape(n, h, c * w), "sequence"


def _check_mlp(cfg: dict[str, Any], given: set[str]) -> None:
    if cfg["hidden"] is None:
        raise OptionError(
            "an mlp needs hidden: a list of widths, e.g. [100, 100, 100]", ("hidden",)
        )


def _check_rnn(cfg: dict[str, Any], given: set[str]) -> None:
    if cfg["hidden"] is None:
        raise OptionError(
            "an rnn needs hidden: one integer, the hidden size per layer", ("hidden",)
        )
    if not cfg["fused"]:
        return
    norm = cfg.get("norm", "none")
    kind = norm.get("kind") if isinstance(norm, dict) else norm
    if kind != "none":
        raise OptionError(
            f"fused: true uses torch's own recurrent layer, which has no place "
            f"for a norm; use norm: none, or fused: false for norm '{kind}'",
            ("fused",),
        )
    if cfg["cell"] != "rnn" and "activation" in given and cfg["activation"] != "tanh":
        raise OptionError(
            f"a fused {cfg['cell']} always uses tanh; remove activation: or set fused: false",
            ("activation",),
        )


def _check_cnn(cfg: dict[str, Any], given: set[str]) -> None:
    if not cfg["channels"]:
        raise OptionError(
            "a cnn needs channels: a list of channel counts, one per stage", ("channels",)
        )


_POSITIVE = {"min": 1}

register_model(
    ModelKind(
        "mlp",
        "Linear → Norm → Act (pre) or Linear → Act → Norm (post) → Dropout (dropout: p > 0) "
        "per hidden width, then a Linear classifier (any data, flattened)",
        (
            Option(
                "hidden",
                "int_or_int_list",
                None,
                "hidden widths, e.g. [100, 100]",
                nullable=True,
                **_POSITIVE,
            ),
            Option("residual", "bool", False, "residual connections between equal widths"),
            *common_options(),
        ),
        "normbench.models.mlp:build_mlp",
        norm_layout="features",
        accepts=("vector", "sequence", "image"),
        view=_flatten,
        widths=lambda cfg: tuple(_as_list(cfg["hidden"])),
        blocks=lambda cfg: len(_as_list(cfg["hidden"])),
        check=_check_mlp,
        stackable=True,
        id_defaults=_V1_FLAT,
    )
)
register_model(
    ModelKind(
        "cnn",
        "VGG-style stages Conv → Norm/Act → Dropout (p > 0) (→ pool) per entry of channels:, "
        "2-D for images, 1-D for sequences; readout flatten|mean then Linear",
        (
            Option(
                "channels",
                "int_list",
                None,
                "output channels of each stage, e.g. [32, 32]",
                nullable=True,
                min_items=1,
                **_POSITIVE,
            ),
            Option("kernel_size", "int", 3, "convolution kernel size", **_POSITIVE),
            Option("stride", "int", 1, "convolution stride", **_POSITIVE),
            Option(
                "pool", "choice", "max", "pooling after each stage", choices=("max", "avg", "none")
            ),
            Option("convs_per_stage", "int", 1, "convolutions per stage", **_POSITIVE),
            _readout(("flatten", "mean"), "how the last maps become the classifier input"),
            *common_options(),
        ),
        "normbench.models.cnn:build_cnn",
        norm_layout="spatial",
        accepts=("sequence", "image"),
        view=_channels_first,
        widths=lambda cfg: tuple(cfg["channels"]),
        blocks=lambda cfg: len(cfg["channels"]) * int(cfg["convs_per_stage"]),
        check=_check_cnn,
        spatial=lambda layout: 2 if layout == "image" else 1,
        id_defaults=_V1_FLAT,
    )
)
register_model(
    ModelKind(
        "rnn",
        "recurrent net (cell lstm|gru|rnn, unrolled step by step so the norm acts inside the "
        "recurrence; bidirectional: true adds a reversed pass with its own norms; fused: true "
        "is torch's own layer, no norm) → Dropout "
        "(p > 0) on each layer's outputs; readout last|mean|flatten then Linear",
        (
            Option("cell", "choice", "gru", "recurrent cell", choices=("lstm", "gru", "rnn")),
            Option("hidden", "int", None, "hidden size per layer", nullable=True, **_POSITIVE),
            Option("layers", "int", 1, "stacked recurrent layers", **_POSITIVE),
            _readout(("last", "mean", "flatten"), "which outputs feed the classifier"),
            Option("bidirectional", "bool", False, "add a reversed pass with its own norms"),
            Option("fused", "bool", False, "torch's own cuDNN/oneDNN layer (no norm)"),
            *common_options(activation="tanh"),
        ),
        "normbench.models.rnn:build_rnn",
        norm_layout="recurrent",
        accepts=("sequence", "image"),
        view=_time_major,
        widths=lambda cfg: (cfg["hidden"],),
        blocks=lambda cfg: int(cfg["layers"]),
        check=_check_rnn,
        id_defaults=_V1_FLAT,
    )
)
# --- the transformer ------------------------------------------------------------------------------

# Each formula with F a sublayer (attention or MLP) and N the suite's norm on each token.
TRANSFORMER_PLACEMENTS: dict[str, str] = {
    "pre": "x + F(N(x)), and a final N before the head (GPT-2, Xiong et al. 2020)",
    "post": "N(x + F(x)), as in the original transformer (Vaswani et al. 2017)",
    "peri": "x + N_out(F(N_in(x))), and a final N (Peri-LN / sandwich, Kim et al. 2025)",
    "deepnorm": "N(α·x + F(x)), α = (2L)^(1/4), FFN/value/output weights × β = (8L)^(-1/4) "
    "at init (DeepNet, Wang et al. 2022; L = layers)",
    "none": "x + F(x): no norm anywhere (norm: none)",
}


def _transformer_view(x: Any, layout: str) -> tuple[Any, str]:
    if layout == "sequence" and x.ndim == 2:
        return x[:, :, None], "sequence"  # (N, L) values → L tokens of 1 feature
    if layout == "sequence":
        return x.transpose(0, 2, 1).copy(), "sequence"  # (N, C, L) → (N, L, C)
    return x, layout  # token ids (N, T); images (N, C, H, W) are patched by the model


def _fill_transformer(cfg: dict[str, Any], given: set[str], data_layout: str) -> None:
    per_token = data_layout == "tokens"  # language modelling: one target per position
    if cfg["causal"] is None:
        cfg["causal"] = per_token
    if cfg["readout"] is None:
        cfg["readout"] = "tokens" if per_token else "mean"
    if cfg["readout"] == "tokens" and data_layout not in ("tokens", "any"):
        raise OptionError(
            f"readout 'tokens' predicts one target per position, which {data_layout} data "
            "does not have; use mean, cls or last",
            ("readout",),
        )


def _check_transformer(cfg: dict[str, Any], given: set[str]) -> None:
    if cfg["d_model"] % cfg["heads"]:
        raise OptionError(
            f"d_model ({cfg['d_model']}) must be a multiple of heads ({cfg['heads']})",
            ("heads",),
        )
    norm = cfg.get("norm", "none")
    kind = norm.get("kind") if isinstance(norm, dict) else norm
    if cfg["placement"] == "none" and kind != "none":
        raise OptionError(
            f"placement 'none' has no norm, so norm '{kind}' would not be used; write "
            "norm: none (or exclude the combination from the grid)",
            ("placement",),
        )


register_model(
    ModelKind(
        "transformer",
        "token/value/patch embedding + positions → blocks of multi-head self-attention "
        "(SDPA; causal for language modelling) and an MLP (GELU), each a residual branch "
        "with the norm where placement puts it (pre|post|peri|deepnorm|none) → readout → head",
        (
            Option(
                "d_model",
                "int",
                64,
                "width of the residual stream (channels per token)",
                **_POSITIVE,
            ),
            Option("layers", "int", 2, "transformer blocks", **_POSITIVE),
            Option("heads", "int", 4, "attention heads (must divide d_model)", **_POSITIVE),
            Option(
                "mlp_ratio", "float", 4.0, "MLP hidden width ÷ d_model", min=0.0, min_exclusive=True
            ),
            Option(
                "causal",
                "bool",
                None,
                "causal attention mask (null: true for language modelling, false otherwise)",
                nullable=True,
            ),
            Option(
                "readout",
                "choice",
                None,
                "tokens: a prediction per position; mean: mean over tokens; cls: a learned "
                "class token; last: the last token (null: tokens for language modelling, "
                "else mean)",
                choices=("tokens", "mean", "cls", "last"),
                nullable=True,
            ),
            Option(
                "positions",
                "choice",
                "learned",
                "position embedding",
                choices=("learned", "sinusoidal", "none"),
            ),
            Option(
                "qk_norm",
                "bool",
                False,
                "LayerNorm on each head's queries and keys (Wortsman et al. 2023)",
            ),
            Option(
                "tie_embeddings",
                "bool",
                False,
                "the head shares the token embedding's weights (token inputs)",
            ),
            Option(
                "patch",
                "int",
                4,
                "image inputs: patch size of the ViT-style embedding",
                **_POSITIVE,
            ),
            *common_options(
                activation="gelu",
                placements=TRANSFORMER_PLACEMENTS,
                inits=("gpt2", "default", "gaussian", "xavier", "kaiming"),
                init="gpt2",
            ),
        ),
        "normbench.models.transformer:build_transformer",
        norm_layout="tokens",
        accepts=("sequence", "image", "tokens"),
        placements=TRANSFORMER_PLACEMENTS,
        normless=frozenset({"pre", "post", "peri", "none"}),  # DeepNorm's α and β remain
        view=_transformer_view,
        widths=lambda cfg: (cfg["d_model"],),
        blocks=lambda cfg: int(cfg["layers"]),
        check=_check_transformer,
        fill=_fill_transformer,
    )
)
register_model(
    ModelKind(
        "custom",
        "your own model: target 'package.module:factory' called as factory(num_outputs=K, "
        "input_shape=(C, ...), **options); its norm layers (swap:) replaced by norm:",
        (
            Option(
                "target", "str", None, "the model factory, 'package.module:function'", nullable=True
            ),
            Option(
                "options", "mapping", None, "keyword arguments passed to the factory", nullable=True
            ),
            Option(
                "swap",
                "str_or_str_list",
                None,
                "module class name(s) or path patterns that the suite's norm replaces",
                nullable=True,
            ),
        ),
        "normbench.models.custom:build_custom",
        norm_layout="features",
        accepts=("vector", "sequence", "image", "tokens"),
        custom=True,
    )
)


# --- resolving a model mapping -------------------------------------------------------------------


def model_entry(kind: Any) -> ModelKind:
    """The entry of ``kind``; ``OptionError`` at ``kind`` with a did-you-mean otherwise."""
    if not isinstance(kind, str) or kind not in MODELS:
        raise OptionError(unknown("model kind", kind, list(MODELS)), ("kind",))
    return MODELS[kind]


def same_model_as(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with its placement written as the first of its kind's ``normless`` ones when the
    norm is ``none``: two configs that build the same model compare equal."""
    norm = cfg.get("norm")
    kind = norm.get("kind") if isinstance(norm, Mapping) else norm
    entry = MODELS.get(cfg.get("kind"))  # type: ignore[arg-type]
    if kind != "none" or entry is None or cfg.get("placement") not in entry.normless:
        return dict(cfg)
    return {**cfg, "placement": min(entry.normless)}


def resolve_model(raw: Mapping[str, Any], data_layout: str = "any") -> tuple[dict, set[str]]:
    """Validate a ``model:`` mapping and fill its kind's defaults; returns (config, given keys).

    The norm is left as written (the norm registry resolves it). ``OptionError`` paths are
    below ``model``.
    """
    if not isinstance(raw, Mapping):
        raise OptionError(f"model must be a mapping of key: value, got {raw!r}")
    given = {k for k in raw if k != "kind"}
    entry = model_entry(raw.get("kind", "mlp"))
    for key in sorted(given - entry.keys):
        users = [m for m, e in MODELS.items() if key in e.keys]
        if users:
            raise OptionError(
                f"'{key}' does not apply to a {entry.name} model (it is for {', '.join(users)})",
                (key,),
            )
        raise OptionError(unknown("key", key, sorted(entry.keys)), (key,))
    if entry.custom:
        check_custom_model(dict(raw))
        cfg = {"kind": entry.name, **{o.name: raw.get(o.name) for o in entry.options}}
        cfg["norm"] = raw.get("norm", "none")
        return cfg, given
    options = {k: v for k, v in raw.items() if k not in ("kind", "norm")}
    filled = fill_options(f"{entry.name} model", entry.options, options)
    cfg = {**entry.id_defaults, "kind": entry.name, **filled, "norm": raw.get("norm", "none")}
    if entry.fill is not None:
        entry.fill(cfg, given, data_layout)
    if entry.check is not None:
        entry.check(cfg, given)
    return cfg, given


def check_custom_model(cfg: dict) -> None:
    """Torch-free checks of a custom model mapping: target form, options, swap entries."""
    target = cfg.get("target")
    if not isinstance(target, str) or not TARGET_RE.match(target):
        raise OptionError(
            "a custom model needs target: 'package.module:factory' (a function or an nn.Module "
            f"class), got {target!r}",
            ("target",),
        )
    options = cfg.get("options")
    if options is not None and not isinstance(options, dict):
        raise OptionError(
            f"options must be a mapping of keyword arguments, got {options!r}", ("options",)
        )
    for key in options or {}:
        if key in ("num_outputs", "input_shape"):
            raise OptionError(
                f"'{key}' is passed by normbench (from the dataset); leave it out of options",
                ("options", key),
            )
    swap = cfg.get("swap")
    entries = [swap] if isinstance(swap, str) else swap
    if swap is not None and (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, str) and e for e in entries)
    ):
        raise OptionError(
            "swap must be 'all' or a non-empty list of class names "
            "(BatchNorm2d, 'package.module:Class') or module-path patterns "
            f"('layer1.*'), got {swap!r}",
            ("swap",),
        )


def custom_signature_error(obj: object, options: dict) -> str | None:
    """Why ``obj(num_outputs=…, input_shape=…, **options)`` cannot bind, or None when it can."""
    import inspect

    try:
        sig = inspect.signature(obj)  # a class: its __init__ without self
    except (TypeError, ValueError):
        return None  # a builtin without a signature: the one-batch check will tell
    try:
        sig.bind(num_outputs=1, input_shape=(1,), **options)
    except TypeError as err:
        return str(err)
    return None


def widths_of(cfg: dict) -> tuple[int, ...]:
    """The num_features of every normalised layer of a model config (for norm validation)."""
    return MODELS[cfg["kind"]].widths(cfg)


def num_blocks(cfg: dict) -> int | None:
    """How many entries ``model.blocks`` will have (None: known once the model is built)."""
    return MODELS[cfg["kind"]].blocks(cfg)


def model_keys() -> dict[str, Option]:
    """Every key any kind takes (first declaration wins): the grid's dotted ``model.`` keys."""
    keys: dict[str, Option] = {}
    for entry in MODELS.values():
        for opt in entry.options:
            keys.setdefault(opt.name, opt)
    return keys


# The kinds registered on import: worker processes know these (and only these).
BUILT_IN_MODELS = frozenset(MODELS)
