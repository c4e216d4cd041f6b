"""Small builders of OpenAPI objects (operations, responses, parameters).

Shared by every module of paths; they only build dictionaries, so the path modules
depend on this one and on the models, never on each other. The v2 get, delete and list
builders hold the shapes the v2 resources share (files, jobs, webhooks).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from caesar_api.openapi.components import Schema, ref
from caesar_api.openapi.models import FILE_ID_PATTERN, JOB_ID_PATTERN, LimitStatus, Problem, Status
from caesar_api.openapi.v2_models import ValidationProblem

PROBLEM_JSON = "application/problem+json"
BINARY: Schema = {"type": "string", "format": "binary"}


def json_body(model: type[BaseModel] | Schema, description: str, **extra: Any) -> Schema:
    """A JSON response (or request body) of a model."""
    schema = ref(model) if isinstance(model, type) else model
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


def required_body(model: type[BaseModel], media_type: str = "application/json") -> Schema:
    """A request body the operation cannot do without, of ``model`` (JSON unless said)."""
    return {"required": True, "content": {media_type: {"schema": ref(model)}}}


def error(description: str) -> Schema:
    """A v1 error: ``{"status": message}``."""
    return json_body(Status, description)


RETRY_AFTER: Schema = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}


def limit_error(description: str, *, retry_after: bool = False) -> Schema:
    """A v1 error of a limit: ``{"status": message}`` and the figures (:class:`LimitStatus`)."""
    if retry_after:
        return json_body(LimitStatus, description, headers=RETRY_AFTER)
    return json_body(LimitStatus, description)


def problem(description: str) -> Schema:
    """A v2 error: RFC 9457 problem details."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": ref(Problem)}}}


def validation_problem(description: str) -> Schema:
    """A v2 422: the body does not fit its schema, every problem at its JSON pointer."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": ref(ValidationProblem)}}}


def binary(description: str, *media_types: str) -> Schema:
    """A file in the answer, in any of ``media_types``."""
    return {"description": description, "content": {media: {"schema": BINARY} for media in media_types}}


def path_param(name: str, description: str, pattern: str | None = None, **schema: Any) -> Schema:
    """A required path parameter (a string, with its pattern when it is an id)."""
    body: Schema = {"type": "string", **schema}
    if pattern:
        body["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "description": description, "schema": body}


def query_param(name: str, description: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


FILE_ID_PARAM = path_param("file_id", "File uuid (32 lowercase hex characters).", FILE_ID_PATTERN)
JOB_ID_PARAM = path_param("job_id", "Job id (a dashed uuid).", JOB_ID_PATTERN)


def operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    tag: str,
    description: str = "",
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
) -> Schema:
    """One operation object."""
    op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    op["responses"] = responses
    return op


def renamed(op: Schema, operation_id: str, summary_suffix: str = "") -> Schema:
    """The same operation under another method (v1 routes answer GET and POST alike)."""
    return {**op, "operationId": operation_id, "summary": op["summary"] + summary_suffix}


def get_one(
    operation_id: str,
    summary: str,
    model: type[BaseModel],
    description: str,
    *,
    not_found: str,
    param: Schema,
    tag: str,
) -> Schema:
    """A v2 GET of one resource named by ``param``: 200 with it, 404 (a problem) otherwise.

    Every v2 resource answers a read the same way, so the shape is written once and the
    v2 paths cannot drift apart (a 404 that is a v1 error in one of them, say).
    """
    return operation(
        operation_id,
        summary,
        {"200": json_body(model, description), "404": problem(not_found)},
        tag=tag,
        parameters=[param],
    )


def delete_one(
    operation_id: str,
    summary: str,
    deleted: str,
    *,
    not_found: str,
    param: Schema,
    tag: str,
    conflict: str = "",
) -> Schema:
    """A v2 DELETE of one resource named by ``param``: 204 (``deleted`` says what stays), 404,
    and 409 (``conflict``) for a resource that cannot go yet.
    """
    responses: dict[str, Schema] = {"204": {"description": deleted}, "404": problem(not_found)}
    if conflict:
        responses["409"] = problem(conflict)
    return operation(operation_id, summary, responses, tag=tag, parameters=[param])


def list_page(
    operation_id: str,
    summary: str,
    page: Schema,
    bad_request: str,
    *,
    parameters: list[Schema],
    tag: str,
    not_found: str = "",
) -> Schema:
    """A v2 list: 200 with ``page`` (its schema and ``Link`` header), 400 for a bad ``limit``,
    filter or cursor, and 404 (``not_found``) when the list belongs to a resource.

    ``page`` comes whole from the caller: its ``Link`` header is :mod:`.paging`'s, which
    builds on this module and so cannot be imported here.
    """
    responses = {"200": page, "400": problem(bad_request)}
    if not_found:
        responses["404"] = problem(not_found)
    return operation(operation_id, summary, responses, tag=tag, parameters=parameters)
