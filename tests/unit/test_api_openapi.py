"""The OpenAPI document is valid 3.1, generated per settings, and matches the router."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from caesar_api.bootstrap import create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.entrypoints.routes.docs import ASSETS, PAGE, SWAGGER_UI_DIR
from caesar_api.openapi import build_openapi
from caesar_api.settings import ApiSettings
from caesar_common.ids import FILE_ID_RE, JOB_ID_RE
from caesar_common.runtime import add_operational_routes

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
AUTH_OFF = ApiSettings(auth_enabled=False)
AUTH_ON = ApiSettings(auth_enabled=True)


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


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    paths = document["paths"]
    return {(path, method) for path, item in paths.items() for method in item if method in METHODS}


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in document["paths"].values() for method, op in item.items() if method in METHODS]


@pytest.mark.parametrize("settings", [AUTH_OFF, AUTH_ON], ids=["auth-off", "auth-on"])
def test_document_is_valid_openapi_3_1(settings: ApiSettings) -> None:
    document = build_openapi(settings)
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [AUTH_OFF, AUTH_ON], ids=["auth-off", "auth-on"])
def test_document_and_router_have_the_same_operations(settings: ApiSettings) -> None:
    app = create_app(settings)
    add_operational_routes(app, create_runtime(settings))
    assert router_operations(app) == document_operations(build_openapi(settings))


def test_security_is_declared_only_when_auth_is_on() -> None:
    off = build_openapi(AUTH_OFF)
    assert "securitySchemes" not in off["components"]
    assert all("security" not in op and "401" not in op["responses"] for op in operations(off))
    on = build_openapi(AUTH_ON)
    secured = [op for op in operations(on) if "security" in op]
    assert secured
    assert all("401" in op["responses"] for op in secured)
    assert "security" not in on["paths"]["/healthz"]["get"]


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for op in operations(build_openapi(AUTH_ON))]
    assert len(ids) == len(set(ids))


def test_schemas_come_from_models_and_ids_from_caesar_common() -> None:
    document = build_openapi(AUTH_OFF)
    text = json.dumps(document)
    assert "$defs" not in text  # every reference points into components
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text))
    assert refs <= set(document["components"]["schemas"])
    status = document["components"]["schemas"]["JobStatus"]["properties"]
    assert status["job_id"]["pattern"] == JOB_ID_RE.pattern
    upload = document["components"]["schemas"]["UploadResult"]["properties"]
    assert upload["uuid"]["pattern"] == FILE_ID_RE.pattern


def test_documented_limits_follow_the_settings() -> None:
    settings = ApiSettings(max_page_size=50, allowed_formats=("fits", "png"))
    document = build_openapi(settings)
    limit = document["paths"]["/caesar/api/v1.0/jobs"]["get"]["parameters"][0]
    assert limit["schema"]["maximum"] == 50
    download = document["paths"]["/caesar/api/v1.0/download/{file_id}"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"application/fits", "image/png", "application/octet-stream"}


def test_catalog_documents_every_format_media_type() -> None:
    ok = build_openapi(AUTH_OFF)["paths"]["/api/v2/jobs/{job_id}/catalog"]["get"]["responses"]["200"]
    assert {
        "application/x-votable+xml",
        "application/fits",
        "text/csv",
        "application/json",
        "text/plain",
    } == set(ok["content"])


def test_submit_and_upload_link_to_the_routes_that_use_their_ids() -> None:
    document = build_openapi(AUTH_OFF)
    ids = {op["operationId"] for op in operations(document)}
    submit = document["paths"]["/caesar/api/v1.0/job"]["post"]["responses"]["202"]["links"]
    upload = document["paths"]["/caesar/api/v1.0/upload"]["post"]["responses"]["200"]["links"]
    for link in [*submit.values(), *upload.values()]:
        assert link["operationId"] in ids
    assert {"jobStatus", "cancelJob"} <= {link["operationId"] for link in submit.values()}
    assert {"downloadFile", "deleteFile", "submitJob"} <= {link["operationId"] for link in upload.values()}


def test_openapi_package_has_no_import_cycle() -> None:
    """Each module of the package imports only modules listed before it in this order."""
    order = [
        "models",
        "v2_models",
        "push_models",
        "components",
        "operations",
        "paging",
        "files",
        "apps",
        "jobs",
        "results",
        "usage",
        "operational",
        "v2_paths",
        "events",
        "webhooks",
        "uws",
        "document",
    ]
    package = Path(__file__).parents[2] / "services/api/src/caesar_api/openapi"
    for position, name in enumerate(order):
        text = (package / f"{name}.py").read_text()
        imported = set(re.findall(r"from caesar_api\.openapi\.(\w+) import", text))
        assert imported <= set(order[:position]), (name, imported - set(order[:position]))


def test_docs_page_uses_only_bundled_assets() -> None:
    for name in re.findall(r'"/docs/([^"]+)"', PAGE):
        assert name in ASSETS
    for name in ASSETS:
        assert (SWAGGER_UI_DIR / name).is_file()
    assert '"/openapi.json"' in PAGE
