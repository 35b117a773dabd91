"""Dataset option declarations and their type/range validation (torch-free)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normbench.errors import OptionError, unknown


@dataclass(frozen=True)
class Option:
    """One dataset option: type, default, allowed values or range, and meaning.

    ``type`` is one of ``int``, ``float``, ``bool``, ``choice``, ``path``, ``int_pair``,
    ``target`` (``"package.module:name"``), ``mapping`` (keyword arguments).
    ``nullable`` options accept ``null`` (their default is then usually ``None`` = "not set").
    """

    name: str
    type: str
    default: Any
    summary: str
    choices: tuple[str, ...] = ()
    min: float | None = None  # inclusive lower bound
    max: float | None = None  # inclusive upper bound
    open_interval: bool = False  # bounds are exclusive, e.g. a fraction in (0, 1)
    nullable: bool = False

    def describe(self) -> str:
        """``name=default (type and allowed values)``, e.g. ``num_samples=5000 (int >= 10)``."""
        return f"{self.name}={_fmt(self.default)} ({self.describe_type()})"

    def describe_type(self) -> str:
        """The type with its range or choices, e.g. ``float in (0, 1)`` or ``none|zscore``."""
        if self.type == "choice":
            return "|".join(self.choices)
        text = self.type
        if self.min is not None and self.max is not None:
            lo, hi = ("(", ")") if self.open_interval else ("[", "]")
            return f"{text} in {lo}{_fmt(self.min)}, {_fmt(self.max)}{hi}"
        if self.min is not None:
            return f"{text} {'>' if self.open_interval else '>='} {_fmt(self.min)}"
        if self.max is not None:
            return f"{text} {'<' if self.open_interval else '<='} {_fmt(self.max)}"
        return text


def _fmt(value: Any) -> str:
    """Format a default for listings: YAML-ish spelling (null, true, [36, 60])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _bad_type(opt: Option, value: Any, wanted: str) -> OptionError:
    return OptionError(f"must be {wanted}, got {value!r} ({_type_name(value)})", (opt.name,))


def _coerce_int(opt: Option, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad_type(opt, value, "an integer")
    if isinstance(value, int):
        return value
    # 5000.0 (e.g. from a computed --set) is an integer in all but spelling.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _bad_type(opt, value, "an integer")


def _coerce_float(opt: Option, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad_type(opt, value, "a number")
    if isinstance(value, str):
        # PyYAML (YAML 1.1) reads `1e-3` as a string; accept it as the number it spells.
        try:
            value = float(value)
        except ValueError:
            raise _bad_type(opt, value, "a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad_type(opt, value, "a finite number")
    return float(value)


def _coerce_value(opt: Option, value: Any) -> Any:
    """Check one value's type and convert it to its canonical (JSON-friendly) form."""
    if value is None:
        if opt.nullable:
            return None
        raise _bad_type(opt, value, f"a value of type {opt.type}")
    if opt.type == "int":
        return _coerce_int(opt, value)
    if opt.type == "float":
        return _coerce_float(opt, value)
    if opt.type == "bool":
        if not isinstance(value, bool):
            raise _bad_type(opt, value, "true or false")
        return value
    if opt.type == "choice":
        if not isinstance(value, str) or value not in opt.choices:
            raise OptionError(unknown(opt.name, value, opt.choices), (opt.name,))
        return value
    if opt.type == "path":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise _bad_type(opt, value, "a file or directory path")
        return value
    if opt.type == "target":
        from normbench.norms.catalog import _TARGET_RE

        if not isinstance(value, str) or not _TARGET_RE.match(value):
            raise _bad_type(opt, value, "'package.module:name'")
        return value
    if opt.type == "mapping":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _bad_type(opt, value, "a mapping of keyword arguments")
        return dict(value)
    if opt.type == "int_pair":
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise _bad_type(opt, value, "a list of two integers [low, high]")
        pair = [_coerce_int(opt, v) for v in value]
        if pair[0] > pair[1]:
            raise OptionError(f"must be [low, high] with low <= high, got {pair}", (opt.name,))
        return pair
    raise AssertionError(f"unknown option type {opt.type!r}")  # a registry bug, not user input


def _check_range(opt: Option, value: Any) -> None:
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if opt.min is not None and (number <= opt.min if opt.open_interval else number < opt.min):
            op = ">" if opt.open_interval else ">="
            raise OptionError(f"must be {op} {_fmt(opt.min)}, got {number}", (opt.name,))
        if opt.max is not None and (number >= opt.max if opt.open_interval else number > opt.max):
            op = "<" if opt.open_interval else "<="
            raise OptionError(f"must be {op} {_fmt(opt.max)}, got {number}", (opt.name,))


def coerce_option(opt: Option, value: Any) -> Any:
    """Validate one option value; ``OptionError`` with path ``(opt.name,)`` when it is bad."""
    value = _coerce_value(opt, value)
    if value is not None and opt.type in ("int", "float", "int_pair"):
        _check_range(opt, value)
    return value


def fill_options(owner: str, options: Sequence[Option], cfg: Mapping[str, Any]) -> dict:
    """Validate ``cfg`` against ``options`` and fill every missing option with its default.

    ``cfg`` must not contain ``name``; unknown keys are errors with the closest key suggested.
    """
    by_name = {o.name: o for o in options}
    for key in cfg:
        if key not in by_name:
            raise OptionError(unknown(f"{owner} option", key, ["name", *by_name]), (key,))
    out: dict[str, Any] = {}
    for opt in options:
        value = cfg.get(opt.name, opt.default)
        out[opt.name] = coerce_option(opt, value)
    return out
