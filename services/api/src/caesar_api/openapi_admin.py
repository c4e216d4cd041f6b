"""OpenAPI paths of the operator routes (``handlers/admin.py``), merged by ``openapi.py``."""

from __future__ import annotations

from typing import Any

from caesar_api.openapi import _json, _op
from caesar_api.openapi_results import _problem

__all__ = ["admin_paths"]

_TAG = "operations"
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": "At most this many messages (per queue when listing), 1 to 1000.",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
}
_LETTER = {
    "type": "object",
    "properties": {
        name: {"type": kind}
        for name, kind in (
            ("dead_letter_queue", "string"),
            ("origin_queue", "string"),
            ("reason", "string"),
            ("deaths", "integer"),
            ("message_id", "string"),
            ("type", "string"),
            ("routing_key", "string"),
            ("body", "string"),
        )
    },
}


def admin_paths() -> dict[str, Any]:
    forbidden = _problem("The caller lacks the admin role.")
    bad_limit = _problem("limit is not an integer between 1 and 1000.")
    return {
        "/api/v2/admin/dead-letters": {
            "get": _op(
                "Dead-lettered messages of every service queue (admins)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"dead_letters": {"type": "array", "items": _LETTER}},
                        },
                        "The messages; they stay in their dead-letter queues.",
                    ),
                    "400": bad_limit,
                    "403": forbidden,
                },
                tag=_TAG,
                operation_id="listDeadLetters",
                parameters=[_LIMIT],
            )
        },
        "/api/v2/admin/dead-letters/{queue}/replay": {
            "post": _op(
                "Send a queue's dead-lettered messages back to it (admins)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"queue": {"type": "string"}, "replayed": {"type": "integer"}},
                        },
                        "How many messages went back to the queue.",
                    ),
                    "400": bad_limit,
                    "403": forbidden,
                    "404": _problem("Not one of the services' queues."),
                },
                tag=_TAG,
                operation_id="replayDeadLetters",
                parameters=[
                    {
                        "name": "queue",
                        "in": "path",
                        "required": True,
                        "description": "A service queue, e.g. scheduler.events.",
                        "schema": {"type": "string"},
                    },
                    _LIMIT,
                ],
            )
        },
    }
