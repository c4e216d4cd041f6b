"""Real events against the AsyncAPI document, as the read-only subscriber receives them.

The ``caesar-subscriber`` broker user binds a ``sub.*`` queue of its own to ``#`` on
``caesar.events`` of a whole stack's vhost, before anything happens. Then an upload, jobs
of the test-only ``trivial`` app (one run to success, one cancelled while running, one held
over quota and released, one failing) and the file's deletion make every kind of event
happen. Each event is awaited on the subscriber's own queue (never after a sleep), and
every message received, heartbeats and pool snapshots included, must belong to a channel
of the document and fit its payload and headers schemas; every channel of the document
must have been seen.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage
from jsonschema import Draft7Validator
from pymongo import MongoClient

from caesar_common import access
from caesar_common.asyncapi import build_asyncapi, channel_for_routing_key, channel_schemas
from caesar_common.events import EVENTS_EXCHANGE
from caesar_testkit.devstack import Stack
from caesar_testkit.infra import dev_secrets, with_credentials
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import make_stack, submit, upload

pytestmark = pytest.mark.e2e

OWNER = "anonymous"  # auth off
TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """At most one running job per user, so a second job is HELD and quota.changed happens."""
    root = tmp_path_factory.mktemp("asyncapi")
    policy = root / "quotas.json"
    policy.write_text(json.dumps({"default": {"running_jobs": 1}}))
    yield from make_stack(
        root / "stack",
        CAESAR_QUOTAS_FILE=str(policy),
        CAESAR_SLOTS="2",
        CAESAR_ENABLE_TEST_APPS="true",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
    )


@dataclass(frozen=True)
class Received:
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    type: str | None
    app_id: str | None
    content_type: str | None

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Subscriber:
    """The read-only broker user's own queue, bound to every key of ``caesar.events``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.received: list[Received] = []
        self._new = asyncio.Event()
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> Subscriber:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(f"sub.asyncapi-{uuid.uuid4().hex[:8]}", exclusive=True)
        await queue.bind(EVENTS_EXCHANGE, routing_key="#")
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append(
                Received(
                    routing_key=message.routing_key or "",
                    body=message.body,
                    headers=dict(message.headers or {}),
                    message_id=message.message_id,
                    type=message.type,
                    app_id=message.app_id,
                    content_type=message.content_type,
                )
            )
            self._new.set()

    async def wait_for(
        self, key: str, when: Callable[[dict[str, Any]], bool] = lambda _: True, timeout_s: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """The first envelope on routing key ``key`` whose ``data`` satisfies ``when``."""

        async def scan() -> dict[str, Any]:
            while True:
                for message in self.received:
                    if message.routing_key == key and when(message.envelope["data"]):
                        return message.envelope
                self._new.clear()
                await self._new.wait()

        try:
            return await asyncio.wait_for(scan(), timeout=timeout_s)
        except TimeoutError:
            seen = sorted({m.routing_key for m in self.received})
            raise AssertionError(f"no {key} event in {timeout_s} s; keys seen: {seen}") from None


def subscriber_url(stack: Stack) -> str:
    """The stack's vhost as the deployment's read-only subscriber user."""
    password = dev_secrets()[access.broker_secret(access.SUBSCRIBER)]
    return with_credentials(stack.amqp_url, access.broker_user(access.SUBSCRIBER), password)


@pytest.fixture
async def subscriber(stack: Stack) -> AsyncIterator[Subscriber]:
    async with Subscriber(subscriber_url(stack)) as sub:
        yield sub


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def scheduler_knows_over_quota(stack: Stack, timeout_s: float = TIMEOUT_S) -> None:
    """Wait until the scheduler recorded accounting's verdict (its own quota record).

    The subscriber seeing quota.changed says nothing about the scheduler having applied
    it; a job submitted before that would run instead of being held.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url)
    try:
        quotas = client[f"{stack.db_prefix}_scheduler"]["quotas"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            doc = await asyncio.to_thread(quotas.find_one, {"_id": OWNER})
            if doc is not None and doc.get("over") is True:
                return
            await asyncio.sleep(0.2)
        raise AssertionError("the scheduler never recorded the user as over quota")
    finally:
        client.close()


def of_job(job_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data.get("job_id") == job_id


async def post(http: aiohttp.ClientSession, url: str) -> None:
    async with http.post(url) as resp:
        assert resp.status == 200, await resp.text()


def check_against_document(document: dict[str, Any], received: list[Received]) -> dict[str, set[str]]:
    """Every message in a channel, fitting its schemas; the routing keys seen per channel."""
    seen: dict[str, set[str]] = {}
    failures = []
    for message in received:
        channel_id = channel_for_routing_key(document, message.routing_key)
        if channel_id is None:
            failures.append(f"{message.routing_key}: no channel")
            continue
        seen.setdefault(channel_id, set()).add(message.routing_key)
        payload, headers = channel_schemas(document, channel_id)
        envelope = message.envelope
        for error in Draft7Validator(payload).iter_errors(envelope):
            failures.append(f"{message.routing_key} body: {error.message} at {list(error.absolute_path)}")
        for error in Draft7Validator(headers).iter_errors(message.headers):
            failures.append(f"{message.routing_key} headers: {error.message}")
        # The AMQP properties the document promises (x-amqp-properties).
        properties = (message.message_id, message.type, message.app_id, message.content_type)
        expected = (envelope["id"], envelope["type"], envelope["source"], "application/json")
        if properties != expected:
            failures.append(f"{message.routing_key} properties: {properties} != {expected}")
        if envelope["routing_key"] != message.routing_key:
            failures.append(f"{message.routing_key}: envelope says {envelope['routing_key']}")
    assert not failures, "\n".join(failures[:50])
    return seen


async def test_real_events_fit_the_asyncapi_document(
    stack: Stack, subscriber: Subscriber, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    document = build_asyncapi()
    # The document the api serves is the one checked here.
    async with http.get(f"{stack.api}/asyncapi.json") as resp:
        assert resp.status == 200
        assert await resp.json() == document

    image = tmp_path / "tiny.fits"
    write_simulation(SimulationSpec(size=64, seed=3, n_sources=2), image)
    file_id = await upload(http, stack, image)
    await subscriber.wait_for("file.uploaded", lambda d: d["file_id"] == file_id)

    def trivial(seconds: float, exit_code: int = 0) -> dict[str, Any]:
        options = {"seconds": seconds, "exit-code": exit_code}
        return {"app": "trivial", "job_inputs": options, "data_inputs": file_id}

    # A long job: running, which puts the user at the quota (running_jobs 1 of 1).
    long_job = await submit(http, stack, trivial(600))
    await subscriber.wait_for("job.submitted", of_job(long_job))
    await subscriber.wait_for("job.state.queued", of_job(long_job))
    await subscriber.wait_for("job.state.running", of_job(long_job))
    await subscriber.wait_for("quota.changed", lambda d: d["owner"] == OWNER and d["over"] is True)
    await scheduler_knows_over_quota(stack)

    # Over quota: the next job is held.
    held_job = await submit(http, stack, trivial(0.2))
    await subscriber.wait_for("job.state.held", of_job(held_job))

    # Cancelling the running job frees the quota; the held one is released and succeeds.
    await post(http, f"{stack.v1}/job/{long_job}/cancel")
    await subscriber.wait_for("job.cancel_requested", of_job(long_job))
    await subscriber.wait_for("job.state.canceled", of_job(long_job))
    await subscriber.wait_for("quota.changed", lambda d: d["owner"] == OWNER and d["over"] is False)
    await subscriber.wait_for("job.state.success", of_job(held_job))

    # A job whose process fails.
    failing_job = await submit(http, stack, trivial(0.1, exit_code=3))
    failure = await subscriber.wait_for("job.state.failure", of_job(failing_job))
    assert failure["data"]["exit_code"] == 3

    await post(http, f"{stack.v1}/delete/{file_id}")
    await subscriber.wait_for("file.deleted", lambda d: d["file_id"] == file_id)
    # Periodic ones, published all along.
    await subscriber.wait_for("runner.heartbeat")
    await subscriber.wait_for("pool.status")

    seen = check_against_document(document, subscriber.received)
    assert set(seen) == set(document["channels"]), "channels of the document never exercised"
    assert {"job.state.queued", "job.state.running", "job.state.held", "job.state.canceled"} <= seen[
        "jobState"
    ]
    assert {"job.state.success", "job.state.failure"} <= seen["jobState"]

    # And the check above does catch a stray key or a body that does not fit.
    state_change = next(m for m in subscriber.received if m.routing_key == "job.state.success")
    with pytest.raises(AssertionError, match="no channel"):
        check_against_document(document, [replace(state_change, routing_key="job.state.sleeping")])
    wrong = {**state_change.envelope, "data": {**state_change.envelope["data"], "attempt": "first"}}
    with pytest.raises(AssertionError, match="body: 'first' is not of type 'integer'"):
        check_against_document(document, [replace(state_change, body=json.dumps(wrong).encode())])
