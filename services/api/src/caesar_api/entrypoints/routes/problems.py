"""RFC 9457 problem details: the error shape of the v2 routes (v1 keeps ``{"status": ...}``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.entrypoints.routes import RouteHandler

PROBLEM_TYPE: Final = "application/problem+json"


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.json_response(body, status=status, content_type=PROBLEM_TYPE, headers=headers)


def with_problems(handler: RouteHandler) -> RouteHandler:
    """Answer the handler's :class:`ApiError` as problem+json instead of the v1 shape."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        try:
            return await handler(request, deps, owner)
        except ApiError as exc:
            return problem(exc.http_status, exc.message, exc.headers or None, **exc.details)

    return wrapped
