"""One option type and one resolver for the norm, dataset and diagnostic registries."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from normbench.errors import OptionError, did_you_mean, shorten, unknown

# Imported by `normbench validate`, `list`, `schema` and `--help`: stdlib only (no torch, no
# pydantic), so that those stay instant. A test checks it in a fresh interpreter.

AFFINE_MODES: tuple[str, ...] = ("none", "per_feature", "linear")

# "package.module:name" (the attribute part may be dotted, e.g. "pkg.mod:Outer.Inner").
TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# PyYAML (YAML 1.1) reads `1e-5` as a string and the resolver accepts it; YAML 1.2 editors see
# a number. Both are fine, so the schema of a float option takes either form.
NUMERIC_STRING = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

# Every option type, with the word `describe_type` uses for it in listings.
TYPES: dict[str, str] = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "choice": "choice",
    "affine": "affine",  # AFFINE_MODES, with YAML true/false as per_feature/none
    "path": "path",
    "target": "target",  # "package.module:name"
    "mapping": "mapping",  # keyword arguments
    "int_pair": "int_pair",  # [low, high] with low <= high
    "int_list": "list of ints",
    "int_or_int_list": "int or list of ints",
    "str_or_str_list": "str or list of str",  # kept as written: 100 stays 100, [100] a list
    "float_list": "list of floats",
    "int_or_str": "int or str",  # a block index or a module path
    "int_or_auto": "int or auto",  # a count, or "auto": chosen per layer by the entry
    "int_or_str_list": "list of int or str",
}
LIST_TYPES = frozenset({"int_pair", "int_list", "float_list", "int_or_str_list"})
NUMERIC_TYPES = frozenset({"int", "float", "int_pair", "int_list", "float_list", "int_or_int_list"})


@dataclass(frozen=True)
class Option:
    """One option of a registry entry: type, default, allowed values or range, and meaning.

    ``type`` is a key of ``TYPES``. ``min``/``max`` bound numbers (every item of a list);
    ``min_exclusive`` makes the lower bound exclusive, ``max_exclusive`` the upper one,
    ``open_interval`` both. ``nullable``
    options accept ``null`` (their default is then usually ``None`` = "not set"); an option
    whose default is ``None`` and that is not nullable is required. ``min_items`` is the
    shortest list allowed. ``message`` replaces the standard sentence for a value out of
    range or a list too short; ``{value}`` in it is the offending value.
    """

    name: str
    type: str
    default: Any
    summary: str
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    open_interval: bool = False
    max_exclusive: bool = False
    nullable: bool = False
    min_items: int = 0
    message: str = ""

    def __post_init__(self) -> None:
        # A registry bug, caught when the registry module is imported rather than on use.
        if self.type not in TYPES:
            raise AssertionError(f"option {self.name!r}: unknown type {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise AssertionError(f"option {self.name!r}: a choice needs choices")

    @property
    def required(self) -> bool:
        """True when the user must give the option (no default, and null is not allowed)."""
        return self.default is None and not self.nullable

    @property
    def low_exclusive(self) -> bool:
        """Whether ``min`` itself is refused."""
        return self.min_exclusive or self.open_interval

    @property
    def high_exclusive(self) -> bool:
        """Whether ``max`` itself is refused."""
        return self.open_interval or self.max_exclusive

    def describe_type(self) -> str:
        """The type with its range or choices, e.g. ``float in (0, 1)`` or ``none|zscore``."""
        if self.type == "choice":
            return "|".join(str(c) for c in self.choices)
        if self.type == "affine":
            return "|".join(AFFINE_MODES)
        text = TYPES[self.type]
        if self.min is not None and self.max is not None:
            lo = "(" if self.low_exclusive else "["
            hi = ")" if self.high_exclusive else "]"
            return f"{text} in {lo}{fmt_value(self.min)}, {fmt_value(self.max)}{hi}"
        if self.min is not None:
            return f"{text} {'>' if self.low_exclusive else '>='} {fmt_value(self.min)}"
        if self.max is not None:
            return f"{text} {'<' if self.high_exclusive else '<='} {fmt_value(self.max)}"
        return text

    def describe(self) -> str:
        """``name=default (type)`` for listings, e.g. ``num_samples=5000 (int >= 10)``."""
        if self.required:
            return f"{self.name} (required, {self.describe_type()})"
        return f"{self.name}={fmt_value(self.default)} ({self.describe_type()})"


def fmt_value(value: Any) -> str:
    """A value as users write it in YAML: ``null``, ``true``, ``3`` for 3.0, ``[36, 60]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list | tuple):
        return shorten(f"[{', '.join(fmt_value(v) for v in value)}]")
    return shorten(str(value))


