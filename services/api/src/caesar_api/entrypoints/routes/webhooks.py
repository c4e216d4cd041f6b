"""Webhooks: ``/api/v2/webhooks`` (register, list, get, delete) and a hook's delivery log.

A hook and its log are its owner's alone (another user's is a 404); the secret is in
the answer that created the hook and never again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from caesar_api.dependencies import Dependencies
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.paging import page_params
from caesar_api.entrypoints.routes.v2_support import json_body, list_response, v2_route
from caesar_api.push.domain.hooks import delivery_view, hook_view, parse_hook_request
from caesar_api.push.service import registration


async def create_hook(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /api/v2/webhooks``: 201 with the hook and its secret (shown this once)."""
    hook_request = parse_hook_request(await json_body(request, deps))
    record = await registration.register(
        hook_request,
        owner,
        hooks=deps.push.hooks,
        jobs=deps.jobs,
        urls=deps.push.sender,
        max_per_owner=deps.settings.webhooks_max_per_user,
        now=datetime.now(UTC),
    )
    view = hook_view(record, with_secret=True)
    return web.json_response(view, status=201, headers={"Location": view["links"]["self"]})


async def list_hooks(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/webhooks``: the caller's hooks, newest first (no secrets)."""
    limit, after = page_params(request.query, deps.settings, registration.is_hook_id)
    page = await registration.hooks_page(deps.push.hooks, owner, limit, after)
    return list_response(request, page, limit, hook_view)


async def get_hook(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/webhooks/{hook_id}``."""
    hook = await registration.owned_hook(deps.push.hooks, owner, request.match_info["hook_id"])
    return web.json_response(hook_view(hook))


async def delete_hook(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``DELETE /api/v2/webhooks/{hook_id}``: 204; its pending deliveries are not sent."""
    await registration.remove(deps.push.hooks, deps.push.deliveries, owner, request.match_info["hook_id"])
    return web.Response(status=204)


async def list_deliveries(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/webhooks/{hook_id}/deliveries``: each delivery with its attempts, newest first."""
    limit, after = page_params(request.query, deps.settings, registration.is_hook_id)
    page = await registration.deliveries_page(
        deps.push.hooks, deps.push.deliveries, owner, request.match_info["hook_id"], limit, after
    )
    return list_response(request, page, limit, delivery_view)


def add_webhook_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the webhook routes."""
    router.add_post(f"{V2}/webhooks", bind(v2_route(create_hook)))
    router.add_get(f"{V2}/webhooks", bind(v2_route(list_hooks)), allow_head=False)
    router.add_get(f"{V2}/webhooks/{{hook_id}}", bind(v2_route(get_hook)), allow_head=False)
    router.add_delete(f"{V2}/webhooks/{{hook_id}}", bind(v2_route(delete_hook)))
    router.add_get(f"{V2}/webhooks/{{hook_id}}/deliveries", bind(v2_route(list_deliveries)), allow_head=False)
