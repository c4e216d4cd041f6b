"""Usage figures in the api: the v1 fields, the CSV report, and the routes against a fake accounting.

The fake accounting answers with reports built by accounting's own pure functions, so the
v1 mapping is checked on what accounting really sends. The api runs in process, marked
ready without a broker or database (these routes need neither).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jwcrypto import jwk

from caesar_accounting.domain.reports import UsageSummary, global_report, owner_report, usage_report
from caesar_api.adapters.accounting import AccountingClient, AccountingUnavailable
from caesar_api.auth import TokenVerifier
from caesar_api.bootstrap import create_runtime
from caesar_api.domain.usage import report_csv, v1_accounting, v1_appstats
from caesar_api.entrypoints.http import DEPS_KEY, create_app
from caesar_api.openapi import build_openapi
from caesar_api.settings import ApiSettings
from caesar_common.runtime import add_operational_routes
from caesar_common.usage_query import UsageQuery
from tests.auth_support import ClaimsFactory, new_rsa_key, sign
from tests.unit.test_auth_tokens import StaticKeys

ISSUER = "http://127.0.0.1:8180/realms/caesar"
CLAIMS = ClaimsFactory(issuer=ISSUER)
V1 = "/caesar/api/v1.0"
REPORT = "/api/v2/accounting/usage"
STAMP = "2026-05-06T07:08:09.123456+00:00"


def job(job_id: str, owner: str, outcome: str | None, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": job_id,
        "owner": owner,
        "app": "sfind",
        "day": "2026-05-04",
        "outcome": outcome,
    }
    if outcome is not None:
        doc.update(attempt=1, wall_s=10.0, cpu_s=4.0, peak_rss_bytes=100, output_bytes=1000)
    doc.update(kw)
    return doc


JOBS = [
    job("j1", "alice", "SUCCESS", wall_s=30.0),
    job("j2", "alice", "SUCCESS", attempt=2, wall_s=50.0, output_bytes=3000),  # a retried job
    job("j3", "alice", "FAILURE", wall_s=5.0, output_bytes=0),
    job("j4", "alice", "ABORTED", wall_s=None, cpu_s=None, output_bytes=0),
    job("j5", "alice", "CANCELED", wall_s=1.0, output_bytes=0),
    job("j6", "alice", None, position={"attempt": 1, "state": "RUNNING"}),
    job("j7", "alice", None, position={"attempt": 1, "state": "QUEUED"}),
    job("j8", "alice", None),
    job("b1", "bob", "TIMED-OUT", app="aegean", day="2026-05-05", wall_s=600.0, output_bytes=10),
]
FILES = [
    {"_id": "f1", "owner": "alice", "day": "2026-05-04", "size_bytes": 2_000_000, "deleted_at": None},
    {"_id": "f2", "owner": "alice", "day": "2026-05-04", "size_bytes": 5, "deleted_at": "2026-05-05"},
    {"_id": "f3", "owner": "bob", "day": "2026-05-05", "size_bytes": 700, "deleted_at": None},
]


def stamped(report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "timestamp": STAMP}


def test_v1_accounting_keeps_the_old_field_names_and_meanings() -> None:
    report = stamped(owner_report("alice", [j for j in JOBS if j["owner"] == "alice"], FILES[:2]))
    assert v1_accounting(report) == {
        "datasize": 2_000_000,  # bytes of the stored uploads (the deleted one is not)
        "jobsize": 4000,  # bytes of the job outputs
        "totsize": 2_004_000,
        "njobs": 8,
        "njobs_completed": 2,
        "njobs_failed": 1,
        "njobs_aborted": 1,
        "njobs_pending": 2,  # queued, and submitted only
        "njobs_running": 1,
        "njobs_timed_out": 0,
        "njobs_canceled": 1,
        "nfiles": 1,
        "job_runtime": 86.0,  # 30 + 50 + 5 + 0 + 1 seconds
        "job_completed_runtime": 80.0,
        "avg_completed_job_runtime": 40.0,
        "timestamp": "2026-05-06T07:08:09.123456",  # as the api's other v1 dates: UTC, no offset
    }


def test_v1_appstats_adds_users_and_sums_everyone() -> None:
    stats = v1_appstats(stamped(global_report(JOBS, FILES)))
    assert stats["nusers"] == 2
    assert (stats["njobs"], stats["njobs_timed_out"], stats["datasize"], stats["jobsize"]) == (
        9,
        1,
        2_000_700,
        4010,
    )
    assert stats["totsize"] == stats["datasize"] + stats["jobsize"]
    assert stats["job_runtime"] == 686.0
    assert next(iter(stats)) == "nusers"


def test_v1_mapping_survives_an_accounting_without_a_figure() -> None:
    """An older accounting (a rolling upgrade) lacks a figure: 0, never a 500."""
    mapped = v1_accounting({"totals": {"njobs": 3}})
    assert mapped["njobs"] == 3
    assert mapped["njobs_running"] == 0
    assert mapped["timestamp"]


def test_report_csv_has_a_header_and_one_row_per_group_with_the_json_numbers() -> None:
    query = UsageQuery(group_by="app")
    report = stamped(usage_report(JOBS, FILES, query))
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [r["app"] for r in rows] == ["aegean", "sfind"]
    assert list(rows[0]) == ["app", *UsageSummary().as_dict()]
    for row, expected in zip(rows, report["rows"], strict=True):
        assert {k: float(v) for k, v in row.items() if k != "app"} == {
            k: float(v) for k, v in expected.items() if k != "app"
        }
    empty = stamped(usage_report([], [], UsageQuery(group_by="day")))
    assert report_csv(empty).splitlines() == [",".join(["day", *UsageSummary().as_dict()])]


# --- the routes, against a fake accounting -------------------------------------------------


@dataclass
class FakeAccounting:
    """Accounting's three report routes over the fixed documents; records what it was asked."""

    asked: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    status: int = 200

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/usage", self._answer(self._owner))
        app.router.add_get("/usage/all", self._answer(lambda q: global_report(JOBS, FILES)))
        app.router.add_get("/usage/report", self._answer(self._report))
        return app

    def _answer(self, compute: Callable[[dict[str, str]], dict[str, Any]]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            query = dict(request.query)
            self.asked.append((request.path, query))
            await asyncio.sleep(self.delay_s)
            if self.status != 200:
                return web.json_response({"error": "not ready"}, status=self.status)
            return web.json_response(stamped(compute(query)))

        return handler

    @staticmethod
    def _owner(query: dict[str, str]) -> dict[str, Any]:
        owner = query["owner"]
        return owner_report(
            owner, [j for j in JOBS if j["owner"] == owner], [f for f in FILES if f["owner"] == owner]
        )

    @staticmethod
    def _report(query: dict[str, str]) -> dict[str, Any]:
        return usage_report(JOBS, FILES, UsageQuery.parse(query, owner_key="owner"))


@pytest.fixture
async def accounting() -> AsyncIterator[tuple[FakeAccounting, TestServer]]:
    fake = FakeAccounting()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, server
    await server.close()


@pytest.fixture
def realm_key() -> jwk.JWK:
    return new_rsa_key("realm-1")


def token(key: jwk.JWK, sub: str, *roles: str) -> dict[str, str]:
    claims = CLAIMS.make(sub=sub, realm_access={"roles": ["user", *roles]})
    return {"Authorization": f"Bearer {sign(claims, key)}"}


async def start_api(settings: ApiSettings, verifier: TokenVerifier | None = None) -> TestClient[Any, Any]:
    app = create_app(settings, verifier=verifier)
    runtime = create_runtime(settings)
    add_operational_routes(app, runtime)
    runtime.ready = True  # these routes touch neither broker nor database

    async def close_mongo(_: web.Application) -> None:
        await runtime.mongo.close()

    app.on_cleanup.append(close_mongo)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


def settings_for(server: TestServer | None, **overrides: Any) -> ApiSettings:
    url = str(server.make_url("/")) if server is not None else "http://127.0.0.1:1"
    return ApiSettings(
        amqp_url="amqp://guest:guest@127.0.0.1:1/",
        mongo_url="mongodb://127.0.0.1:1/",
        accounting_url=url,
        **overrides,
    )


@pytest.fixture
async def open_api(accounting: tuple[FakeAccounting, TestServer]) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_api(settings_for(accounting[1], accounting_timeout_s=0.5))
    yield client
    await client.close()


@pytest.fixture
async def auth_api(
    accounting: tuple[FakeAccounting, TestServer], realm_key: jwk.JWK
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = settings_for(accounting[1], auth_enabled=True, keycloak_url="http://127.0.0.1:8180")
    verifier = TokenVerifier(
        StaticKeys(realm_key), issuer=ISSUER, audience="caesar-api", required_role="user"
    )
    client = await start_api(settings, verifier)
    yield client
    await client.close()


async def test_v1_accounting_and_appstats_with_auth_off(
    open_api: TestClient[Any, Any], accounting: tuple[FakeAccounting, TestServer]
) -> None:
    fake, _ = accounting
    resp = await open_api.get(f"{V1}/accounting")
    assert resp.status == 200
    assert (await resp.json())["njobs"] == 0  # anonymous has no jobs here
    assert fake.asked[-1] == ("/usage", {"owner": "anonymous"})
    # The anonymous caller of a single-user stack is its operator.
    resp = await open_api.get(f"{V1}/appstats")
    assert resp.status == 200
    assert (await resp.json())["nusers"] == 2


async def test_appstats_is_for_admins_only(
    auth_api: TestClient[Any, Any], accounting: tuple[FakeAccounting, TestServer], realm_key: jwk.JWK
) -> None:
    fake, _ = accounting
    resp = await auth_api.get(f"{V1}/appstats", headers=token(realm_key, "alice"))
    assert resp.status == 403
    assert resp.content_type == "application/json"
    assert "administrators" in (await resp.json())["status"]
    assert not fake.asked  # refused before accounting was asked
    resp = await auth_api.get(f"{V1}/appstats", headers=token(realm_key, "carol", "admin"))
    assert resp.status == 200
    assert (await resp.json())["njobs"] == 9
    resp = await auth_api.get(f"{V1}/accounting", headers=token(realm_key, "alice"))
    assert resp.status == 200
    assert (await resp.json())["njobs_running"] == 1
    assert fake.asked[-1] == ("/usage", {"owner": "alice"})
    assert (await auth_api.get(f"{V1}/accounting")).status == 401


async def test_users_get_their_own_report_and_admins_anyone_s(
    auth_api: TestClient[Any, Any], accounting: tuple[FakeAccounting, TestServer], realm_key: jwk.JWK
) -> None:
    fake, _ = accounting
    alice, carol = token(realm_key, "alice"), token(realm_key, "carol", "admin")

    resp = await auth_api.get(REPORT, params={"group_by": "app"}, headers=alice)
    assert resp.status == 200
    body = await resp.json()
    assert fake.asked[-1] == ("/usage/report", {"group_by": "app", "owner": "alice"})
    assert (body["user"], body["totals"]["njobs"]) == ("alice", 8)
    assert (await auth_api.get(REPORT, params={"user": "alice"}, headers=alice)).status == 200

    resp = await auth_api.get(REPORT, params={"user": "bob"}, headers=alice)
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"

    resp = await auth_api.get(REPORT, params={"from": "2026-05-05", "to": "2026-05-05"}, headers=carol)
    body = await resp.json()
    assert fake.asked[-1] == ("/usage/report", {"group_by": "user", "from": "2026-05-05", "to": "2026-05-05"})
    assert [r["user"] for r in body["rows"]] == ["bob"]
    resp = await auth_api.get(REPORT, params={"user": "bob", "group_by": "day"}, headers=carol)
    assert [r["day"] for r in (await resp.json())["rows"]] == ["2026-05-05"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "from must be a real calendar date YYYY-MM-DD"),
        ({"to": "yesterday"}, "to must be a date YYYY-MM-DD"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "from (2026-05-02) is after to (2026-05-01)"),
        ({"group_by": "week"}, "group_by must be one of user, app, day"),
        ({"format": "xml"}, "format must be one of json, csv"),
        ({"user": "a/b"}, "user is not a valid user id"),
    ],
)
async def test_bad_report_parameters_are_400_problems(
    open_api: TestClient[Any, Any],
    accounting: tuple[FakeAccounting, TestServer],
    params: dict[str, str],
    message: str,
) -> None:
    resp = await open_api.get(REPORT, params=params)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["detail"] == message
    assert not accounting[0].asked


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"format": "csv"}, {}),
        ({}, {"Accept": "text/csv"}),
        ({}, {"Accept": "text/csv;q=0.9, application/json;q=0.5"}),
        ({"format": "csv"}, {"Accept": "application/json"}),  # format wins
    ],
)
async def test_report_as_csv(
    open_api: TestClient[Any, Any], params: dict[str, str], headers: dict[str, str]
) -> None:
    resp = await open_api.get(REPORT, params={"group_by": "user", **params}, headers=headers)
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    as_json = await (await open_api.get(REPORT, params={"group_by": "user"})).json()
    assert [r["user"] for r in rows] == [r["user"] for r in as_json["rows"]] == ["alice", "bob"]
    assert [int(r["njobs"]) for r in rows] == [8, 1]


