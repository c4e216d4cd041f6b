"""The HTTP app before it is connected: docs and health answer, the API says 503 as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from caesar_api.bootstrap import create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.settings import ApiSettings
from caesar_common.runtime import add_operational_routes


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    # Nothing listens on these ports: nothing may try to connect before build().
    settings = ApiSettings(amqp_url="amqp://guest:guest@127.0.0.1:1/", mongo_url="mongodb://127.0.0.1:1/")
    app = create_app(settings)
    runtime = create_runtime(settings)
    add_operational_routes(app, runtime)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    await runtime.mongo.close()


async def test_api_routes_wait_for_readiness(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/caesar/api/v1.0/apps")
    assert resp.status == 503
    assert resp.content_type == "application/json"
    assert "not ready" in (await resp.json())["status"]


async def test_health_and_docs_answer_before_readiness(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/openapi.json")).status == 200
    assert (await client.get("/docs")).status == 200
    resp = await client.get("/no/such/route")
    assert resp.status == 404
    assert await resp.json() == {"status": "Not found"}


def test_auth_on_builds_a_token_verifier() -> None:
    from caesar_api.entrypoints.middlewares import VERIFIER_KEY

    app = create_app(ApiSettings(auth_enabled=True, keycloak_url="http://kc:8180/", keycloak_realm="r"))
    verifier = app[VERIFIER_KEY]
    assert verifier.issuer == "http://kc:8180/realms/r"
    assert verifier.audience == "caesar-api"
    assert VERIFIER_KEY not in create_app(ApiSettings())


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAESAR_ALLOWED_FORMATS", "fits, PNG")
    monkeypatch.setenv("CAESAR_MAX_UPLOAD_BYTES", "1024")
    settings = ApiSettings()
    assert settings.allowed_formats == ("fits", "png")
    assert settings.max_upload_bytes == 1024
    assert ApiSettings.model_fields["max_upload_bytes"].default == 4 * 1024**3
