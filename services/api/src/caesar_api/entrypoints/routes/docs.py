"""``/openapi.json`` and the interactive documentation at ``/docs``.

Swagger UI 5 (which renders OpenAPI 3.1) comes from the static files of the ``swagger-ui-py``
package, so the page works without
internet access (no CDN). Only the few files the page needs are served, by name from a
fixed list; nothing else of the package directory is reachable.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import swagger_ui
from aiohttp import web
from aiohttp.typedefs import Handler

from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.entrypoints.routes import RouteHandler
from caesar_api.openapi import build_openapi
from caesar_common.asyncapi import build_asyncapi

SWAGGER_UI_DIR = Path(swagger_ui.__file__).parent / "static"
"""The Swagger UI distribution the package ships (only its files, not its web handlers)."""

ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-16x16.png": "image/png",
    "favicon-32x32.png": "image/png",
}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>caesar-rest api</title>
  <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <style>html { box-sizing: border-box; } body { margin: 0; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="/docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "/openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        plugins: [SwaggerUIBundle.plugins.DownloadUrl],
        layout: "StandaloneLayout"
      });
    };
  </script>
</body>
</html>
"""


async def openapi_document(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /openapi.json``."""
    return web.json_response(build_openapi(deps.settings))


@functools.cache
def asyncapi_body() -> bytes:
    """The AsyncAPI document, generated once per process: it depends on the code only."""
    return json.dumps(build_asyncapi()).encode()


async def asyncapi_document(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /asyncapi.json``: the events a subscriber can follow (AsyncAPI 3.0)."""
    return web.Response(body=asyncapi_body(), content_type="application/json")


async def docs_page(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /docs``: Swagger UI pointed at ``/openapi.json``."""
    return web.Response(text=PAGE, content_type="text/html")


async def docs_asset(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /docs/<asset>``: one of the bundled Swagger UI files."""
    name = request.match_info["asset"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(404, "Not found")
    return web.FileResponse(
        SWAGGER_UI_DIR / name,
        headers={"Content-Type": content_type, "Cache-Control": "public, max-age=86400"},
    )


def add_docs_routes(router: web.UrlDispatcher, bind_public: Callable[[RouteHandler], Handler]) -> None:
    """Register ``/openapi.json`` and ``/docs`` (public: no token needed to read them)."""
    router.add_get("/openapi.json", bind_public(openapi_document), allow_head=False)
    router.add_get("/asyncapi.json", bind_public(asyncapi_document), allow_head=False)
    router.add_get("/docs", bind_public(docs_page), allow_head=False)
    router.add_get("/docs/{asset}", bind_public(docs_asset), allow_head=False)
