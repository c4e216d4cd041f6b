"""Dead-letter tooling on the real broker: a poison message is listed, then replayed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aio_pika
from prometheus_client import REGISTRY

from caesar_common.bus import Bus, QueueSpec, Rejected
from caesar_common.deadletters import depths, list_dead_letters, replay
from caesar_common.events import Envelope, RunnerHeartbeat
from caesar_monitor.bootstrap import refresh_dead_letters
from tests.integration.api_support import api_settings, running_api
from tests.integration.service_support import eventually


async def test_poison_message_is_listed_and_replayed(amqp_url: str) -> None:
    spec = QueueSpec("scheduler.events", bindings=("runner.heartbeat",), delivery_limit=1)
    failing = Bus(amqp_url, "scheduler", handler_retries=0)
    await failing.connect()
    calls: list[str] = []
    healed = asyncio.Event()

    async def broken(envelope: Envelope) -> None:
        calls.append(envelope.id)
        if not healed.is_set():
            raise RuntimeError("database schema mismatch")

    await failing.consume(spec, broken, prefetch=1)
    beat = Envelope.wrap(
        RunnerHeartbeat(runner_id="r", pool="local", slots_total=1, slots_free=1, sent_at=datetime.now(UTC)),
        "runner",
    )
    await failing.publish(beat)

    connection = await aio_pika.connect(amqp_url)
    try:

        async def dead_lettered() -> bool:
            return bool((await depths(connection, ["scheduler.events"])).get("scheduler.events"))

        await eventually(dead_lettered, what="the heartbeat dead-lettered")
        letters = await list_dead_letters(connection, ["scheduler.events"])
        assert [(d.origin_queue, d.message_id) for d in letters] == [("scheduler.events", beat.id)]
        assert letters[0].reason == "delivery_limit"
        assert await depths(connection, ["scheduler.events"]) == {"scheduler.events": 1}  # still there
        # The monitor exports the depth for operators.
        await refresh_dead_letters(SimpleNamespace(bus=failing))  # type: ignore[arg-type]
        assert REGISTRY.get_sample_value("caesar_dead_letter_messages", {"queue": "scheduler.events"}) == 1

        healed.set()
        calls.clear()
        assert await replay(connection, "scheduler.events") == 1
        await eventually(lambda: bool(calls), what="the replayed message handled")
        assert calls == [beat.id]
        assert await depths(connection, ["scheduler.events"]) == {"scheduler.events": 0}
    finally:
        await connection.close()
        await failing.close()


async def test_a_refused_message_is_dead_lettered_at_once_with_its_reason(amqp_url: str) -> None:
    """A handler raising ``Rejected`` (a forged command): no retry, no redelivery; the copy
    in the dead-letter queue says why, and can still be replayed to its queue."""
    spec = QueueSpec("runner.local")
    bus = Bus(amqp_url, "runner")
    await bus.connect()
    calls: list[str] = []

    async def refusing(envelope: Envelope) -> None:
        calls.append(envelope.id)
        raise Rejected("invalid RunJob: '../x' is not a job id")

    await bus.consume(spec, refusing, prefetch=1)
    beat = Envelope.wrap(
        RunnerHeartbeat(runner_id="r", pool="local", slots_total=1, slots_free=1, sent_at=datetime.now(UTC)),
        "scheduler",
    )
    await bus.publish(beat, to_queue="runner.local")
    connection = await aio_pika.connect(amqp_url)
    try:

        async def dead_lettered() -> bool:
            return bool((await depths(connection, ["runner.local"])).get("runner.local"))

        await eventually(dead_lettered, what="the refused message dead-lettered")
        assert calls == [beat.id]  # handled once: refused, not retried
        [letter] = await list_dead_letters(connection, ["runner.local"])
        assert (letter.origin_queue, letter.message_id) == ("runner.local", beat.id)
        assert letter.reason == "refused: invalid RunJob: '../x' is not a job id"
    finally:
        await connection.close()
        await bus.close()


def test_cli_lists_dead_letters(amqp_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "caesar_common.deadletters", "--amqp-url", amqp_url, "list"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip().endswith("0 dead-lettered message(s)")


async def test_admin_routes_list_and_replay(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str
) -> None:
    """The api's operator routes over a real dead-lettered message (auth off: local operator)."""
    async with running_api(api_settings(tmp_path, amqp_url, mongo_url, db_prefix)) as api:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            await channel.declare_queue(
                "monitor.events.dlq", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await channel.declare_queue("monitor.events", durable=True, arguments={"x-queue-type": "quorum"})
            await channel.default_exchange.publish(
                aio_pika.Message(b"{not json", message_id="poison-1"), routing_key="monitor.events.dlq"
            )
            listed = await api.client.get("/api/v2/admin/dead-letters")
            assert listed.status == 200
            letters = (await listed.json())["dead_letters"]
            assert [(d["dead_letter_queue"], d["message_id"]) for d in letters] == [
                ("monitor.events.dlq", "poison-1")
            ]
            assert (await api.client.get("/api/v2/admin/dead-letters?limit=0")).status == 400
            unknown = await api.client.post("/api/v2/admin/dead-letters/..%2Fetc/replay")
            assert unknown.status == 404
            replayed = await api.client.post("/api/v2/admin/dead-letters/monitor.events/replay")
            assert await replayed.json() == {"queue": "monitor.events", "replayed": 1}
            queue = await channel.get_queue("monitor.events")
            message = await queue.get(timeout=5)
            assert message.body == b"{not json"
            await message.ack()
        finally:
            await connection.close()
