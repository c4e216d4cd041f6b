"""Authentication and per-user isolation of the api, against the real local Keycloak.

The api runs in-process with auth on and a verifier that trusts the realm's keys
(fetched from Keycloak, as in production) plus one test key: tokens signed with the
test key reach the claim checks (expiry, audience, issuer), so those checks are what
refuses them, not a bad signature.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from jwcrypto import jwk

from caesar_api.auth import KeycloakKeys, TokenVerifier
from caesar_api.auth.public import is_public
from caesar_api.bootstrap import build, create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.settings import ApiSettings
from caesar_common.runtime import add_operational_routes
from tests.auth_support import (
    AUDIENCE,
    ISSUER,
    KEYCLOAK_URL,
    REALM,
    ClaimsFactory,
    bad_tokens,
    claims_of,
    keycloak_up,
    new_rsa_key,
    password_token,
    realm_jwks,
    sign,
)
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]

TEST_KID = "caesar-test-trusted"
UNKNOWN_FILE = "0" * 32
UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module", autouse=True)
def _keycloak() -> None:
    if not keycloak_up():
        if os.environ.get("CAESAR_TEST_REQUIRE_KEYCLOAK"):
            pytest.fail(f"Keycloak is not answering at {KEYCLOAK_URL} (scripts/keycloak.sh start)")
        pytest.skip(f"Keycloak is not running at {KEYCLOAK_URL}: scripts/keycloak.sh start")


class RealmPlusTestKey:
    """The realm's keys from Keycloak, plus one key of this test module."""

    def __init__(self, trusted: jwk.JWK) -> None:
        self._realm = KeycloakKeys(KEYCLOAK_URL, REALM, AUDIENCE)
        self._trusted = json.loads(trusted.export_public())

    async def fetch(self) -> dict[str, Any]:
        jwks = await self._realm.fetch()
        return {"keys": [*jwks["keys"], self._trusted]}


@pytest.fixture(scope="module")
def trusted() -> jwk.JWK:
    return new_rsa_key(TEST_KID)


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return {user: password_token(user) for user in ("alice", "bob", "carol")}


def auth_settings(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> ApiSettings:
    return api_settings(
        tmp_path,
        amqp_url,
        mongo_url,
        db_prefix,
        auth_enabled=True,
        keycloak_url=KEYCLOAK_URL,
        keycloak_realm=REALM,
        keycloak_audience=AUDIENCE,
        max_upload_bytes=4 * 1024 * 1024,
    )


@asynccontextmanager
async def running_auth_api(settings: ApiSettings, trusted: jwk.JWK) -> AsyncIterator[RunningApi]:
    verifier = TokenVerifier(
        RealmPlusTestKey(trusted),
        issuer=settings.expected_issuer,
        audience=settings.keycloak_audience,
        required_role=settings.user_role,
    )
    runtime = create_runtime(settings)
    app = create_app(settings, verifier=verifier)
    add_operational_routes(app, runtime)
    await runtime.connect()
    await build(runtime)
    runtime.ready = True
    # access_log=None as in production (caesar_common.runtime): aiohttp's access log
    # prints the request line, query string included.
    server = TestServer(app)
    await server.start_server(access_log=None)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        yield RunningApi(client, runtime, settings)
    finally:
        await client.close()
        await runtime.shutdown(grace_s=5)


@pytest.fixture
async def api(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str, trusted: jwk.JWK
) -> AsyncIterator[RunningApi]:
    async with running_auth_api(auth_settings(tmp_path, amqp_url, mongo_url, db_prefix), trusted) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(api: RunningApi, token: str) -> str:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(), filename="map.fits", content_type="application/fits")
    resp = await api.client.post(f"{V1}/upload", data=data, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["uuid"])


async def submit(api: RunningApi, token: str, file_id: str) -> str:
    body = {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    resp = await api.client.post(f"{V1}/job", json=body, headers=bearer(token))
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["job_id"])


