"""The web page: ``/`` (the page), ``/web/config.json`` and ``/web/<file>`` (its files).

Public routes (no token): the page and its scripts hold no user data; everything a user
owns comes through the authenticated API, called by the page with the user's token. The
page is sent with a strict Content-Security-Policy (no inline script, no third-party
origin) and headers that keep it out of frames and stop content sniffing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.entrypoints.routes import RouteHandler
from caesar_api.web import STATIC_DIR, content_security_policy, web_assets, web_config
from caesar_api.web.page import INDEX

CONFIG_PATH = "/web/config.json"

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def web_page(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /``: the page (revalidated on every load, so a new release shows at once)."""
    headers = {
        **_COMMON_HEADERS,
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": content_security_policy(deps.settings),
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }
    return web.FileResponse(STATIC_DIR / INDEX, headers=headers)


async def web_configuration(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /web/config.json``: whether auth is on, and Keycloak's issuer and client."""
    return web.json_response(
        web_config(deps.settings), headers={**_COMMON_HEADERS, "Cache-Control": "no-cache"}
    )


async def web_asset(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /web/<file>``: one of the page's files, by name from a fixed table."""
    asset = web_assets().get(request.match_info["asset"])
    if asset is None:
        raise ApiError(404, "Not found")
    headers = {**_COMMON_HEADERS, "Content-Type": asset.media_type, "Cache-Control": "no-cache"}
    return web.FileResponse(asset.path, headers=headers)


def add_web_routes(router: web.UrlDispatcher, bind_public: Callable[[RouteHandler], Handler]) -> None:
    """Register ``/``, ``/web/config.json`` and ``/web/{asset}`` (public)."""
    router.add_get("/", bind_public(web_page), allow_head=False)
    router.add_get(CONFIG_PATH, bind_public(web_configuration), allow_head=False)
    router.add_get("/web/{asset}", bind_public(web_asset), allow_head=False)
