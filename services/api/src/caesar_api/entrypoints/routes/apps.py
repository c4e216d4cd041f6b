"""Routes of the app registry: the list of apps and each app's options."""

from __future__ import annotations

from aiohttp import web

from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError, shown
from caesar_api.entrypoints.routes import V1, Binder
from caesar_common.apps import app_names, get_app


async def list_apps(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /apps``: every app the service knows, runnable here or not (as in v1)."""
    return web.json_response({"apps": app_names()})


async def describe_app(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /app/<name>/describe``: the v1 option table of one app."""
    name = request.match_info["name"]
    app = get_app(name)
    if app is None:
        raise ApiError(400, f"Unknown app {shown(name)}!")
    return web.json_response(app.describe_v1())


def add_app_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v1 app catalogue (public: nothing in it belongs to a user)."""
    router.add_get(f"{V1}/apps", bind(list_apps), allow_head=False)
    router.add_get(f"{V1}/app/{{name}}/describe", bind(describe_app), allow_head=False)
