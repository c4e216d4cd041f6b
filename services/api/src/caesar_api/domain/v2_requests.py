"""The body of ``POST /api/v2/jobs`` and its checks against the app's JSON Schema (pure).

A v2 client gets every problem of its body at once, each with the JSON pointer of the
value it is about (``{"path": "/options/seedthr", "message": ...}``), in a 422; a body
that is not JSON at all is the route's 400. The options are checked against the very
schema ``GET /api/v2/apps/{name}`` publishes, so a client that validates locally with it
is never surprised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jsonschema import Draft202012Validator

from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.jobs import TAG_MAX
from caesar_common.apps.base import App
from caesar_common.ids import is_file_id

BODY_FIELDS: Final = frozenset({"app", "file_id", "options", "tag"})


@dataclass(frozen=True)
class FieldError:
    """One problem of a request body: where (a JSON pointer) and what."""

    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidBody(ApiError):
    """A body that does not fit its schema: 422 with every problem in ``errors``."""

    def __init__(
        self, errors: Iterable[FieldError], message: str = "The request body does not fit its schema"
    ) -> None:
        super().__init__(422, message)
        self.errors: list[FieldError] = list(errors)


@dataclass(frozen=True)
class V2JobBody:
    """A structurally valid v2 submission (the app and file not looked up yet)."""

    app: str
    file_id: str
    options: dict[str, Any] = field(default_factory=dict)
    tag: str = ""


def pointer(parts: Iterable[object]) -> str:
    """RFC 6901 JSON pointer of a path (``~`` and ``/`` escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parse_job_body(body: object) -> V2JobBody:
    """Check the shape of a decoded ``POST /api/v2/jobs`` body; :class:`InvalidBody` otherwise."""
    if not isinstance(body, Mapping):
        raise InvalidBody([FieldError("", "the body must be a JSON object")])
    errors: list[FieldError] = []
    for key in sorted(str(k) for k in body if k not in BODY_FIELDS):
        errors.append(
            FieldError(pointer([key]), f"unknown field {shown(key)}; use {', '.join(sorted(BODY_FIELDS))}")
        )
    app = body.get("app")
    if not isinstance(app, str) or not app:
        errors.append(FieldError("/app", "required: the name of an app (GET /api/v2/apps)"))
    file_id = body.get("file_id")
    if not isinstance(file_id, str) or not is_file_id(file_id):
        errors.append(FieldError("/file_id", "required: the file_id of an uploaded file (32 lowercase hex)"))
    options = body.get("options", {})
    if not isinstance(options, Mapping):
        errors.append(FieldError("/options", "must be an object of option names and values"))
    tag = body.get("tag", "")
    if tag is None:
        tag = ""
    if not isinstance(tag, str):
        errors.append(FieldError("/tag", "must be a string"))
    elif len(tag) > TAG_MAX:
        errors.append(FieldError("/tag", f"must be at most {TAG_MAX} characters"))
    if errors:
        raise InvalidBody(errors)
    # Checked above: no error means each has its type.
    return V2JobBody(app=str(app), file_id=str(file_id), options=dict(options), tag=str(tag))


_VALIDATORS: dict[str, Draft202012Validator] = {}
MESSAGE_MAX: Final = 300


def _validator(app: App) -> Draft202012Validator:
    validator = _VALIDATORS.get(app.name)
    if validator is None:
        validator = _VALIDATORS[app.name] = Draft202012Validator(app.json_schema())
    return validator


def option_errors(app: App, options: Mapping[str, Any]) -> list[FieldError]:
    """Where ``options`` break the app's published JSON Schema (empty when they fit)."""
    found = sorted(_validator(app).iter_errors(dict(options)), key=lambda e: list(map(str, e.absolute_path)))
    # The messages quote the values: cut, so a megabyte of option text is not echoed back.
    return [
        FieldError(pointer(["options", *error.absolute_path]), shown(error.message, MESSAGE_MAX))
        for error in found
    ]
