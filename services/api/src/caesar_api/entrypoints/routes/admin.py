"""Operator routes: dead-lettered messages (list, replay); admins only.

With authentication off (a local, single-operator stack) the caller is the operator;
with it on, only the realm's admin role may look at or move other users' messages.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Final

from aiohttp import web
from aiormq.exceptions import ChannelNotFoundEntity

from caesar_api.auth import acts_as_admin
from caesar_api.dependencies import Dependencies
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.problems import problem
from caesar_common.deadletters import SERVICE_QUEUES, list_dead_letters, replay

ADMIN: Final = f"{V2}/admin"
MAX_LIMIT: Final = 1000


def _forbidden(request: web.Request, deps: Dependencies) -> web.Response | None:
    if not acts_as_admin(request, deps.settings.auth_enabled):
        return problem(403, "This route needs the admin role.")
    return None


def _limit(request: web.Request, default: int) -> int | web.Response:
    raw = request.query.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= MAX_LIMIT:
        return problem(400, f"limit must be an integer between 1 and {MAX_LIMIT}")
    return int(raw)


async def list_dead_letter_messages(
    request: web.Request, deps: Dependencies, owner: str
) -> web.StreamResponse:
    """Messages waiting in the services' dead-letter queues (they stay there)."""
    refusal = _forbidden(request, deps)
    if refusal is not None:
        return refusal
    limit = _limit(request, 100)
    if isinstance(limit, web.Response):
        return limit
    letters = await list_dead_letters(deps.bus.connection, SERVICE_QUEUES, limit=limit)
    return web.json_response({"dead_letters": [asdict(letter) for letter in letters]})


async def replay_dead_letters(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """Send a queue's dead-lettered messages back to it (after the cause was fixed)."""
    refusal = _forbidden(request, deps)
    if refusal is not None:
        return refusal
    queue = request.match_info["queue"]
    if queue not in SERVICE_QUEUES:
        return problem(404, "Unknown queue; one of: " + ", ".join(SERVICE_QUEUES))
    limit = _limit(request, MAX_LIMIT)
    if isinstance(limit, web.Response):
        return limit
    try:
        moved = await replay(deps.bus.connection, queue, limit=limit)
    except ChannelNotFoundEntity:
        # The queue's service has never run on this broker: nothing was dead-lettered.
        moved = 0
    return web.json_response({"queue": queue, "replayed": moved})


def add_admin_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the dead-letter routes under ``/api/v2/admin``."""
    router.add_get(f"{ADMIN}/dead-letters", bind(list_dead_letter_messages), allow_head=False)
    router.add_post(f"{ADMIN}/dead-letters/{{queue}}/replay", bind(replay_dead_letters))
