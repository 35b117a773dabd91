"""Torch-free parsing for `normbench bench`: shapes, norm arguments, dtypes, passes and modes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from normbench.errors import InputError, unknown

Shape = tuple[int, ...]

# "AxB[xCxD]": (N, C), (N, C, L) or (N, C, H, W) — the inputs a norm module takes (channel axis 1).
_SHAPE_RE = re.compile(r"^[1-9][0-9]*(?:x[1-9][0-9]*){1,3}$")
# benchopt-style "name[k=v,k=v]" so options like groups can be given on the command line.
_NORM_RE = re.compile(r"^(?P<kind>[A-Za-z0-9_\-]+)(?:\[(?P<opts>[^\[\]]*)\])?$")

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16", "float64")
MODES: tuple[str, ...] = ("train", "eval")
PASSES: tuple[str, ...] = ("forward", "forward+backward")
# What `--pass` and `--mode` accept on the command line, mapped to the values records carry.
PASS_CHOICES: dict[str, tuple[str, ...]] = {
    "forward": ("forward",),
    "backward": ("forward+backward",),
    "both": PASSES,
}
MODE_CHOICES: dict[str, tuple[str, ...]] = {"train": ("train",), "eval": ("eval",), "both": MODES}
# Whether the layer runs as written or through torch.compile (records carry "compiled").
COMPILE_CHOICES: dict[str, tuple[bool, ...]] = {
    "off": (False,),
    "on": (True,),
    "both": (False, True),
}
DTYPE_ALIASES: dict[str, str] = {
    "fp32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp64": "float64",
    "double": "float64",
}


def parse_shape(text: str | Sequence[int]) -> Shape:
    """Parse ``256x1024`` or ``32x64x56x56`` into a tuple; ``InputError`` when malformed."""
    if not isinstance(text, str):
        shape = tuple(int(d) for d in text)
        if not 2 <= len(shape) <= 4 or min(shape) < 1:
            raise InputError(
                f"bad shape {shape}: expected 2 to 4 positive sizes (N, C[, L | H, W])"
            )
        return shape
    cleaned = text.strip().lower().replace("×", "x")
    if not _SHAPE_RE.match(cleaned):
        raise InputError(
            f"malformed shape '{text}': expected 2 to 4 positive integers joined by 'x', "
            "e.g. 256x1024 (N×C), 8x64x1000 (N×C×L) or 32x64x56x56 (N×C×H×W)"
        )
    return tuple(int(d) for d in cleaned.split("x"))


def format_shape(shape: Sequence[int]) -> str:
    """Render a shape the way the command line takes it: ``32x64x56x56``."""
    return "x".join(str(d) for d in shape)


def _scalar(text: str) -> object:
    """Read an option value as int, float, bool or string (YAML-like, without YAML)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_norm_arg(text: str | dict) -> str | dict:
    """``group[groups=8]`` becomes ``{"kind": "group", "groups": 8}``; a bare name stays a name."""
    if isinstance(text, dict):
        return dict(text)
    match = _NORM_RE.match(text.strip())
    if not match:
        raise InputError(
            f"malformed norm '{text}': expected a name or name[option=value,...], e.g. "
            "group[groups=8]"
        )
    if match["opts"] is None:
        return match["kind"]
    spec: dict[str, object] = {"kind": match["kind"]}
    for item in filter(None, (part.strip() for part in match["opts"].split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"malformed option '{item}' in norm '{text}': expected option=value")
        spec[key.strip()] = _scalar(value)
    return spec


def norm_label(arg: str | dict) -> str:
    """A short, stable label for a norm argument: the name, or ``kind[k=v,...]``."""
    if isinstance(arg, str):
        return arg
    opts = ",".join(f"{k}={v}" for k, v in arg.items() if k != "kind")
    return f"{arg.get('kind', '?')}[{opts}]" if opts else str(arg.get("kind", "?"))


def parse_dtype(name: str) -> str:
    """Canonical dtype name (``bf16`` → ``bfloat16``); ``InputError`` for an unknown one."""
    key = DTYPE_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in DTYPES:
        raise InputError(unknown("dtype", name, DTYPES))
    return key


def parse_choice(value: str, choices: dict[str, tuple[Any, ...]], what: str) -> tuple[Any, ...]:
    """Expand a ``--mode``/``--pass`` value (``both`` means all) into record values."""
    if value not in choices:
        raise InputError(unknown(what, value, list(choices)))
    return choices[value]
