"""A slow attempt presumed lost finishes before its retry starts: the retry is withdrawn.

The monitor stops hearing the runner (its heartbeat queue is unbound on the real broker,
while the runner's publishes are still confirmed, so the runner does not fence itself)
and fails the running attempt as lost. The scheduler opens attempt 2, held back by a long
backoff. Attempt 1 then finishes: the runners' fence lets its success through, the
scheduler closes attempt 2 with it, and the job ends SUCCESS once, with attempt 1's files,
counted once by accounting. Every step waits on a condition, none on a fixed sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from pymongo import MongoClient

from caesar_common.events import EVENTS_EXCHANGE
from caesar_monitor.entrypoints.consumer import HEARTBEAT_QUEUE
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import isolated_stack
from tests.e2e.conftest import submit, timeline, upload, wait_state
from tests.integration.service_support import eventually

pytestmark = pytest.mark.e2e

JOB_SECONDS = 15


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(
        tmp_path_factory.mktemp("withdrawn"),
        prefix_letter="e",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_HEARTBEAT_INTERVAL_S="0.5",
        CAESAR_RUNNER_TIMEOUT_S="3",
        CAESAR_SELF_FENCE_S="2",
        CAESAR_WATCHDOG_INTERVAL_S="0.5",
        CAESAR_RETRY_BACKOFF_S="600",  # attempt 2 waits: attempt 1 finishes first
    ) as stack:
        yield stack


def database(stack: Stack, service: str) -> Any:
    return MongoClient(stack.mongo_url)[f"{stack.db_prefix}_{service}"]


async def test_a_true_outcome_before_the_retry_starts_closes_the_job(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=5, n_sources=2), image)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        file_id = await upload(http, stack, image)
        job_id = await submit(
            http, stack, {"app": "trivial", "job_inputs": {"seconds": JOB_SECONDS}, "data_inputs": file_id}
        )
        await wait_state(http, stack, job_id, {"RUNNING"}, timeout_s=60)

        connection = await aio_pika.connect(stack.amqp_url)
        try:
            channel = await connection.channel()
            beats = await channel.get_queue(HEARTBEAT_QUEUE.name, ensure=True)
            for key in HEARTBEAT_QUEUE.bindings:
                await beats.unbind(EVENTS_EXCHANGE, key)

            scheduler_jobs = database(stack, "scheduler")["jobs"]

            def retry_opened() -> bool:
                doc = scheduler_jobs.find_one({"_id": job_id}) or {}
                return bool((doc.get("attempt"), doc.get("state")) == (2, "QUEUED"))

            await eventually(retry_opened, 30, "attempt 2 opened after the monitor's verdict")
            await wait_state(http, stack, job_id, {"QUEUED"}, timeout_s=30)  # the api shows the retry
            for key in HEARTBEAT_QUEUE.bindings:
                await beats.bind(EVENTS_EXCHANGE, key)
        finally:
            await connection.close()

        final = await wait_state(http, stack, job_id, timeout_s=60)
        assert final["state"] == "SUCCESS", final
        async with http.get(f"{stack.v1}/job/{job_id}/output") as resp:
            assert resp.status == 200  # attempt 1's files, served for the job
            assert len(await resp.read()) > 0

        claims = {d["_id"]: d["state"] for d in database(stack, "runner")["claims"].find({"job_id": job_id})}
        assert claims == {f"{job_id}:1": "SUCCESS"}  # attempt 2 never started anywhere
        fence = database(stack, "runner")["fences"].find_one({"_id": job_id})
        assert (fence["holder"], fence["closed"]) == (1, True)

        steps = [(e["attempt"], e["state"]) for e in await timeline(http, stack, job_id)]
        assert (1, "FAILURE") in steps  # the monitor's verdict
        assert steps[-1] == (2, "SUCCESS")

        async def counted_once() -> bool:
            url = f"http://127.0.0.1:{stack.ports['accounting']}/usage?owner=anonymous"
            async with http.get(url) as resp:
                totals = (await resp.json())["totals"]
            return bool(totals["njobs_completed"] == 1 and totals["njobs_active"] == 0)

        await eventually(counted_once, 30, "accounting counts the job once, completed")
        usage = database(stack, "accounting")["job_usage"].find_one({"_id": job_id})
        assert (usage["outcome"], usage["attempt"]) == ("SUCCESS", 1)
        assert sorted(usage["attempts"]) == ["1"]
