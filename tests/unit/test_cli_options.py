"""``caesar submit`` options: typed by the app's schema, every problem reported per field."""

from __future__ import annotations

from typing import Any

import pytest

from caesar_cli.options import (
    FieldError,
    OptionsError,
    build_options,
    coerce,
    coerce_value,
    parse_pairs,
)
from caesar_common.apps import APPS

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "bkgbox": {"type": "integer", "minimum": 5, "maximum": 10000},
        "seedthr": {"type": "number", "minimum": 0},
        "nocov": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "exact"]},
        "label": {"type": "string"},
        "maybe": {"type": ["integer", "null"]},
    },
}


def test_pairs_split_on_the_first_equals_and_a_later_key_wins() -> None:
    pairs, errors = parse_pairs(["a=1", "b=x=y", "a=2", "novalue", "=3"])
    assert pairs == {"a": "2", "b": "x=y"}
    assert errors == [FieldError("novalue", "expected key=value"), FieldError("=3", "expected key=value")]


@pytest.mark.parametrize(
    ("raw", "prop", "expected"),
    [
        ("50", {"type": "integer"}, 50),
        ("2.5", {"type": "number"}, 2.5),
        ("3", {"type": "number"}, 3.0),
        ("1e3", {"type": "number"}, 1000.0),
        ("yes", {"type": "boolean"}, True),
        ("OFF", {"type": "boolean"}, False),
        ("0", {"type": "boolean"}, False),
        ("007", {"type": "string"}, "007"),
        ("null", {"type": ["integer", "null"]}, None),
        ("4", {"type": ["integer", "null"]}, 4),
        ("fast", {"enum": ["fast", "exact"]}, "fast"),
        ("2", {"enum": [1, 2]}, 2),
    ],
)
def test_values_take_the_schema_type(raw: str, prop: dict[str, Any], expected: Any) -> None:
    value = coerce_value(raw, prop)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "prop"),
    [("ten", {"type": "integer"}), ("nan", {"type": "number"}), ("maybe", {"type": "boolean"})],
)
def test_unparsable_values_say_what_was_expected(raw: str, prop: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="expected"):
        coerce_value(raw, prop)


def test_integer_field_refuses_a_fraction() -> None:
    options, errors = coerce(SCHEMA, {"bkgbox": "2.5"})
    assert options == {}
    assert errors == [FieldError("bkgbox", "expected integer, got '2.5'")]


def test_unknown_options_are_reported_by_name() -> None:
    _, errors = coerce(SCHEMA, {"bkgboxx": "5"})
    assert errors == [FieldError("bkgboxx", "unknown option (`caesar describe APP` lists them)")]


def test_every_problem_is_reported_at_once_per_field() -> None:
    with pytest.raises(OptionsError) as caught:
        build_options(SCHEMA, ["bkgbox=3", "seedthr=-1", "nocov=perhaps", "mode=slow", "oops=1"])
    fields = sorted(e.field for e in caught.value.errors)
    assert fields == ["bkgbox", "mode", "nocov", "oops", "seedthr"]
    by_field = {e.field: e.message for e in caught.value.errors}
    assert "minimum of 5" in by_field["bkgbox"]
    assert "'slow' is not one of" in by_field["mode"]
    assert "true/false" in by_field["nocov"]


def test_options_json_is_overlaid_by_pairs_and_checked_too() -> None:
    options = build_options(SCHEMA, ["bkgbox=60"], '{"bkgbox": 50, "nocov": true, "label": "x"}')
    assert options == {"bkgbox": 60, "nocov": True, "label": "x"}
    with pytest.raises(OptionsError) as caught:
        build_options(SCHEMA, [], '{"bkgbox": "50", "extra": 1}')
    assert sorted(e.field for e in caught.value.errors) == ["bkgbox", "extra"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_options_json_must_be_an_object(text: str) -> None:
    with pytest.raises(OptionsError, match="options-json"):
        build_options(SCHEMA, [], text)


def test_a_real_app_schema_types_and_checks_its_options() -> None:
    schema = APPS["aegean"].json_schema()
    assert build_options(schema, ["bkgbox=50", "seedthr=4", "nocov=true"]) == {
        "bkgbox": 50,
        "seedthr": 4.0,
        "nocov": True,
    }
    with pytest.raises(OptionsError) as caught:
        build_options(schema, ["bkgbox=1"])
    assert [e.field for e in caught.value.errors] == ["bkgbox"]
