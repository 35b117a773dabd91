"""Model and activation registries (torch-free): names, options, and what each kind accepts."""

from __future__ import annotations

from dataclasses import dataclass

from normbench.errors import OptionError

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
    """One model family: which config keys it uses and a one-line summary."""

    name: str
    summary: str
    keys: frozenset[str]


_COMMON = frozenset({"kind", "activation", "norm", "placement", "init", "init_std", "dropout"})

MODELS: dict[str, ModelKind] = {
    "mlp": ModelKind(
        "mlp",
        "Linear → Norm → Act (pre) or Linear → Act → Norm (post) → Dropout (dropout: p > 0) "
        "per hidden width, then a Linear classifier (any data, flattened)",
        _COMMON | {"hidden", "residual"},
    ),
    "cnn": ModelKind(
        "cnn",
        "VGG-style stages Conv → Norm/Act → Dropout (p > 0) (→ pool) per entry of channels:, "
        "2-D for images, 1-D for sequences; readout flatten|mean then Linear",
        _COMMON | {"channels", "kernel_size", "stride", "pool", "convs_per_stage", "readout"},
    ),
    "rnn": ModelKind(
        "rnn",
        "recurrent net (cell lstm|gru|rnn, unrolled step by step so the norm acts inside the "
        "recurrence; bidirectional: true adds a reversed pass with its own norms; fused: true "
        "is torch's own layer, no norm) → Dropout "
        "(p > 0) on each layer's outputs; readout last|mean|flatten then Linear",
        _COMMON | {"cell", "hidden", "layers", "readout", "bidirectional", "fused"},
    ),
}

READOUTS = {"cnn": ("flatten", "mean"), "rnn": ("last", "mean", "flatten")}
DEFAULT_READOUT = {"cnn": "flatten", "rnn": "last"}


def check_model(cfg: dict, given: set[str]) -> None:
    """Kind-specific checks on a model mapping; ``given`` holds the keys the user wrote."""
    kind = cfg["kind"]
    entry = MODELS[kind]
    for key in sorted(given - entry.keys):
        users = [m for m, e in MODELS.items() if key in e.keys]
        raise OptionError(f"'{key}' does not apply to a {kind} model (it is for {', '.join(users)})", (key,))
    hidden = cfg.get("hidden")
    if kind == "mlp":
        widths = [hidden] if isinstance(hidden, int) else hidden
        if widths is None or not isinstance(widths, list):
            raise OptionError("an mlp needs hidden: a list of widths, e.g. [100, 100, 100]", ("hidden",))
    if kind == "rnn" and not isinstance(hidden, int):
        raise OptionError("an rnn needs hidden: one integer, the hidden size per layer", ("hidden",))
    if kind == "cnn" and not cfg.get("channels"):
        raise OptionError("a cnn needs channels: a list of channel counts, one per stage", ("channels",))
    if cfg.get("fused"):
        norm = cfg.get("norm", "none")
        kind = norm.get("kind") if isinstance(norm, dict) else norm
        if kind != "none":
            raise OptionError(f"fused: true uses torch's own recurrent layer, which has no place "
                              f"for a norm; use norm: none, or fused: false for norm '{kind}'",
                              ("fused",))
        if cfg["cell"] != "rnn" and "activation" in given and cfg["activation"] != "tanh":
            raise OptionError(f"a fused {cfg['cell']} always uses tanh; remove activation: or "
                              "set fused: false", ("activation",))
    readout = cfg.get("readout")
    if readout is not None and kind in READOUTS and readout not in READOUTS[kind]:
        raise OptionError(
            f"readout '{readout}' is not one of {', '.join(READOUTS[kind])} for a {kind}", ("readout",)
        )


def widths_of(cfg: dict) -> tuple[int, ...]:
    """The num_features of every normalised layer of a model config (for norm validation)."""
    kind = cfg["kind"]
    if kind == "mlp":
        hidden = cfg["hidden"]
        return tuple([hidden] if isinstance(hidden, int) else hidden)
    if kind == "cnn":
        return tuple(cfg["channels"])
    return (cfg["hidden"],)
