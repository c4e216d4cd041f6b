"""App options from the command line, typed by the app's JSON Schema and checked before sending.

``-o key=value`` gives strings; the schema says what each option is, so ``bkgbox=50``
becomes the integer 50 and ``nocov=yes`` the boolean true. Every problem is reported at
once, per field, before any request is made: a typo costs one run of the command, not a
queued job that fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.validators import validator_for

TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "off", "0"})


@dataclass(frozen=True)
class FieldError:
    """One option's problem: ``field`` is the option name ("" for the whole object)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field or '(options)'}: {self.message}"


class OptionsError(ValueError):
    """Options that cannot be sent; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)


def parse_pairs(pairs: Iterable[str]) -> tuple[dict[str, str], list[FieldError]]:
    """``key=value`` strings as a dict (a later key wins); malformed ones as errors."""
    out: dict[str, str] = {}
    errors: list[FieldError] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(FieldError(pair, "expected key=value"))
            continue
        out[key] = value
    return out, errors


def parse_options_json(text: str) -> dict[str, Any]:
    """``--options-json``: a JSON object (already typed, so not coerced)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise OptionsError([FieldError("", f"--options-json is not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise OptionsError([FieldError("", "--options-json must be a JSON object")])
    return data


def _types(prop: Mapping[str, Any]) -> list[str]:
    declared = prop.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    if "enum" in prop:  # an untyped enum: match the value against its members' types
        return sorted({_json_type(v) for v in prop["enum"]})
    return ["string"]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def coerce_value(raw: str, prop: Mapping[str, Any]) -> Any:
    """``raw`` as the first of the property's types it parses as; ValueError if none."""
    types = _types(prop)
    for kind in ("null", "boolean", "integer", "number"):
        if kind not in types:
            continue
        text = raw.strip().lower()
        if kind == "null" and text in ("null", "none", ""):
            return None
        if kind == "boolean":
            if text in TRUE_WORDS:
                return True
            if text in FALSE_WORDS:
                return False
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                pass
        if kind == "number":
            try:
                number = float(text)
            except ValueError:
                continue
            if number != number or number in (float("inf"), float("-inf")):
                continue  # NaN and infinities are not JSON numbers
            return int(number) if number.is_integer() and "integer" in types else number
    if "string" in types:
        return raw
    expected = " or ".join("true/false" if t == "boolean" else t for t in types)
    raise ValueError(f"expected {expected}, got {raw!r}")


def coerce(schema: Mapping[str, Any], raw: Mapping[str, str]) -> tuple[dict[str, Any], list[FieldError]]:
    """String options typed by the schema's properties; unknown or unparsable ones as errors."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    closed = schema.get("additionalProperties") is False
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, value in raw.items():
        prop = props.get(key)
        if prop is None:
            if closed:
                errors.append(FieldError(key, "unknown option (`caesar describe APP` lists them)"))
            else:
                out[key] = value
            continue
        try:
            out[key] = coerce_value(value, prop)
        except ValueError as exc:
            errors.append(FieldError(key, str(exc)))
    return out, errors


def validate(schema: Mapping[str, Any], options: Mapping[str, Any]) -> list[FieldError]:
    """Every JSON Schema violation of ``options``, per field, in field order."""
    cls = validator_for(schema)
    validator = cls(schema)
    errors: list[FieldError] = []
    for err in validator.iter_errors(dict(options)):
        path = "/".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties" and not path:
            known = set((schema.get("properties") or {}).keys())
            for key in sorted(set(options) - known):
                errors.append(FieldError(key, "unknown option (`caesar describe APP` lists them)"))
            continue
        errors.append(FieldError(path, err.message))
    return sorted(errors, key=lambda e: e.field)


def build_options(
    schema: Mapping[str, Any], pairs: Iterable[str], options_json: str | None = None
) -> dict[str, Any]:
    """The options to submit: ``--options-json`` overlaid with ``-o`` pairs, typed and checked.

    Raises :class:`OptionsError` with every problem when any is found.
    """
    base = parse_options_json(options_json) if options_json else {}
    raw, errors = parse_pairs(pairs)
    typed, coerce_errors = coerce(schema, raw)
    errors += coerce_errors
    merged = {**base, **typed}
    failed = {e.field for e in errors}
    errors += [e for e in validate(schema, merged) if e.field not in failed]
    if errors:
        raise OptionsError(errors)
    return merged
