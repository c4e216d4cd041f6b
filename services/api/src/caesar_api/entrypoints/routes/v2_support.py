"""What every v2 route shares: problem+json errors (422 with ``errors``) and the list shape."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiohttp import web

from caesar_api.adapters.pagination import Page
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import INVALID_REQUEST_DATA, ApiError
from caesar_api.domain.v2_requests import InvalidBody
from caesar_api.entrypoints.limits import read_within
from caesar_api.entrypoints.routes import RouteHandler
from caesar_api.entrypoints.routes.problems import problem, with_problems
from caesar_common.store import Document


def v2_route(handler: RouteHandler) -> RouteHandler:
    """Answer errors as RFC 9457 problems; a body that does not fit its schema as a 422 with ``errors``."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        try:
            return await handler(request, deps, owner)
        except InvalidBody as exc:
            return problem(422, exc.message, errors=[e.as_json() for e in exc.errors])

    return with_problems(wrapped)


async def json_body(request: web.Request, deps: Dependencies) -> object:
    """The decoded JSON body; 400 when it is not JSON (or nested beyond what can be decoded)."""
    try:
        return await read_within(deps.settings.http_body_timeout_s, request.json())
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and bad JSON alike; RecursionError: JSON nested
        # thousands deep (the decoder recurses per level).
        raise ApiError(400, f"{INVALID_REQUEST_DATA} The body is not a JSON document") from None


def list_response(
    request: web.Request, page: Page, limit: int, render: Callable[[Document], Any]
) -> web.Response:
    """``{"items": [...], "next": <url or null>}`` with the same ``next`` in a ``Link`` header.

    ``next`` keeps the request's other query parameters (the filters) and moves ``after``.
    """
    headers: dict[str, str] = {}
    following = None
    if page.more and page.items:
        url = request.rel_url.update_query({"limit": str(limit), "after": str(page.items[-1]["_id"])})
        following = str(url)
        headers["Link"] = f'<{following}>; rel="next"'
    return web.json_response(
        {"items": [render(item) for item in page.items], "next": following}, headers=headers
    )