async def stable(docs: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Documents without their outbox bookkeeping (the relay clears it on its own time)."""
    return [{k: v for k, v in d.items() if not k.startswith("outbox")} for d in await docs]


def protected_routes(api: RunningApi) -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the app that needs a token."""
    routes = []
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in {"HEAD", "*"}:
            continue
        concrete = (
            path.replace("{file_id}", UNKNOWN_FILE)
            .replace("{job_id}", UNKNOWN_JOB)
            .replace("{name}", "aegean")
            .replace("{asset}", "swagger-ui.css")
        )
        if not is_public(concrete):
            routes.append((route.method, concrete))
    return sorted(set(routes))


async def test_every_protected_route_refuses_bad_tokens(
    api: RunningApi, trusted: jwk.JWK, tokens: dict[str, str]
) -> None:
    realm_key = next(k for k in realm_jwks()["keys"] if k.get("use") == "sig")
    good = ClaimsFactory(issuer=ISSUER, audience=AUDIENCE).make()
    cases: dict[str, dict[str, str]] = {"no-token": {}}
    cases.update({name: bearer(tok) for name, tok in bad_tokens(trusted, realm_key, good).items()})
    cases["basic-auth"] = {"Authorization": "Basic YWxpY2U6YWxpY2U="}
    cases["empty-bearer"] = {"Authorization": "Bearer "}
    routes = protected_routes(api)
    assert len(routes) >= 12, routes
    for method, path in routes:
        for name, headers in cases.items():
            resp = await api.client.request(method, path, headers=headers)
            assert resp.status == 401, (method, path, name, resp.status, await resp.text())
            assert resp.headers["WWW-Authenticate"].startswith("Bearer"), (method, path, name)
            body = await resp.json()
            assert set(body) == {"status"}
    # Control: the same forgery recipe with good claims passes, so the claims were the reason.
    resp = await api.client.get(f"{V1}/fileids", headers=bearer(sign(good, trusted)))
    assert resp.status == 200
    resp = await api.client.get(f"{V1}/fileids", headers=bearer(tokens["alice"]))
    assert resp.status == 200


async def test_public_routes_are_open(api: RunningApi) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs", f"{V1}/apps"):
        resp = await api.client.get(path)
        assert resp.status == 200, path
    resp = await api.client.get(f"{V1}/app/aegean/describe")
    assert resp.status == 200


async def test_token_in_query_string_is_refused(api: RunningApi, tokens: dict[str, str]) -> None:
    resp = await api.client.get(f"{V1}/fileids", params={"access_token": tokens["alice"]})
    assert resp.status == 401
    # Even alongside a good header: the URL has already leaked the token.
    resp = await api.client.get(
        f"{V1}/fileids", params={"access_token": tokens["alice"]}, headers=bearer(tokens["alice"])
    )
    assert resp.status == 401
    assert "query string" in (await resp.json())["status"]


async def test_owner_is_the_token_subject(api: RunningApi, tokens: dict[str, str]) -> None:
    file_id = await upload(api, tokens["alice"])
    job_id = await submit(api, tokens["alice"], file_id)
    sub = claims_of(tokens["alice"])["sub"]
    [record] = await api.files_docs()
    [job] = await api.jobs_docs()
    assert record["owner"] == sub
    assert job["owner"] == sub
    assert job["_id"] == job_id
    assert (api.settings.data_root / sub / f"{file_id}.fits").is_file()


async def test_users_cannot_reach_each_others_files_and_jobs(api: RunningApi, tokens: dict[str, str]) -> None:
    alice, bob = tokens["alice"], tokens["bob"]
    file_id = await upload(api, alice)
    job_id = await submit(api, alice, file_id)
    before_files = await stable(api.files_docs())
    before_jobs = await stable(api.jobs_docs())

    attempts = [
        ("GET", f"{V1}/download/{{f}}"),
        ("POST", f"{V1}/download/{{f}}"),
        ("GET", f"{V1}/delete/{{f}}"),
        ("POST", f"{V1}/delete/{{f}}"),
        ("GET", f"{V1}/job/{{j}}/status"),
        ("GET", f"{V1}/job/{{j}}/output"),
        ("GET", f"{V1}/job/{{j}}/cancel"),
        ("POST", f"{V1}/job/{{j}}/cancel"),
    ]
    # Every other route reading one job or file (catalogues, previews, v2, UWS) too,
    # whoever added it.
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter", "")
        if route.method == "GET" and "{name}" not in path and ("{job_id}" in path or "{file_id}" in path):
            template = path.replace("{job_id}", "{j}").replace("{file_id}", "{f}").replace("{app}", "aegean")
            attempts.append(("GET", template))
    for method, template in sorted(set(attempts)):
        theirs = await api.client.request(method, template.format(f=file_id, j=job_id), headers=bearer(bob))
        unknown = await api.client.request(
            method, template.format(f=UNKNOWN_FILE, j=UNKNOWN_JOB), headers=bearer(bob)
        )
        assert theirs.status == unknown.status == 404, (method, template)
        # Same answer as for an id that does not exist (only the echoed id differs).
        mine = (await theirs.text()).replace(file_id, "X").replace(job_id, "X")
        none = (await unknown.text()).replace(UNKNOWN_FILE, "X").replace(UNKNOWN_JOB, "X")
        assert mine == none

    # Bob cannot submit a job on Alice's file, and sees none of her things in lists.
    body = {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    resp = await api.client.post(f"{V1}/job", json=body, headers=bearer(bob))
    assert resp.status == 400
    resp = await api.client.get(f"{V1}/fileids", headers=bearer(bob))
    assert (await resp.json())["file_ids"] == []
    resp = await api.client.get(f"{V1}/jobs", headers=bearer(bob))
    assert await resp.json() == []

    # Nothing of Alice's changed, and she still has everything.
    assert await stable(api.files_docs()) == before_files
    assert await stable(api.jobs_docs()) == before_jobs
    resp = await api.client.get(f"{V1}/download/{file_id}", headers=bearer(alice))
    assert resp.status == 200
    assert await resp.read() == radio_fits()


async def test_admin_sees_everything(api: RunningApi, tokens: dict[str, str]) -> None:
    alice, carol = tokens["alice"], tokens["carol"]
    file_id = await upload(api, alice)
    job_id = await submit(api, alice, file_id)
    resp = await api.client.get(f"{V1}/download/{file_id}", headers=bearer(carol))
    assert resp.status == 200
    assert await resp.read() == radio_fits()
    resp = await api.client.get(f"{V1}/job/{job_id}/status", headers=bearer(carol))
    assert resp.status == 200
    resp = await api.client.get(f"{V1}/job/{job_id}/output", headers=bearer(carol))
    assert resp.status == 202  # not finished: no scheduler in this test
    resp = await api.client.post(f"{V1}/job/{job_id}/cancel", headers=bearer(carol))
    assert resp.status == 200
    [job] = await api.jobs_docs()
    assert job["cancel_requested_at"] is not None
    resp = await api.client.get(f"{V1}/delete/{file_id}", headers=bearer(carol))
    assert resp.status == 200
    sub = claims_of(alice)["sub"]
    assert not (api.settings.data_root / sub / f"{file_id}.fits").exists()


async def test_v1_access_token_form_field(api: RunningApi, tokens: dict[str, str]) -> None:
    alice = tokens["alice"]
    data = aiohttp.FormData()
    data.add_field("access_token", alice)
    data.add_field("file", radio_fits(), filename="map.fits", content_type="application/fits")
    resp = await api.client.post(f"{V1}/upload", data=data)
    assert resp.status == 200, await resp.text()
    file_id = (await resp.json())["uuid"]
    [record] = await api.files_docs()
    assert record["owner"] == claims_of(alice)["sub"]

    resp = await api.client.post(f"{V1}/download/{file_id}", data={"access_token": alice})
    assert resp.status == 200
    resp = await api.client.post(f"{V1}/download/{file_id}", data={"access_token": tokens["bob"]})
    assert resp.status == 404


async def test_upload_token_after_the_file_stores_nothing(api: RunningApi, tokens: dict[str, str]) -> None:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(), filename="map.fits", content_type="application/fits")
    data.add_field("access_token", tokens["alice"])
    resp = await api.client.post(f"{V1}/upload", data=data)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    bad = aiohttp.FormData()
    bad.add_field("access_token", "forged.token.here")
    bad.add_field("file", radio_fits(), filename="map.fits", content_type="application/fits")
    resp = await api.client.post(f"{V1}/upload", data=bad)
    assert resp.status == 401
    assert await api.files_docs() == []
    assert api.stored_paths() == []


async def test_tokens_never_reach_the_logs(
    api: RunningApi,
    tokens: dict[str, str],
    trusted: jwk.JWK,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = tokens["alice"]
    expired = sign(ClaimsFactory(issuer=ISSUER).make(exp=1), trusted)
    file_id = await upload(api, alice)
    await api.client.get(f"{V1}/download/{file_id}", headers=bearer(alice))
    await api.client.get(f"{V1}/fileids", headers=bearer(expired))
    await api.client.get(f"{V1}/fileids", params={"access_token": alice})
    await api.client.post(f"{V1}/download/{file_id}", data={"access_token": alice})
    await api.client.get(f"{V1}/job/{UNKNOWN_JOB}/status", headers=bearer(alice))
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "request not authenticated" in logged  # the refusals were logged...
    for token in (alice, expired):
        for piece in token.split("."):  # ...without any part of a token
            if len(piece) > 16:
                assert piece not in logged


async def test_dead_letter_routes_need_the_admin_role(api: RunningApi, tokens: dict[str, str]) -> None:
    path = "/api/v2/admin/dead-letters"
    refused = await api.client.get(path, headers=bearer(tokens["alice"]))
    assert refused.status == 403
    assert (await refused.json())["status"] == 403
    replay = await api.client.post(f"{path}/scheduler.events/replay", headers=bearer(tokens["bob"]))
    assert replay.status == 403
    allowed = await api.client.get(path, headers=bearer(tokens["carol"]))
    assert allowed.status == 200
    assert (await allowed.json()) == {"dead_letters": []}
