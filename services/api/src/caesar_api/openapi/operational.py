"""Paths of operations: probes, metrics, this document, the AsyncAPI one, the docs page, dead letters."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V2
from caesar_api.entrypoints.routes.admin import MAX_LIMIT
from caesar_api.openapi.components import Schema
from caesar_api.openapi.models import DeadLetters, Health, Readiness, Replayed
from caesar_api.openapi.operations import (
    binary,
    error,
    json_body,
    operation,
    path_param,
    problem,
    query_param,
    renamed,
)
from caesar_common.deadletters import SERVICE_QUEUES

TAG = "operations"


def _with_head(op: Schema) -> Schema:
    """GET and HEAD (the runtime's operational routes answer both)."""
    return {"get": op, "head": renamed(op, op["operationId"] + "Head", " (headers only)")}


def operational_paths() -> dict[str, Any]:
    """Probes, metrics, ``/openapi.json``, ``/asyncapi.json``, ``/docs``, dead letters."""
    limit = query_param(
        "limit",
        f"At most this many messages (per queue when listing), 1 to {MAX_LIMIT}.",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    )
    bad_limit = problem(f"limit is not an integer between 1 and {MAX_LIMIT}.")
    forbidden = problem("The caller lacks the admin role.")
    return {
        "/healthz": _with_head(
            operation("healthz", "Liveness", {"200": json_body(Health, "The process is up.")}, tag=TAG)
        ),
        "/readyz": _with_head(
            operation(
                "readyz",
                "Readiness",
                {
                    "200": json_body(Readiness, "Broker and database reachable."),
                    "503": json_body(Readiness, "Not ready yet."),
                },
                tag=TAG,
            )
        ),
        "/metrics": _with_head(
            operation(
                "metrics",
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                tag=TAG,
            )
        ),
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                {"200": json_body({"type": "object"}, "OpenAPI 3.1, for this deployment's settings.")},
                tag=TAG,
            )
        },
        "/asyncapi.json": {
            "get": operation(
                "asyncapi",
                "The events a subscriber can follow (AsyncAPI 3.0)",
                {
                    "200": json_body(
                        {"type": "object"},
                        "AsyncAPI 3.0 document of the caesar.events exchange: channels (routing keys), "
                        "payload schemas, the read-only subscriber's permissions (docs/subscribers.md).",
                    )
                },
                tag=TAG,
            )
        },
        "/docs": {
            "get": operation(
                "docs",
                "Interactive documentation (Swagger UI, works offline)",
                {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                tag=TAG,
            )
        },
        "/docs/{asset}": {
            "get": operation(
                "docsAsset",
                "Static files of the interactive documentation",
                {
                    "200": binary(
                        "A script, style sheet or image.", "text/css", "application/javascript", "image/png"
                    ),
                    "404": error("Not one of the documentation's files."),
                },
                tag=TAG,
                parameters=[path_param("asset", "File name, e.g. swagger-ui.css.")],
            )
        },
        f"{V2}/admin/dead-letters": {
            "get": operation(
                "listDeadLetters",
                "Dead-lettered messages of every service queue (admins)",
                {
                    "200": json_body(DeadLetters, "The messages; they stay in their dead-letter queues."),
                    "400": bad_limit,
                    "403": forbidden,
                },
                tag=TAG,
                parameters=[limit],
            )
        },
        f"{V2}/admin/dead-letters/{{queue}}/replay": {
            "post": operation(
                "replayDeadLetters",
                "Send a queue's dead-lettered messages back to it (admins)",
                {
                    "200": json_body(Replayed, "How many messages went back to the queue."),
                    "400": bad_limit,
                    "403": forbidden,
                    "404": problem("Not one of the services' queues."),
                },
                tag=TAG,
                parameters=[path_param("queue", "A service queue.", enum=list(SERVICE_QUEUES)), limit],
            )
        },
    }
