"""Fixtures shared by the whole suite.

Integration and end-to-end tests talk to the real RabbitMQ and MongoDB-wire server that
``scripts/infra.sh`` started (``make test`` does it). Each test gets its own RabbitMQ
virtual host and its own database prefix, so tests never see each other's messages or
documents and need no clean-up between them beyond dropping what they made.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from caesar_testkit.devstack import Stack
from caesar_testkit.infra import (
    Vhost,
    admin_amqp_url,
    admin_mongo_url,
    drop_databases,
    rabbitmqctl,
    service_users,
    url_with_vhost,
)

__all__ = ["AMQP_URL", "MONGO_URL", "REPO", "Vhost", "drop_databases", "rabbitmqctl", "url_with_vhost"]

# Hypothesis: `make test` (and CI) run derandomised, so a run passes or fails for a reason
# and never by the seed it drew; `make test-fuzz` explores with fresh random seeds.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile(
    "explore", derandomize=False, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


KEYCLOAK_GROUP = "keycloak"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every Hypothesis test ``property``, so `make test-fuzz` can select them all, and
    give every test its worker group for ``pytest -n N --dist loadgroup`` (scripts/test.sh).

    A marker added by hand would be forgotten on the next property test; Hypothesis tags
    the functions it wraps, so the selection follows the code.

    Groups: a module's tests run on one worker (its module fixtures, a stack or an api,
    are built once), and every module marked ``keycloak`` shares one worker: Keycloak's
    brute-force detection takes simultaneous logins of one user for an attack and
    refuses the right password for a while ("Invalid user credentials").
    """
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
        group = KEYCLOAK_GROUP if item.get_closest_marker("keycloak") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


REPO = Path(__file__).resolve().parent.parent
# The administrators of the local broker and database (scripts/infra.sh made them; CI
# exports the URLs). Stacks the tests start get each service's own user instead.
try:
    AMQP_URL, MONGO_URL = admin_amqp_url(), admin_mongo_url()
except RuntimeError:  # no infrastructure yet: unit tests need none; the others say why
    AMQP_URL, MONGO_URL = "amqp://127.0.0.1:5672/", "mongodb://127.0.0.1:27017/?retryWrites=false"


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


@contextmanager
def isolated_stack(
    root: Path,
    services: Sequence[str] | None = None,
    *,
    prefix_letter: str = "s",
    mongo_url: str = MONGO_URL,
    **extra_env: str,
) -> Iterator[Stack]:
    """Services as processes on their own vhost and databases, removed afterwards.

    Each service connects as its own broker user and its own database user, with the
    privileges a deployment gives it (caesar_common.access), never as an administrator.
    """
    vhost = Vhost()
    prefix = f"{prefix_letter}{uuid.uuid4().hex[:10]}"
    try:
        with service_users(vhost, prefix, mongo_url) as service_urls:
            stack = Stack(root, vhost.url, mongo_url, prefix, extra_env=extra_env, service_urls=service_urls)
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
                drop_databases(prefix, mongo_url)
    finally:
        vhost.delete()