# --- coercion ------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _bad_type(path: tuple[Any, ...], value: Any, wanted: str) -> OptionError:
    # YAML's spelling for true/false/null (what the user wrote), Python's repr otherwise.
    shown = fmt_value(value) if value is None or isinstance(value, bool) else repr(value)
    return OptionError(f"must be {wanted}, got {shown} ({_type_name(value)})", path)


def _int(path: tuple[Any, ...], value: Any) -> int:
    # bool is an int subclass in Python; `groups: true` is a mistake, not 1.
    if isinstance(value, bool):
        raise _bad_type(path, value, "an integer")
    if isinstance(value, int):
        return value
    # 5000.0 (e.g. from a computed --set) is an integer in all but spelling.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _bad_type(path, value, "an integer")


def _float(path: tuple[Any, ...], value: Any) -> float:
    if isinstance(value, bool):
        raise _bad_type(path, value, "a number")
    if isinstance(value, str):
        # PyYAML (YAML 1.1) reads `1e-3` as a string; accept it as the number it spells.
        try:
            value = float(value)
        except ValueError:
            raise _bad_type(path, value, "a number") from None
    if not isinstance(value, int | float):
        raise _bad_type(path, value, "a number")
    if not math.isfinite(value):
        raise _bad_type(path, value, "a finite number")
    return float(value)


def _int_or_str(path: tuple[Any, ...], value: Any) -> int | str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type(path, value, "an integer or a string")
    return _int(path, value)


def _int_or_auto(opt: Option, value: Any) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str):
        raise _bad_type((opt.name,), value, "an integer or auto")
    return _int((opt.name,), value)


