"""Quotas end to end: a user at their running-jobs limit gets new jobs HELD (with the
reason in the v1 status and the v2 job), a held job can be cancelled, and the held jobs
are released (and run) once usage falls below the limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import make_stack, status, submit, upload, wait_state

pytestmark = pytest.mark.e2e

OWNER = "anonymous"  # auth off


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("quota")
    policy = root / "quotas.json"
    policy.write_text(json.dumps({"default": {"running_jobs": 1}}))
    yield from make_stack(
        root / "stack",
        CAESAR_QUOTAS_FILE=str(policy),
        CAESAR_SLOTS="3",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
    )


async def verdict_reached(stack: Stack, over: bool, timeout_s: float = 60.0) -> None:
    """Wait until the scheduler holds accounting's verdict on the user (its own record)."""
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url)
    try:
        quotas = client[f"{stack.db_prefix}_scheduler"]["quotas"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            doc = await asyncio.to_thread(quotas.find_one, {"_id": OWNER})
            if doc is not None and doc.get("over") is over:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the scheduler never recorded over={over} for {OWNER}")
    finally:
        client.close()


async def v2_job(http: aiohttp.ClientSession, stack: Stack, job_id: str) -> dict[str, Any]:
    async with http.get(f"{stack.api}/api/v2/jobs/{job_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def test_over_quota_holds_new_jobs_until_usage_falls(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    file_id = await upload(http, stack, image)

    def trivial(seconds: float) -> dict[str, Any]:
        return {"app": "trivial", "job_inputs": {"seconds": seconds}, "data_inputs": file_id}

    long_job = await submit(http, stack, trivial(600))
    await wait_state(http, stack, long_job, {"RUNNING"}, timeout_s=60)
    await verdict_reached(stack, over=True)  # running_jobs 1 of 1

    held = await submit(http, stack, trivial(0.5))
    body = await wait_state(http, stack, held, {"HELD"}, timeout_s=30)
    assert "over quota: running_jobs 1 of 1" in body["status"]
    assert body["hold_reason"] == "over quota: running_jobs 1 of 1"
    job = await v2_job(http, stack, held)
    assert (job["state"], job["hold_reason"]) == ("HELD", "over quota: running_jobs 1 of 1")

    cancelled = await submit(http, stack, trivial(0.5))
    await wait_state(http, stack, cancelled, {"HELD"}, timeout_s=30)
    async with http.get(f"{stack.v1}/job/{cancelled}/cancel") as resp:
        assert resp.status == 200
    assert (await wait_state(http, stack, cancelled, timeout_s=30))["state"] == "CANCELED"

    # Still held while the limit is reached.
    assert (await status(http, stack, held))["state"] == "HELD"
    async with http.get(f"{stack.v1}/job/{long_job}/cancel") as resp:
        assert resp.status == 200
    assert (await wait_state(http, stack, long_job, timeout_s=60))["state"] == "CANCELED"

    # Usage fell to 0 of 1: the held job is released, queued and runs.
    final = await wait_state(http, stack, held, timeout_s=120)
    assert final["state"] == "SUCCESS", final
    assert "hold_reason" not in final
    assert (await v2_job(http, stack, held))["hold_reason"] is None
