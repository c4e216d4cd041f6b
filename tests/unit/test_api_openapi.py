"""The OpenAPI document is valid and describes exactly the routes the app serves."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from openapi_spec_validator import validate
from swagger_ui_bundle import swagger_ui_path

from caesar_api.bootstrap import create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.handlers.docs import ASSETS, PAGE
from caesar_api.openapi import build_openapi
from caesar_api.settings import ApiSettings
from caesar_common.runtime import add_operational_routes

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        assert path, f"route without a path: {route}"
        # aiohttp may carry a regex in a placeholder ({name:regex}); OpenAPI does not.
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        ops.add((path, route.method.lower()))
    return ops


def document_operations(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {(path, method) for path, item in paths.items() for method in item if method in METHODS}


def test_document_is_valid_openapi() -> None:
    validate(build_openapi(ApiSettings()))  # type: ignore[arg-type]


def test_document_and_router_have_the_same_operations() -> None:
    settings = ApiSettings()
    app = create_app(settings)
    add_operational_routes(app, create_runtime(settings))
    assert router_operations(app) == document_operations(build_openapi(settings))


def test_docs_page_uses_only_bundled_assets() -> None:
    for name in re.findall(r'"/docs/([^"]+)"', PAGE):
        assert name in ASSETS
    for name in ASSETS:
        assert (Path(swagger_ui_path) / name).is_file()
    assert '"/openapi.json"' in PAGE
