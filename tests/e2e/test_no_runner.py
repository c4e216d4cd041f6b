"""Jobs that would wait forever: for a pool with no runner, or for a scheduler that lost them.

A pool with no runner: its jobs say so in their status, then end ABORTED. A submission
the scheduler never received stays PENDING only until the api announces it again.

The stack has an api and a scheduler and no runner at all, as after a deployment that
lost its runners. Nothing here sleeps to order events: each step polls for the state it
expects.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from caesar_scheduler.entrypoints.consumer import SCHEDULER_QUEUE
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import isolated_stack
from tests.e2e.conftest import status, submit, upload, wait_state
from tests.integration.service_support import eventually

pytestmark = pytest.mark.e2e

MAX_WAIT_S = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(
        tmp_path_factory.mktemp("norunner"),
        ["api", "scheduler"],
        prefix_letter="e",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_RUNNER_TIMEOUT_S="2",
        CAESAR_POOL_STATUS_INTERVAL_S="0.5",
        CAESAR_MAX_WAIT_WITHOUT_RUNNER_S=str(MAX_WAIT_S),
        CAESAR_REANNOUNCE_PENDING_AFTER_S="2",
    ) as stack:
        yield stack


async def test_a_job_for_a_pool_without_runner_says_why_then_is_aborted(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=1, n_sources=2), image)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        file_id = await upload(http, stack, image)
        submitted_at = time.monotonic()
        job_id = await submit(
            http, stack, {"app": "trivial", "job_inputs": {"seconds": 0}, "data_inputs": file_id}
        )
        seen: dict[str, Any] = {}

        async def says_no_runner() -> bool:
            seen.update(await status(http, stack, job_id))
            return seen["state"] == "QUEUED" and "waiting_reason" in seen

        await eventually(says_no_runner, MAX_WAIT_S, what="a QUEUED status naming the missing runner")
        assert "no live runner in pool 'local'" in seen["waiting_reason"]
        assert seen["waiting_reason"] in seen["status"]
        assert seen["status"].startswith("Job is queued")

        final = await wait_state(http, stack, job_id, {"ABORTED"}, timeout_s=60)
        assert time.monotonic() - submitted_at >= MAX_WAIT_S
        assert f"waited more than {MAX_WAIT_S} s" in final["status"]
        assert "waiting_reason" not in final


async def test_a_submission_the_scheduler_never_got_is_announced_again(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=2, n_sources=2), image)
    stack.kill("scheduler", signal.SIGTERM)
    stack.procs["scheduler"].wait(timeout=60)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        file_id = await upload(http, stack, image)
        job_id = await submit(
            http, stack, {"app": "trivial", "job_inputs": {"seconds": 0}, "data_inputs": file_id}
        )
        # The submission is lost on its way (as if dead-lettered): nothing will admit it.
        connection = await aio_pika.connect(stack.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(SCHEDULER_QUEUE.name, passive=True)

            async def announced() -> bool:
                return ((await queue.declare()).message_count or 0) >= 1

            await eventually(announced, 10, what="the JobSubmitted in the scheduler's queue")
            await queue.purge()
        finally:
            await connection.close()
        assert (await status(http, stack, job_id))["state"] == "PENDING"
        stack.start("scheduler")
        stack.wait_ready("scheduler")
        final = await wait_state(http, stack, job_id, {"QUEUED", "ABORTED"}, timeout_s=60)
        assert final["state"] in {"QUEUED", "ABORTED"}
