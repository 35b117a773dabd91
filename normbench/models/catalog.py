"""Model and activation registries (torch-free): names, options, and what each kind accepts."""

from __future__ import annotations

from dataclasses import dataclass

from normbench.errors import OptionError
from normbench.models.kinds import CNN, CUSTOM, MLP, RNN

ACTIVATIONS: dict[str, str] = {
    "relu": "max(0, x)",
    "sigmoid": "1 / (1 + exp(-x)), as in Ioffe & Szegedy's MNIST net",
    "tanh": "hyperbolic tangent",
    "gelu": "Gaussian error linear unit",
    "silu": "x · sigmoid(x) (swish)",
    "leaky_relu": "max(0.01 x, x)",
    "identity": "no non-linearity (a linear network)",
}


@dataclass(frozen=True)
class ModelKind:
    """One model family: which config keys it uses, a one-line summary and its builder.

    ``builder`` is ``"module:function"``, imported only when a model is built (this registry
    stays torch-free), called as ``function(model_cfg, sample_shape, num_outputs)``.
    """

    name: str
    summary: str
    keys: frozenset[str]
    builder: str


_COMMON = frozenset({"kind", "activation", "norm", "placement", "init", "init_std", "dropout"})

MODELS: dict[str, ModelKind] = {
    MLP: ModelKind(
        MLP,
        "Linear → Norm → Act (pre) or Linear → Act → Norm (post) → Dropout (dropout: p > 0) "
        "per hidden width, then a Linear classifier (any data, flattened)",
        _COMMON | {"hidden", "residual"},
        "normbench.models.mlp:build_mlp",
    ),
    CNN: ModelKind(
        CNN,
        "VGG-style stages Conv → Norm/Act → Dropout (p > 0) (→ pool) per entry of channels:, "
        "2-D for images, 1-D for sequences; readout flatten|mean then Linear",
        _COMMON | {"channels", "kernel_size", "stride", "pool", "convs_per_stage", "readout"},
        "normbench.models.cnn:build_cnn",
    ),
    RNN: ModelKind(
        RNN,
        "recurrent net (cell lstm|gru|rnn, unrolled step by step so the norm acts inside the "
        "recurrence; bidirectional: true adds a reversed pass with its own norms; fused: true "
        "is torch's own layer, no norm) → Dropout "
        "(p > 0) on each layer's outputs; readout last|mean|flatten then Linear",
        _COMMON | {"cell", "hidden", "layers", "readout", "bidirectional", "fused"},
        "normbench.models.rnn:build_rnn",
    ),
    CUSTOM: ModelKind(
        CUSTOM,
        "your own model: target 'package.module:factory' called as factory(num_outputs=K, "
        "input_shape=(C, ...), **options); its norm layers (swap:) replaced by norm:",
        frozenset({"kind", "target", "options", "swap", "norm"}),
        "normbench.models.custom:build_custom",
    ),
}

# ``norm: keep`` leaves a custom model's own norm layers as they are.
KEEP = "keep"

READOUTS = {"cnn": ("flatten", "mean"), "rnn": ("last", "mean", "flatten")}
DEFAULT_READOUT = {"cnn": "flatten", "rnn": "last"}


def check_model(cfg: dict, given: set[str]) -> None:
    """Kind-specific checks on a model mapping; ``given`` holds the keys the user wrote."""
    kind = cfg["kind"]
    entry = MODELS[kind]
    for key in sorted(given - entry.keys):
        users = [m for m, e in MODELS.items() if key in e.keys]
        raise OptionError(
            f"'{key}' does not apply to a {kind} model (it is for {', '.join(users)})", (key,)
        )
    hidden = cfg.get("hidden")
    if kind == "mlp":
        widths = [hidden] if isinstance(hidden, int) else hidden
        if widths is None or not isinstance(widths, list):
            raise OptionError(
                "an mlp needs hidden: a list of widths, e.g. [100, 100, 100]", ("hidden",)
            )
    if kind == "rnn" and not isinstance(hidden, int):
        raise OptionError(
            "an rnn needs hidden: one integer, the hidden size per layer", ("hidden",)
        )
    if kind == "cnn" and not cfg.get("channels"):
        raise OptionError(
            "a cnn needs channels: a list of channel counts, one per stage", ("channels",)
        )
    if kind == "custom":
        check_custom_model(cfg)
        return
    if cfg.get("fused"):
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
    readout = cfg.get("readout")
    if readout is not None and kind in READOUTS and readout not in READOUTS[kind]:
        raise OptionError(
            f"readout '{readout}' is not one of {', '.join(READOUTS[kind])} for a {kind}",
            ("readout",),
        )


def check_custom_model(cfg: dict) -> None:
    """Torch-free checks of a custom model mapping: target form, options, swap entries."""
    from normbench.norms.catalog import _TARGET_RE

    target = cfg.get("target")
    if not isinstance(target, str) or not _TARGET_RE.match(target):
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
    kind = cfg["kind"]
    if kind == "custom":
        return ()  # known only once the model is built (the pre-flight check)
    if kind == "mlp":
        hidden = cfg["hidden"]
        return tuple([hidden] if isinstance(hidden, int) else hidden)
    if kind == "cnn":
        return tuple(cfg["channels"])
    return (cfg["hidden"],)