@pytest.mark.parametrize("failure", ["slow", "not-ready", "down"])
async def test_accounting_unavailable_is_a_quick_503_with_retry_after(
    accounting: tuple[FakeAccounting, TestServer], failure: str
) -> None:
    fake, server = accounting
    fake.delay_s = 5.0 if failure == "slow" else 0.0
    fake.status = 503 if failure == "not-ready" else 200
    client = await start_api(settings_for(None if failure == "down" else server, accounting_timeout_s=0.3))
    try:
        for path, shape in [(f"{V1}/accounting", "status"), (f"{V1}/appstats", "status"), (REPORT, "detail")]:
            started = time.monotonic()
            resp = await client.get(path)
            assert time.monotonic() - started < 2.0, path
            assert resp.status == 503, path
            assert resp.headers["Retry-After"] == "5"
            assert "accounting service did not answer" in (await resp.json())[shape]
    finally:
        await client.close()


async def test_one_session_made_on_first_use_and_closed_with_the_server(
    open_api: TestClient[Any, Any],
) -> None:
    deps = open_api.app[DEPS_KEY]
    assert deps.accounting._session is None  # nothing opened before a report is asked for
    for _ in range(3):
        assert (await open_api.get(f"{V1}/accounting")).status == 200
    session = deps.accounting._session
    assert session is not None
    assert not session.closed
    await open_api.close()
    assert session.closed
    with pytest.raises(AccountingUnavailable):
        await deps.accounting.owner_usage("alice")


