"""The read-only event subscriber of docker-compose, with its permissions applied to our broker.

The user and its permissions come from deploy/rabbitmq/definitions.json (what compose
loads); here they are given to a throw-away user on a throw-away vhost, and the test
checks what docs/subscribers.md promises: bind an own ``sub.*`` queue to
``caesar.events`` and read events; no publishing, no reading service queues.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelClosed

from tests.conftest import AMQP_URL, REPO, Vhost, rabbitmqctl

pytestmark = pytest.mark.integration

DEFINITIONS = REPO / "deploy" / "rabbitmq" / "definitions.json"


@pytest.fixture
def subscriber(vhost: Vhost) -> Iterator[str]:
    definitions = json.loads(DEFINITIONS.read_text())
    [perm] = [p for p in definitions["permissions"] if p["user"] == "caesar-subscriber"]
    user, password = f"sub-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rabbitmqctl("add_user", user, password)
    try:
        rabbitmqctl("set_permissions", "-p", vhost.name, user, perm["configure"], perm["write"], perm["read"])
        host = AMQP_URL.split("@", 1)[1].split("/", 1)[0]
        yield f"amqp://{user}:{password}@{host}/{quote(vhost.name, safe='')}"
    finally:
        rabbitmqctl("delete_user", user)


async def test_subscriber_reads_events_but_cannot_publish_or_read_service_queues(
    vhost: Vhost, subscriber: str
) -> None:
    service = await aio_pika.connect(vhost.url)
    sub = await aio_pika.connect(subscriber)
    try:
        svc_channel = await service.channel()
        exchange = await svc_channel.declare_exchange(
            "caesar.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        service_queue = await svc_channel.declare_queue("api.job-state", durable=True)
        await service_queue.bind(exchange, "job.state.#")

        channel = await sub.channel()
        events = await channel.get_exchange("caesar.events", ensure=False)
        queue = await channel.declare_queue(f"sub.demo.{uuid.uuid4().hex[:6]}", exclusive=True)
        await queue.bind(events, "job.state.#")
        await exchange.publish(aio_pika.Message(b'{"state": "SUCCESS"}'), routing_key="job.state.success")
        message = await queue.get(timeout=10, fail=True)
        assert message is not None
        assert message.body == b'{"state": "SUCCESS"}'
        await message.ack()

        # Publishing to the events exchange is refused (the channel is closed).
        confirm = await sub.channel(publisher_confirms=True)
        confirm_events = await confirm.get_exchange("caesar.events", ensure=False)
        with pytest.raises((ChannelAccessRefused, ChannelClosed)):
            await asyncio.wait_for(
                confirm_events.publish(aio_pika.Message(b"forged"), routing_key="job.state.success"), 10
            )
        # Reading a service queue is refused.
        reader = await sub.channel()
        service_queue_as_sub = await reader.get_queue("api.job-state", ensure=False)
        with pytest.raises((ChannelAccessRefused, ChannelClosed)):
            await service_queue_as_sub.get(timeout=5, fail=False)
        # So is declaring a queue outside its own namespace.
        other = await sub.channel()
        with pytest.raises((ChannelAccessRefused, ChannelClosed)):
            await other.declare_queue("runner.local.evil", exclusive=True)
        assert (await service_queue.declare()).message_count == 1  # only the real event
    finally:
        await sub.close()
        await service.close()
