"""A ``RunJob`` dead-lettered on its way to the runners: the job is sent again, never stranded.

The scheduler learns capacity from heartbeats only, so a heartbeat published by the test
(a runner that is not there) makes it dispatch; the command is then rejected on the
runner queue (as after a poison redelivery loop) and lands in ``runner.local.dlq``. When a
real runner comes up, the start reconciliation re-sends the attempt's command and the
job runs. Every step waits on a condition, none on a fixed sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from caesar_common.bus import runner_pool_queue
from caesar_common.events import EVENTS_EXCHANGE, Envelope, RunJob, RunnerHeartbeat, decode
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.conftest import isolated_stack
from tests.e2e.conftest import status, submit, upload, wait_state
from tests.integration.service_support import eventually

pytestmark = pytest.mark.e2e

QUEUE = runner_pool_queue("local")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(
        tmp_path_factory.mktemp("deadletter"),
        ["api", "scheduler"],
        prefix_letter="e",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_START_TIMEOUT_S="2",
        CAESAR_MAX_START_RESENDS="20",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
    ) as stack:
        yield stack


async def test_a_dead_lettered_run_job_is_sent_again(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=3, n_sources=2), image)
    connection = await aio_pika.connect(stack.amqp_url)
    beating = True
    try:
        channel = await connection.channel()
        events = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)

        async def ghost_runner() -> None:
            """Heartbeats of a runner with one free slot that will never take the command."""
            while beating:
                beat = RunnerHeartbeat(
                    runner_id="ghost", pool="local", slots_total=1, slots_free=1, sent_at=datetime.now(UTC)
                )
                envelope = Envelope.wrap(beat, "test")
                await events.publish(aio_pika.Message(envelope.to_bytes()), routing_key=envelope.routing_key)
                await asyncio.sleep(0.5)

        ghost = asyncio.ensure_future(ghost_runner())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            file_id = await upload(http, stack, image)
            job_id = await submit(
                http, stack, {"app": "trivial", "job_inputs": {"seconds": 0}, "data_inputs": file_id}
            )
            queue = await channel.declare_queue(QUEUE, passive=True)
            rejected: list[str] = []

            async def command_rejected() -> bool:
                message = await queue.get(fail=False)
                if message is not None:
                    command = decode(Envelope.from_bytes(message.body))
                    assert isinstance(command, RunJob)
                    rejected.append(command.job_id)
                    await message.reject(requeue=False)  # to runner.local.dlq
                return job_id in rejected

            await eventually(command_rejected, 30, what="the RunJob dispatched and dead-lettered")

            async def dead_lettered() -> bool:
                # Dead-lettering from a quorum queue is asynchronous: wait until it is counted.
                dlq = await channel.declare_queue(f"{QUEUE}.dlq", passive=True)
                return (dlq.declaration_result.message_count or 0) >= 1

            await eventually(dead_lettered, 30, what="the RunJob in runner.local.dlq")
            beating = False
            await ghost
            assert (await status(http, stack, job_id))["state"] == "QUEUED"

            stack.start("runner", CAESAR_SLOTS="1")
            stack.wait_ready("runner")
            final = await wait_state(http, stack, job_id, timeout_s=60)
            assert final["state"] == "SUCCESS", final
    finally:
        beating = False
        await connection.close()
