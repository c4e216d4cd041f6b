"""Authentication end to end: five services as processes, auth on, the real Keycloak.

Alice runs a real job; Bob learns nothing about it; Carol (admin) sees it; nobody
without a token gets anything; no token reaches any service's log; the job directory is
private.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.auth_support import claims_of, password_token, start_auth_stack
from tests.e2e.conftest import TERMINAL
from tests.integration.service_support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.keycloak]


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_auth_stack(tmp_path_factory.mktemp("auth-stack"), CAESAR_SLOTS="2")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_of(http: aiohttp.ClientSession, stack: Stack, job_id: str, token: str) -> tuple[int, Any]:
    async with http.get(f"{stack.v1}/job/{job_id}/status", headers=bearer(token)) as resp:
        return resp.status, await resp.json()


async def test_job_isolation_end_to_end(
    http: aiohttp.ClientSession, auth_stack: Stack, tmp_path: Path
) -> None:
    stack = auth_stack
    alice, bob, carol = (password_token(u) for u in ("alice", "bob", "carol"))
    image = tmp_path / "field.fits"
    write_simulation(SimulationSpec(size=128, seed=5), image, tmp_path / "truth.ecsv")

    form = aiohttp.FormData()
    form.add_field("file", image.read_bytes(), filename="field.fits", content_type="application/fits")
    async with http.post(f"{stack.v1}/upload", data=form) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    form = aiohttp.FormData()
    form.add_field("file", image.read_bytes(), filename="field.fits", content_type="application/fits")
    async with http.post(f"{stack.v1}/upload", data=form, headers=bearer(alice)) as resp:
        assert resp.status == 200, await resp.text()
        file_id = (await resp.json())["uuid"]
    payload = {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    async with http.post(f"{stack.v1}/job", json=payload, headers=bearer(alice)) as resp:
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["job_id"]

    body: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal body
        code, body = await status_of(http, stack, job_id, alice)
        assert code == 200
        return body["state"] in TERMINAL

    await eventually(finished, timeout_s=240, what=f"job {job_id} to finish")
    assert body["state"] == "SUCCESS", body

    for path in (
        f"job/{job_id}/status",
        f"job/{job_id}/output",
        f"job/{job_id}/cancel",
        f"download/{file_id}",
    ):
        async with http.get(f"{stack.v1}/{path}", headers=bearer(bob)) as resp:
            assert resp.status == 404, path
        async with http.get(f"{stack.v1}/{path}") as resp:
            assert resp.status == 401, path
    async with http.get(f"{stack.v1}/jobs", headers=bearer(bob)) as resp:
        assert await resp.json() == []

    for token in (alice, carol):
        async with http.get(f"{stack.v1}/job/{job_id}/output", headers=bearer(token)) as resp:
            assert resp.status == 200
            assert len(await resp.read()) > 0

    sub = claims_of(alice)["sub"]
    job_dir = stack.root / "jobs" / sub / job_id
    assert job_dir.is_dir()
    assert job_dir.stat().st_mode & 0o007 == 0, oct(job_dir.stat().st_mode)

    logs = "".join(p.read_text(errors="replace") for p in (stack.root / "logs").glob("*.log"))
    for token in (alice, bob, carol):
        for piece in token.split("."):
            assert piece not in logs


async def test_usage_figures_are_the_callers_own_and_appstats_is_for_admins(
    http: aiohttp.ClientSession, auth_stack: Stack, tmp_path: Path
) -> None:
    """Alice sees her own usage (as many jobs as her list); Bob and Alice get 403 for
    /appstats and for another user's report; Carol (admin) gets everyone's."""
    stack = auth_stack
    alice, bob, carol = (password_token(u) for u in ("alice", "bob", "carol"))
    alice_sub = claims_of(alice)["sub"]
    report = f"{stack.api}/api/v2/accounting/usage"
    image = tmp_path / "mine.fits"
    write_simulation(SimulationSpec(size=64, seed=4, n_sources=1), image)
    form = aiohttp.FormData()
    form.add_field("file", image.read_bytes(), filename="mine.fits", content_type="application/fits")
    async with http.post(f"{stack.v1}/upload", data=form, headers=bearer(alice)) as resp:
        assert resp.status == 200, await resp.text()

    async with http.get(f"{stack.v1}/jobs", headers=bearer(alice)) as resp:
        listed = await resp.json()
    completed = sum(j["state"] == "SUCCESS" for j in listed)
    mine: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal mine
        async with http.get(f"{stack.v1}/accounting", headers=bearer(alice)) as resp:
            assert resp.status == 200
            mine = await resp.json()
        return bool(
            mine["njobs"] == len(listed) and mine["njobs_completed"] == completed and mine["nfiles"] > 0
        )

    await eventually(caught_up, timeout_s=30, what="accounting to show alice's jobs")

    for token in (alice, bob):
        async with http.get(f"{stack.v1}/appstats", headers=bearer(token)) as resp:
            assert resp.status == 403
            assert "administrators" in (await resp.json())["status"]
    async with http.get(f"{stack.v1}/appstats") as resp:
        assert resp.status == 401
    async with http.get(f"{stack.v1}/appstats", headers=bearer(carol)) as resp:
        assert resp.status == 200
        stats = await resp.json()
    assert stats["nusers"] >= 1
    assert stats["njobs"] >= mine["njobs"]

    async with http.get(report, params={"user": alice_sub}, headers=bearer(bob)) as resp:
        assert resp.status == 403
    async with http.get(report, headers=bearer(bob)) as resp:
        assert resp.status == 200
        assert (await resp.json())["totals"]["njobs"] == 0  # Bob's own: nothing
    async with http.get(report, params={"user": alice_sub}, headers=bearer(carol)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [row["user"] for row in body["rows"]] == [alice_sub]
    assert body["totals"]["njobs"] == mine["njobs"]
    async with http.get(report, params={"format": "csv"}, headers=bearer(alice)) as resp:
        assert resp.status == 200
        lines = (await resp.text()).splitlines()
    assert lines[0].startswith("user,njobs,")
    assert lines[1].startswith(f"{alice_sub},{mine['njobs']},")
