"""The whole OpenAPI 3.1 document, built for one deployment's settings.

What the document says depends on the settings as the server's behaviour does: the
allowed upload formats, the page-size bound, and whether a bearer token is needed at all
(with authentication off no operation declares security or a 401).
"""

from __future__ import annotations

from typing import Any

from caesar_api.auth.public import is_public
from caesar_api.entrypoints.limits import UNLIMITED_PATHS
from caesar_api.entrypoints.routes import V1
from caesar_api.openapi.apps import app_paths
from caesar_api.openapi.components import Schema, component_schemas
from caesar_api.openapi.events import event_paths
from caesar_api.openapi.files import file_paths
from caesar_api.openapi.jobs import job_paths
from caesar_api.openapi.operational import operational_paths
from caesar_api.openapi.operations import error, limit_error
from caesar_api.openapi.results import result_paths
from caesar_api.openapi.usage import usage_paths
from caesar_api.openapi.uws import uws_paths
from caesar_api.openapi.v2_paths import v2_app_paths, v2_file_paths, v2_job_paths
from caesar_api.openapi.webhooks import webhook_paths
from caesar_api.settings import ApiSettings
from caesar_api.web.openapi import web_paths

OPENAPI_VERSION = "3.1.0"
BEARER = "bearerAuth"
TAGS = [
    {"name": "files", "description": "Uploaded images."},
    {"name": "apps", "description": "Source finders and their options."},
    {"name": "jobs", "description": "Jobs: submit, follow, cancel, outputs."},
    {"name": "accounting", "description": "Usage: the caller's, everyone's (admins), reports."},
    {"name": "operations", "description": "Health, readiness, metrics, documentation, dead letters."},
    {"name": "webhooks", "description": "Job states POSTed to the caller's URLs, signed, with retries."},
    {"name": "uws", "description": "IVOA UWS 1.1 job lists, one per app (XML; see docs/uws.md)."},
    {"name": "web", "description": "The web page for astronomers and its files (public; data via the API)."},
]


def build_openapi(settings: ApiSettings) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    paths: dict[str, Any] = {
        **file_paths(settings),
        **app_paths(),
        **job_paths(settings),
        **result_paths(),
        **usage_paths(),
        **operational_paths(),
        **v2_app_paths(),
        **v2_file_paths(settings),
        **v2_job_paths(settings),
        **uws_paths(settings),
        **event_paths(settings),  # SSE
        **webhook_paths(settings),
        **web_paths(),
    }
    _not_ready(paths)
    components: dict[str, Any] = {"schemas": component_schemas()}
    auth = "Authentication is off: every caller is 'anonymous'."
    if settings.auth_enabled:
        _secure(paths)
        components["securitySchemes"] = {BEARER: BEARER_SCHEME}
        auth = "Every route but probes, metrics, documentation and the v1 app catalogue needs a bearer token."
    _connection_limit(paths, settings)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "caesar-rest api",
            "version": "1.0",
            "description": (
                "The caesar-rest v1.0 API: upload radio images, run source finders on them, follow the "
                "jobs and download their outputs. v1 errors are JSON objects with the message in "
                "'status'; v2 errors are RFC 9457 problem details. Every list is paginated with "
                f"?limit=&after=. {auth}"
            ),
        },
        "tags": TAGS,
        "paths": paths,
        "components": components,
    }


BEARER_SCHEME: Schema = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "A Keycloak access token of the caesar realm whose audience is the api. v1 clients may "
        "instead send it in an access_token form field; never in the query string."
    ),
}


def _not_ready(paths: dict[str, Any]) -> None:
    """Every v1 route answers 503 until broker and database are connected.

    An operation's own 503 (accounting unavailable) keeps its shape; the description
    names both causes.
    """
    starting = error("Service starting, not ready yet; retry shortly.")
    for path, item in paths.items():
        if path.startswith(V1 + "/"):
            for op in item.values():
                current = op["responses"].get("503")
                if current is None:
                    op["responses"]["503"] = starting
                else:
                    description = f"{starting['description']} Or: {current['description']}"
                    op["responses"]["503"] = {**current, "description": description}


def _connection_limit(paths: dict[str, Any], settings: ApiSettings) -> None:
    """Every operation but the probes and metrics answers 503 beyond the connection limit.

    Runs last, so an operation's other 503 (not ready, the realm's keys unavailable,
    accounting unavailable) is kept in the description; every JSON 503 the api sends fits
    :class:`LimitStatus`, and a v2 operation's problem+json 503 keeps its media type.
    """
    limited = limit_error(
        f"More than {settings.http_max_connections} connections are open (limit_connections); "
        "the connection is closed, retry after Retry-After seconds.",
        retry_after=True,
    )
    for path, item in paths.items():
        if path in UNLIMITED_PATHS:
            continue
        for op in item.values():
            current = op["responses"].get("503")
            description = limited["description"]
            content = limited["content"]
            if current is not None:
                description = f"{current['description']} Or: {description}"
                content = {**current.get("content", {}), **content}
            op["responses"]["503"] = {**limited, "description": description, "content": content}


def _secure(paths: dict[str, Any]) -> None:
    """Mark every non-public operation as needing a bearer token, with its 401/403/503.

    Done over the finished paths (with :func:`is_public`, the allow-list the auth
    middleware uses), so a route added later is covered too.
    """
    unauthorized = {
        **error("Missing, expired or invalid token (WWW-Authenticate: Bearer)."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
    for path, item in paths.items():
        if is_public(path):
            continue
        for op in item.values():
            op["security"] = [{BEARER: []}]
            op["responses"].setdefault("401", unauthorized)
            op["responses"].setdefault("403", error("The token lacks the role the api requires."))
            op["responses"].setdefault("503", error("Service starting, or the realm's keys unavailable."))
