"""The one option resolver: types, ranges, nullability, unknown keys, listings and schema."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from normbench.errors import OptionError
from normbench.options import Option, coerce, fill, json_schema


def refused(opt: Option, value: Any) -> OptionError:
    with pytest.raises(OptionError) as err:
        coerce(opt, value)
    return err.value


def test_the_leaf_imports_neither_torch_nor_pydantic() -> None:
    code = (
        "import sys, normbench.options; "
        "loaded = {m for m in sys.modules if m.startswith('normbench')}; "
        "assert loaded == {'normbench', 'normbench.errors', 'normbench.options'}, loaded; "
        "assert 'torch' not in sys.modules and 'pydantic' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --- types -----------------------------------------------------------------------------------


def test_int_refuses_bools_strings_and_fractions() -> None:
    opt = Option("groups", "int", 32, "channel groups")
    assert coerce(opt, 8) == 8 and coerce(opt, 4.0) == 4 and isinstance(coerce(opt, 4.0), int)
    err = refused(opt, True)
    assert err.message == "must be an integer, got true (bool)" and err.path == ("groups",)
    assert "must be an integer, got 'eight' (str)" in refused(opt, "eight").message
    assert "must be an integer, got 2.5" in refused(opt, 2.5).message


def test_float_takes_yaml_number_strings_but_not_words_or_infinity() -> None:
    opt = Option("eps", "float", 1e-5, "stability")
    assert (
        coerce(opt, "1e-3") == 1e-3 and coerce(opt, 2) == 2.0 and isinstance(coerce(opt, 2), float)
    )
    assert refused(opt, "tiny").message == "must be a number, got 'tiny' (str)"
    assert "must be a number" in refused(opt, False).message
    assert "must be a finite number" in refused(opt, math.inf).message
    assert "must be a finite number" in refused(opt, "nan").message


def test_bool_str_path_target_mapping() -> None:
    assert coerce(Option("b", "bool", True, ""), False) is False
    assert "true or false" in refused(Option("b", "bool", True, ""), "yes").message
    assert "must be a string" in refused(Option("s", "str", None, ""), 3).message
    assert coerce(Option("p", "path", None, "", nullable=True), Path("/x")) == "/x"
    assert "path" in refused(Option("p", "path", None, ""), "  ").message
    target = Option("target", "target", None, "", nullable=True)
    assert coerce(target, "pkg.mod:Outer.Inner") == "pkg.mod:Outer.Inner"
    assert "'package.module:name'" in refused(target, "pkg.mod.Class").message
    mapping = Option("options", "mapping", None, "", nullable=True)
    assert coerce(mapping, {"a": 1}) == {"a": 1}
    assert "a mapping of keyword arguments" in refused(mapping, {1: 2}).message


def test_choices_of_names_are_exact_and_suggest_the_closest() -> None:
    opt = Option("input_norm", "choice", "none", "", choices=("none", "zscore", "minmax"))
    assert coerce(opt, "zscore") == "zscore"
    err = refused(opt, "zsore")
    assert "must be one of none, zscore, minmax, got 'zsore'" in err.message
    assert "did you mean 'zscore'?" in err.message
    assert "must be one of" in refused(opt, "ZSCORE").message


def test_numeric_choices_accept_the_spellings_yaml_produces() -> None:
    opt = Option("p", "choice", 1, "", choices=(1, 2, "inf"))
    for value, canonical in [(2, 2), (2.0, 2), ("2", 2), ("INF", "inf"), (math.inf, "inf")]:
        assert coerce(opt, value) == canonical and type(coerce(opt, value)) is type(canonical)
    assert "one of 1, 2, inf, got 3" in refused(opt, 3).message
    assert "one of" in refused(opt, True).message  # True == 1 in Python, not in YAML


def test_affine_takes_true_false_and_null() -> None:
    opt = Option("affine", "affine", "per_feature", "")
    assert [coerce(opt, v) for v in (True, False, None, "linear")] == [
        "per_feature",
        "none",
        "none",
        "linear",
    ]
    err = refused(opt, "lineer")
    assert "none, per_feature, linear (or true/false)" in err.message
    assert "did you mean 'linear'" in err.message


# --- ranges ----------------------------------------------------------------------------------


def test_inclusive_bounds() -> None:
    opt = Option("num_samples", "int", 5000, "", min=10, max=100)
    assert coerce(opt, 10) == 10 and coerce(opt, 100) == 100
    assert refused(opt, 9).message == "must be >= 10, got 9 (int in [10, 100])"
    assert refused(opt, 101).message == "must be <= 100, got 101 (int in [10, 100])"


def test_min_exclusive_bound() -> None:
    opt = Option("eps", "float", 1e-5, "", min=0.0, min_exclusive=True, max=1.0)
    assert coerce(opt, 1.0) == 1.0
    err = refused(opt, 0)
    assert err.message == "must be > 0, got 0 (float in (0, 1])" and err.path == ("eps",)
    assert "must be <= 1" in refused(opt, 1.5).message


def test_open_interval_excludes_both_ends() -> None:
    opt = Option("train_split", "float", 0.8, "", min=0.0, max=1.0, open_interval=True)
    assert coerce(opt, 0.5) == 0.5
    assert refused(opt, 1.0).message == "must be < 1, got 1 (float in (0, 1))"
    assert "must be > 0" in refused(opt, 0.0).message


def test_a_custom_message_replaces_the_range_sentence() -> None:
    opt = Option("points", "int", 8, "", min=1, message="points must be at least 1, got {value}!")
    assert refused(opt, 0).message == "points must be at least 1, got 0!"


# --- null and required -----------------------------------------------------------------------


def test_nullable_options_take_null_and_others_do_not() -> None:
    assert coerce(Option("limit", "int", None, "", min=1, nullable=True), None) is None
    err = refused(Option("limit", "int", 5, "", min=1), None)
    assert err.message == "must be an integer, got null (null)"
    assert not Option("limit", "int", None, "", nullable=True).required
    assert Option("target", "str", None, "").required


# --- lists -----------------------------------------------------------------------------------


def test_float_list_items_are_numbers_in_range() -> None:
    opt = Option("percentiles", "float_list", (15.0, 85.0), "", min=0, max=100, min_items=1)
    assert coerce(opt, [15, "50"]) == [15.0, 50.0]
    err = refused(opt, [15, 101])
    assert err.message == "must be <= 100, got 101 (list of floats in [0, 100])"
    assert err.path == ("percentiles",)
    err = refused(opt, [15, "x"])
    assert err.message == "must be a number, got 'x' (str)" and err.path == ("percentiles", 1)
    assert refused(opt, []).message == "must list at least one value, got []"
    assert "a list of numbers" in refused(opt, "15").message


def test_int_lists_and_indices_or_paths() -> None:
    ints = Option("widths", "int_list", (8,), "", min=1, min_items=2)
    assert coerce(ints, [8, 16.0]) == [8, 16]
    assert refused(ints, [8]).message == "must list at least 2 values, got [8]"
    assert refused(ints, [8, 0]).message.startswith("must be >= 1, got 0")
    index = Option("layer", "int_or_str", -1, "")
    assert coerce(index, -2) == -2 and coerce(index, "layer2.0.relu") == "layer2.0.relu"
    assert "an integer or a string" in refused(index, True).message
    layers = Option("layers", "int_or_str_list", None, "", nullable=True, min_items=1)
    assert coerce(layers, None) is None and coerce(layers, [0, "fc"]) == [0, "fc"]
    assert refused(layers, [0, [1]]).path == ("layers", 1)


def test_int_pair_is_low_then_high() -> None:
    opt = Option("padding", "int_pair", [36, 60], "", min=0)
    assert coerce(opt, (1, 2)) == [1, 2]
    assert "low <= high" in refused(opt, [60, 36]).message
    assert "two integers" in refused(opt, [1, 2, 3]).message
    assert refused(opt, [-1, 2]).message.startswith("must be >= 0, got -1")


# --- fill ------------------------------------------------------------------------------------

OPTIONS = (
    Option("groups", "int", 32, "channel groups", min=1),
    Option("eps", "float", 1e-5, "stability", min=0.0, min_exclusive=True),
    Option("percentiles", "float_list", (15.0, 85.0), "which", min=0, max=100),
)


def test_fill_validates_and_fills_defaults_in_declared_order() -> None:
    out = fill("norm 'group'", OPTIONS, {"eps": "1e-3", "groups": 8})
    assert out == {"groups": 8, "eps": 1e-3, "percentiles": [15.0, 85.0]}
    assert list(out) == ["groups", "eps", "percentiles"]


def test_fill_refuses_an_unknown_key_with_the_closest_suggested() -> None:
    with pytest.raises(OptionError) as err:
        fill("norm 'group'", OPTIONS, {"grups": 8})
    assert err.value.path == ("grups",)
    assert err.value.message.startswith(
        "unknown norm 'group' option 'grups' — did you mean 'groups'? (choose from groups, eps"
    )
    with pytest.raises(OptionError, match=r"did you mean 'name'\? \(choose from name, groups"):
        fill("mnist1d", OPTIONS, {"nme": "x"}, known=("name",))
    with pytest.raises(OptionError, match="takes no options, got 'eps'"):
        fill("norm 'none'", (), {"eps": 1e-5})


def test_fill_needs_required_options_and_a_mapping() -> None:
    with pytest.raises(OptionError, match=r"norm 'custom' needs option 'target' \(its class\)"):
        fill("norm 'custom'", (Option("target", "str", None, "its class"),), {})
    with pytest.raises(OptionError, match="must be a mapping"):
        fill("diagnostic 'shift'", OPTIONS, [1, 2])
    with pytest.raises(OptionError) as err:
        fill("x", OPTIONS, {"groups": 0})
    assert err.value.path == ("groups",)


# --- listing and schema ----------------------------------------------------------------------


def test_describe() -> None:
    split = Option("s", "float", 0.8, "", min=0, max=1, open_interval=True)
    assert split.describe_type() == "float in (0, 1)"
    assert Option("n", "int", 5000, "", min=10).describe() == "n=5000 (int >= 10)"
    assert Option("b", "bool", True, "").describe() == "b=true (bool)"
    assert Option("t", "str", None, "").describe() == "t (required, str)"
    assert Option("l", "int", None, "", min=1, nullable=True).describe() == "l=null (int >= 1)"
    pct = Option("p", "float_list", (15.0, 50.0), "", min=0, max=100)
    assert pct.describe() == "p=[15, 50] (list of floats in [0, 100])"
    assert Option("p", "choice", 1, "", choices=(1, 2, "inf")).describe() == "p=1 (1|2|inf)"


def test_json_schema() -> None:
    assert json_schema(Option("g", "int", 32, "groups", min=1)) == {
        "type": "integer",
        "minimum": 1,
        "description": "groups (default 32)",
    }
    eps = json_schema(Option("eps", "float", 1e-5, "e", min=0.0, min_exclusive=True, max=1.0))
    assert eps["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0}
    assert eps["anyOf"][1]["type"] == "string"  # PyYAML's 1e-5
    nullable = json_schema(Option("l", "int", None, "limit", nullable=True))
    assert nullable == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "description": "limit",
    }
    assert json_schema(Option("t", "str", None, "cls"))["description"] == "cls (required)"
    pct = json_schema(Option("p", "float_list", (15.0,), "pct", min=0, max=100, min_items=1))
    assert pct["type"] == "array" and pct["minItems"] == 1
    assert pct["items"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 100.0}
    assert pct["description"] == "pct (default [15.0])"
    assert json_schema(Option("o", "mapping", None, "kw", nullable=True))["anyOf"][0] == {
        "type": "object"
    }


def test_a_registry_typo_fails_at_definition() -> None:
    with pytest.raises(AssertionError, match="unknown type 'integer'"):
        Option("g", "integer", 1, "")
    with pytest.raises(AssertionError, match="needs choices"):
        Option("c", "choice", "a", "")
