"""Each service's own broker and database user can do its work and nothing else.

On the real broker and database, with the grants of ``caesar_common.access`` (what the
local stack and Compose apply): every service declares, binds, publishes and consumes
what its code does; every denial the issue names is tried and must be refused by the
server itself (ACCESS_REFUSED on the broker, code 13 in the database).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from caesar_accounting.entrypoints.consumer import ACCOUNTING_QUEUE
from caesar_api.entrypoints.consumer import JOB_STATES_QUEUE, POOL_STATUS_QUEUE
from caesar_common import access
from caesar_common.bus import Bus, QueueSpec, runner_pool_queue
from caesar_common.events import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    Envelope,
    FileDeleted,
    FileUploaded,
    JobCancelRequested,
    JobSubmitted,
    PoolStatus,
    QuotaChanged,
    RunJob,
    RunnerHeartbeat,
)
from caesar_common.jobstate import JobState
from caesar_monitor.entrypoints.consumer import HEARTBEAT_QUEUE, MONITOR_QUEUE
from caesar_runner.entrypoints.consumer import CANCEL_QUEUE
from caesar_scheduler.entrypoints.consumer import SCHEDULER_QUEUE
from caesar_testkit.infra import admin_mongo_url, database_users, dev_secrets, drop_databases, rabbitmqctl
from tests.conftest import AMQP_URL, Vhost

pytestmark = pytest.mark.integration

POOL_QUEUE = QueueSpec(runner_pool_queue("local"))
JOB_STATES = [f"job.state.{state.routing_suffix}" for state in JobState]

# What each service's code declares and publishes (the specs are the services' own).
QUEUES: dict[str, list[QueueSpec]] = {
    "api": [JOB_STATES_QUEUE, POOL_STATUS_QUEUE],
    "scheduler": [SCHEDULER_QUEUE, POOL_QUEUE],
    "runner": [POOL_QUEUE, CANCEL_QUEUE],
    "monitor": [MONITOR_QUEUE, HEARTBEAT_QUEUE],
    "accounting": [ACCOUNTING_QUEUE],
}
PUBLISHES: dict[str, list[str]] = {
    "api": [
        FileUploaded.type_name,
        FileDeleted.type_name,
        JobSubmitted.type_name,
        JobCancelRequested.type_name,
    ],
    "scheduler": [*JOB_STATES, PoolStatus.type_name],
    "runner": [*JOB_STATES, RunnerHeartbeat.type_name],
    "monitor": JOB_STATES,
    "accounting": [QuotaChanged.type_name],
}


Operation = Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]


def envelope(routing_key: str) -> Envelope:
    return Envelope(type="test", source="test", subject="s", routing_key=routing_key, data={})


@pytest.fixture
async def every_queue(vhost: Vhost) -> Vhost:
    """The vhost with every service queue already declared (by the administrator), so a
    refusal below is about permissions, never about a queue that does not exist."""
    bus = Bus(vhost.url, "admin")
    await bus.connect(wait_s=10)
    try:
        for specs in QUEUES.values():
            for spec in specs:
                await bus.declare(spec)
    finally:
        await bus.close()
    return vhost


@pytest.mark.parametrize("service", access.SERVICES)
async def test_each_service_does_its_work_as_its_own_user(vhost: Vhost, service: str) -> None:
    bus = Bus(vhost.url_for(service), service)
    await bus.connect(wait_s=10)
    try:
        for spec in QUEUES[service]:
            queue = await bus.declare(spec)
            assert await queue.get(fail=False) is None  # consuming its own queue is allowed
        for key in PUBLISHES[service]:
            await bus.publish(envelope(key))
        if service == "scheduler":  # commands go to the pool's queue
            await bus.publish(envelope(RunJob.type_name), to_queue=POOL_QUEUE.name)
    finally:
        await bus.close()


async def _refused(url: str, operation: Operation) -> None:
    connection: AbstractRobustConnection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused):
            await operation(channel)
    finally:
        await connection.close()


def consume(queue: str) -> Operation:
    async def op(channel: aio_pika.abc.AbstractChannel) -> Any:
        q = await channel.get_queue(queue, ensure=False)
        return await q.get(fail=False, timeout=10)

    return op


def publish(
    key: str, exchange: str = EVENTS_EXCHANGE
) -> Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]:
    async def op(channel: aio_pika.abc.AbstractChannel) -> Any:
        target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange)
        return await target.publish(aio_pika.Message(b"forged"), routing_key=key, timeout=10)

    return op


def declare(queue: str) -> Operation:
    async def op(channel: aio_pika.abc.AbstractChannel) -> Any:
        return await channel.declare_queue(queue, durable=True)

    return op


def bind(queue: str, key: str) -> Operation:
    async def op(channel: aio_pika.abc.AbstractChannel) -> Any:
        q = await channel.get_queue(queue, ensure=False)
        return await q.bind(EVENTS_EXCHANGE, routing_key=key)

    return op


def delete_exchange(name: str) -> Operation:
    async def op(channel: aio_pika.abc.AbstractChannel) -> Any:
        return await channel.exchange_delete(name)

    return op


DENIALS = [
    # The api publishes user intent and reads its own queues, never another service's.
    ("api", "read the runners' commands", consume(POOL_QUEUE.name)),
    ("api", "read the scheduler's queue", consume(SCHEDULER_QUEUE.name)),
    ("api", "forge a job state", publish("job.state.success")),
    ("api", "declare a queue in the runners' namespace", declare("runner.evil")),
    ("api", "delete the events exchange", delete_exchange(EVENTS_EXCHANGE)),
    # Runners consume their pool's queue and report; they cannot send work.
    ("runner", "send a command to a pool's queue", publish(POOL_QUEUE.name, exchange="")),
    ("runner", "submit a job", publish(JobSubmitted.type_name)),
    ("runner", "read the api's queue", consume(JOB_STATES_QUEUE.name)),
    ("runner", "bind its queue to submissions", bind(CANCEL_QUEUE.name, JobSubmitted.type_name)),
    ("runner", "delete the dead-letter exchange", delete_exchange(DEAD_LETTER_EXCHANGE)),
    # The scheduler commands pools but reads no one else's queue.
    ("scheduler", "read the api's queue", consume(JOB_STATES_QUEUE.name)),
    ("scheduler", "read the runners' cancels", consume(CANCEL_QUEUE.name)),
    ("scheduler", "forge an upload", publish(FileUploaded.type_name)),
    # The monitor judges; it sends no commands and submits nothing.
    ("monitor", "send a command to a pool's queue", publish(POOL_QUEUE.name, exchange="")),
    ("monitor", "submit a job", publish(JobSubmitted.type_name)),
    ("monitor", "read the scheduler's queue", consume(SCHEDULER_QUEUE.name)),
    # Accounting only listens.
    ("accounting", "forge a job state", publish("job.state.success")),
    ("accounting", "read the api's queue", consume(JOB_STATES_QUEUE.name)),
    # An outside subscriber reads events through its own sub.* queues only.
    ("subscriber", "publish an event", publish("job.state.success")),
    ("subscriber", "read a service queue", consume(JOB_STATES_QUEUE.name)),
    ("subscriber", "declare a queue outside sub.*", declare("runner.local.evil")),
]


@pytest.mark.parametrize(
    ("role", "operation"),
    [pytest.param(role, op, id=f"{role} cannot {what}") for role, what, op in DENIALS],
)
async def test_broker_refuses(every_queue: Vhost, role: str, operation: Operation) -> None:
    await _refused(every_queue.url_for(role), operation)


async def test_subscriber_binds_its_own_queue_and_reads_events(vhost: Vhost) -> None:
    admin = await aio_pika.connect_robust(vhost.url)
    subscriber = await aio_pika.connect_robust(vhost.url_for(access.SUBSCRIBER))
    try:
        channel = await subscriber.channel()
        queue = await channel.declare_queue(f"sub.demo.{uuid.uuid4().hex[:6]}", exclusive=True)
        await queue.bind(EVENTS_EXCHANGE, routing_key="job.state.#")
        publisher = await admin.channel(publisher_confirms=True)
        events = await publisher.get_exchange(EVENTS_EXCHANGE)
        await events.publish(aio_pika.Message(b'{"state": "SUCCESS"}'), routing_key="job.state.success")
        message = await queue.get(timeout=10, fail=True)
        assert message is not None
        assert message.body == b'{"state": "SUCCESS"}'
        await message.ack()
    finally:
        await subscriber.close()
        await admin.close()


async def test_the_default_guest_user_is_gone() -> None:
    host = AMQP_URL.rsplit("@", 1)[-1]
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(f"amqp://guest:guest@{host}", timeout=10)


def test_the_local_broker_grants_exactly_the_policy() -> None:
    """What scripts/infra.sh applied to vhost / is what access.py states, user by user."""
    out = rabbitmqctl("list_permissions", "-p", "/", "--no-table-headers")
    applied = {line.split("\t")[0]: tuple(line.split("\t")[1:]) for line in out.splitlines() if line.strip()}
    expected = {g.user: (g.configure, g.write, g.read) for g in access.BROKER_GRANTS.values()}
    assert applied == expected


# ---------------------------------------------------------------- database


ServiceUsers = tuple[str, dict[str, str]]
"""A database prefix and, per service, the URL of its own user there."""


@pytest.fixture
def service_users() -> Iterator[ServiceUsers]:
    prefix = f"p{uuid.uuid4().hex[:10]}"
    try:
        with database_users(prefix) as urls:
            yield prefix, urls
    finally:
        drop_databases(prefix)


def _client(url: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(url, serverSelectionTimeoutMS=5000)


def _refused_code(operation: Callable[[], Any]) -> int:
    with pytest.raises(OperationFailure) as failure:
        operation()
    return int(failure.value.code or 0)


@pytest.mark.parametrize("service", access.SERVICES)
def test_each_service_writes_its_own_database_only(
    service_users: tuple[str, dict[str, str]], service: str
) -> None:
    prefix, urls = service_users
    client = _client(urls[service])
    try:
        own = client[f"{prefix}_{service}"]["things"]
        own.insert_one({"ok": True})
        own.create_index("ok")
        assert own.find_one({}, {"_id": 0}) == {"ok": True}
        for other in access.SERVICES:
            if other == service:
                continue
            theirs = client[f"{prefix}_{other}"]["things"]
            assert _refused_code(partial(theirs.insert_one, {"forged": True})) == 13
            assert _refused_code(theirs.find_one) == 13
        assert _refused_code(client.list_database_names) == 13
        assert (
            _refused_code(partial(client.admin.command, "createUser", "evil", pwd="x", roles=["root"])) == 13
        )
    finally:
        client.close()


def test_the_database_refuses_anonymous_and_wrong_passwords(
    service_users: tuple[str, dict[str, str]],
) -> None:
    prefix, urls = service_users
    host = admin_mongo_url().rsplit("@", 1)[-1].split("/", 1)[0]
    anonymous = _client(f"mongodb://{host}/?retryWrites=false")
    wrong = _client(urls["api"].replace(urls["api"].split(":")[2].split("@")[0], "wrong-password"))
    try:
        assert _refused_code(lambda: anonymous[f"{prefix}_api"]["things"].find_one()) == 13
        assert _refused_code(lambda: wrong[f"{prefix}_api"]["things"].find_one()) == 18
    finally:
        anonymous.close()
        wrong.close()


def test_the_local_stack_service_users_are_confined() -> None:
    """The users scripts/infra.sh made for `make up` (caesar-api on caesar_api, ...)."""
    secrets = dev_secrets()
    host = admin_mongo_url().rsplit("@", 1)[-1].split("/", 1)[0]
    api_password = secrets[access.database_secret("api")]
    client = _client(f"mongodb://caesar-api:{api_password}@{host}/?authSource=admin&retryWrites=false")
    try:
        assert _refused_code(lambda: client["caesar_scheduler"]["jobs"].find_one()) == 13
        assert _refused_code(lambda: client["caesar_runner"]["claims"].insert_one({"forged": True})) == 13
    finally:
        client.close()
