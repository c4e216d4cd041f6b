"""Fixtures shared by the whole suite.

Integration and end-to-end tests talk to the real RabbitMQ and MongoDB-wire server that
``scripts/infra.sh`` started (``make test`` does it). Each test gets its own RabbitMQ
virtual host and its own database prefix, so tests never see each other's messages or
documents and need no clean-up between them beyond dropping what they made.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings
from pymongo import MongoClient

from caesar_testkit.devstack import Stack

# Hypothesis: `make test` (and CI) run derandomised, so a run passes or fails for a reason
# and never by the seed it drew; `make test-fuzz` explores with fresh random seeds.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile(
    "explore", derandomize=False, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every Hypothesis test ``property``, so `make test-fuzz` can select them all.

    A marker added by hand would be forgotten on the next property test; Hypothesis tags
    the functions it wraps, so the selection follows the code.
    """
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


REPO = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("CAESAR_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MONGO_URL = os.environ.get("CAESAR_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl against the project's broker node (through the infra script)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "infra.sh"), "ctl", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


def url_with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


class Vhost:
    """A throw-away RabbitMQ virtual host."""

    def __init__(self) -> None:
        self.name = f"test-{uuid.uuid4().hex[:10]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = url_with_vhost(AMQP_URL, self.name)

    def queue_depths(self) -> dict[str, int]:
        out = rabbitmqctl("list_queues", "-p", self.name, "--no-table-headers", "name", "messages")
        depths = {}
        for line in out.splitlines():
            if line.strip():
                name, count = line.split()
                depths[name] = int(count)
        return depths

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


@pytest.fixture
def vhost() -> Iterator[Vhost]:
    v = Vhost()
    yield v
    v.delete()


@pytest.fixture
def amqp_url(vhost: Vhost) -> str:
    return vhost.url


@pytest.fixture
def db_prefix() -> Iterator[str]:
    """A unique database prefix; every database made under it is dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    drop_databases(prefix)


@pytest.fixture
def mongo_url() -> str:
    return MONGO_URL


@pytest.fixture
async def async_mongo() -> AsyncIterator[object]:
    from caesar_common.store import mongo_client

    client = mongo_client(MONGO_URL)
    yield client
    await client.close()


def drop_databases(prefix: str, mongo_url: str = MONGO_URL) -> None:
    """Drop every database of a stack or test (``<prefix>_<service>``)."""
    client: MongoClient[dict[str, object]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        for name in client.list_database_names():
            if name.startswith(prefix + "_"):
                client.drop_database(name)
    finally:
        client.close()


@contextmanager
def isolated_stack(
    root: Path,
    services: Sequence[str] | None = None,
    *,
    prefix_letter: str = "s",
    mongo_url: str = MONGO_URL,
    **extra_env: str,
) -> Iterator[Stack]:
    """Services as processes on their own vhost and databases, removed afterwards."""
    from caesar_testkit.devstack import Stack

    vhost = Vhost()
    prefix = f"{prefix_letter}{uuid.uuid4().hex[:10]}"
    stack = Stack(root, vhost.url, mongo_url, prefix, extra_env=extra_env)
    try:
        if services is None:
            stack.start_all()
        else:
            for d in ("data", "jobs", "logs"):
                (root / d).mkdir(parents=True, exist_ok=True)
            for name in services:
                stack.start(name)
            for name in services:
                stack.wait_ready(name)
        yield stack
    finally:
        stack.stop_all()
        vhost.delete()
        drop_databases(prefix, mongo_url)