def _bool(opt: Option, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad_type((opt.name,), value, "true or false")
    return value


def _str(opt: Option, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_type((opt.name,), value, "a string")
    return value


def _spells(choice: Any, value: Any) -> bool:
    # Choices that are numbers (ℓp's 1, 2, inf): accept the spellings YAML produces, 2, 2.0,
    # "2", "inf", .inf, and store the one canonical, JSON-safe form.
    if str(value).strip().lower() == str(choice):
        return True
    return choice == "inf" and isinstance(value, float) and math.isinf(value) and value > 0


def _choice(opt: Option, value: Any) -> Any:
    names_only = all(isinstance(c, str) for c in opt.choices)  # names are spelled exactly
    if not isinstance(value, bool):
        for choice in opt.choices:
            if value == choice or (not names_only and _spells(choice, value)):
                return choice
    names = [str(c) for c in opt.choices]
    raise OptionError(
        f"must be one of {', '.join(names)}, got {value!r}{did_you_mean(str(value), names)}",
        (opt.name,),
    )


def _affine(opt: Option, value: Any) -> str:
    # YAML `true`/`false` are the common spelling; a missing value (null) means none.
    if value is True:
        return "per_feature"
    if value is False or value is None:
        return "none"
    if isinstance(value, str) and value in AFFINE_MODES:
        return value
    raise OptionError(
        f"must be one of {', '.join(AFFINE_MODES)} (or true/false), got {value!r}"
        f"{did_you_mean(str(value), AFFINE_MODES)}",
        (opt.name,),
    )


def _path(opt: Option, value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise _bad_type((opt.name,), value, "a file or directory path")
    return value


def _target(opt: Option, value: Any) -> str:
    if not isinstance(value, str) or not TARGET_RE.match(value):
        raise _bad_type((opt.name,), value, "'package.module:name'")
    return value


def _mapping(opt: Option, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _bad_type((opt.name,), value, "a mapping of keyword arguments")
    return dict(value)


_ITEMS: dict[str, tuple[str, Callable[[tuple[Any, ...], Any], Any]]] = {
    "int_pair": ("a list of two integers [low, high]", _int),
    "int_list": ("a list of integers", _int),
    "float_list": ("a list of numbers", _float),
    "int_or_str_list": ("a list of integers or strings", _int_or_str),
}


def _list(opt: Option, value: Any) -> list[Any]:
    wanted, item = _ITEMS[opt.type]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _bad_type((opt.name,), value, wanted)
    if opt.type == "int_pair" and len(value) != 2:
        raise _bad_type((opt.name,), value, wanted)
    items = [item((opt.name, i), v) for i, v in enumerate(value)]
    if opt.type == "int_pair" and items[0] > items[1]:
        raise OptionError(f"must be [low, high] with low <= high, got {items}", (opt.name,))
    return items


_COERCE: dict[str, Callable[[Option, Any], Any]] = {
    "int": lambda opt, v: _int((opt.name,), v),
    "float": lambda opt, v: _float((opt.name,), v),
    "int_or_str": lambda opt, v: _int_or_str((opt.name,), v),
    "int_or_auto": _int_or_auto,
    "bool": _bool,
    "str": _str,
    "choice": _choice,
    "affine": _affine,
    "path": _path,
    "target": _target,
    "mapping": _mapping,
    **dict.fromkeys(LIST_TYPES, _list),
    "str_or_str_list": lambda opt, v: (
        [_str(replace(opt, name=f"{opt.name}[{i}]"), e) for i, e in enumerate(v)]
        if isinstance(v, list)
        else _str(opt, v)
    ),
    "int_or_int_list": lambda opt, v: (
        _list(replace(opt, type="int_list"), v) if isinstance(v, list) else _int((opt.name,), v)
    ),
}


def _out_of_range(opt: Option, value: Any, standard: str) -> OptionError:
    if opt.message:
        # replace, not format: a registry sentence may contain braces of its own.
        return OptionError(opt.message.replace("{value}", fmt_value(value)), (opt.name,))
    return OptionError(standard, (opt.name,))


def _check_bounds(opt: Option, value: Any) -> None:
    if opt.type in LIST_TYPES and len(value) < opt.min_items:
        many = "one value" if opt.min_items == 1 else f"{opt.min_items} values"
        raise _out_of_range(opt, value, f"must list at least {many}, got {fmt_value(value)}")
    if opt.type not in NUMERIC_TYPES and not (opt.type == "int_or_auto" and value != "auto"):
        return
    for number in value if isinstance(value, list) else [value]:
        if opt.min is not None:
            exclusive = opt.low_exclusive
            if number <= opt.min if exclusive else number < opt.min:
                raise _out_of_range(
                    opt, number, _range_text(opt, ">" if exclusive else ">=", number)
                )
        if opt.max is not None:
            exclusive = opt.high_exclusive
            if number >= opt.max if exclusive else number > opt.max:
                raise _out_of_range(
                    opt, number, _range_text(opt, "<" if exclusive else "<=", number)
                )


def _range_text(opt: Option, op: str, number: float) -> str:
    bound = opt.min if op.startswith(">") else opt.max
    # The failed bound first (what to change), then the whole allowed range.
    return f"must be {op} {fmt_value(bound)}, got {fmt_value(number)} ({opt.describe_type()})"


def coerce(opt: Option, value: Any) -> Any:
    """Check one value's type and range; return its canonical (JSON-friendly) form.

    Raises ``OptionError`` with path ``(opt.name,)``, or ``(opt.name, index)`` for a bad
    item of a list.
    """
    if value is None and opt.nullable:
        return None
    value = _COERCE[opt.type](opt, value)
    _check_bounds(opt, value)
    return value


def fill(
    owner: str, options: Sequence[Option], cfg: Any, known: Sequence[str] = ()
) -> dict[str, Any]:
    """Validate ``cfg`` against ``options`` and fill every missing option with its default.

    ``owner`` names the entry in messages (``norm 'group'``, ``mnist1d``). ``known`` are
    other keys the owner takes and the caller has already removed from ``cfg`` (a dataset's
    ``name``): they are offered in the suggestion for an unknown key. Unknown keys are errors
    with the closest key suggested. The result has the options in their declared order.
    """
    if not isinstance(cfg, Mapping):
        raise OptionError(
            f"{owner} options must be a mapping of option: value, got {cfg!r} ({_type_name(cfg)})"
        )
    by_name = {o.name: o for o in options}
    for key in cfg:
        if key not in by_name:
            names = [*known, *by_name]
            if not names:
                raise OptionError(f"{owner} takes no options, got '{key}'", (key,))
            raise OptionError(unknown(f"{owner} option", key, names), (key,))
    out: dict[str, Any] = {}
    for opt in options:
        if opt.name in cfg:
            out[opt.name] = coerce(opt, cfg[opt.name])
        elif opt.required:
            raise OptionError(f"{owner} needs option '{opt.name}' ({opt.summary})")
        else:
            out[opt.name] = coerce(opt, opt.default)
    return out


# --- JSON Schema ---------------------------------------------------------------------------

Schema = dict[str, Any]
NUMERIC_SCHEMA: Schema = {"type": "string", "pattern": NUMERIC_STRING}


def _bounds(opt: Option, number: Schema, cast: Callable[[float], Any]) -> Schema:
    if opt.min is not None:
        number["exclusiveMinimum" if opt.low_exclusive else "minimum"] = cast(opt.min)
    if opt.max is not None:
        number["exclusiveMaximum" if opt.high_exclusive else "maximum"] = cast(opt.max)
    return number


def _value_schema(opt: Option) -> Schema:
    integer = _bounds(opt, {"type": "integer"}, int)
    number = {"anyOf": [_bounds(opt, {"type": "number"}, float), NUMERIC_SCHEMA]}
    index = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    items: Schema = {"type": "array"}
    if opt.min_items:
        items["minItems"] = opt.min_items
    schemas: dict[str, Schema] = {
        "int": integer,
        "float": number,
        "bool": {"type": "boolean"},
        "str": {"type": "string"},
        "choice": {"enum": list(opt.choices)},
        "affine": {"anyOf": [{"enum": list(AFFINE_MODES)}, {"type": "boolean"}]},
        "path": {"type": "string", "minLength": 1},
        "target": {"type": "string", "minLength": 1},
        "mapping": {"type": "object"},
        # The order of low and high is checked by the resolver only.
        "int_pair": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "int_list": {**items, "items": integer},
        "float_list": {**items, "items": number},
        "int_or_str": index,
        "int_or_auto": {"anyOf": [integer, {"const": "auto"}]},
        "int_or_str_list": {**items, "items": index},
        "int_or_int_list": {"anyOf": [integer, {**items, "items": integer}]},
        "str_or_str_list": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        },
    }
    return schemas[opt.type]


def json_schema(opt: Option) -> Schema:
    """The JSON Schema of one option, with its summary and default as the description."""
    schema = _value_schema(opt)
    if opt.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if opt.default is not None:
        default = list(opt.default) if isinstance(opt.default, tuple) else opt.default
        note = f" (default {default!r})"
    else:
        note = " (required)" if opt.required else ""
    return {**schema, "description": f"{opt.summary}{note}"}