async def test_client_refuses_answers_that_are_not_reports() -> None:
    async def not_a_report(request: web.Request) -> web.Response:
        return web.json_response([1, 2, 3])

    app = web.Application()
    app.router.add_get("/usage/all", not_a_report)
    async with TestServer(app) as server:
        client = AccountingClient(str(server.make_url("/")), 1.0)
        with pytest.raises(AccountingUnavailable):
            await client.global_usage()
        with pytest.raises(AccountingUnavailable):
            await client.owner_usage("x")  # 404: no such route
        await client.aclose()


# --- the OpenAPI document ------------------------------------------------------------------


def test_document_describes_the_usage_routes_as_the_server_answers() -> None:
    document = build_openapi(ApiSettings(auth_enabled=True))
    schemas = document["components"]["schemas"]
    # The report's columns are accounting's figures, no more, no less (drift fails here).
    assert list(schemas["UsageFigures"]["properties"]) == list(UsageSummary().as_dict())
    assert set(schemas["UsageV1"]["properties"]) == set(v1_accounting({}))
    assert set(schemas["AppStats"]["properties"]) == set(v1_appstats({}))

    report = document["paths"][REPORT]["get"]
    assert set(report["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert {p["name"] for p in report["parameters"]} == {"from", "to", "group_by", "user", "format"}
    unavailable = report["responses"]["503"]
    # Accounting down (problem+json) or the connection limit (JSON): both with Retry-After.
    assert set(unavailable["content"]) == {"application/problem+json", "application/json"}
    assert "Retry-After" in unavailable["headers"]
    appstats = document["paths"][f"{V1}/appstats"]["get"]["responses"]
    assert {"200", "401", "403", "503"} <= set(appstats)
    assert "accounting service" in appstats["503"]["description"]
