"""The lease that lets one replica of a service act alone, against the real MongoDB-wire server.

Time is what each call says it is (``now``): no sleeps, every instant chosen by the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from caesar_common.lease import Lease
from caesar_common.store import mongo_client
from tests.conftest import MONGO_URL

pytestmark = pytest.mark.integration

Document = dict[str, Any]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=15)


async def test_one_holder_at_a_time_and_a_takeover_after_expiry(
    async_mongo: AsyncMongoClient[Document], db_prefix: str
) -> None:
    collection = async_mongo[f"{db_prefix}_lease"]["leases"]
    a = Lease(collection, "dispatcher", holder="a", ttl=TTL)
    b = Lease(collection, "dispatcher", holder="b", ttl=TTL)

    assert await a.renew(T0)
    assert not await b.renew(T0 + timedelta(seconds=1))
    assert a.held(T0 + timedelta(seconds=9))
    assert not b.held(T0 + timedelta(seconds=1))

    # The holder renews: the other replica keeps waiting.
    assert await a.renew(T0 + timedelta(seconds=3))
    assert not await b.renew(T0 + timedelta(seconds=17))

    # A holder that stops renewing stops acting before its lease can be taken over ...
    assert not a.held(T0 + timedelta(seconds=13))
    # ... and once it has expired, the other replica takes it.
    assert await b.renew(T0 + timedelta(seconds=19))
    assert b.held(T0 + timedelta(seconds=20))
    assert not await a.renew(T0 + timedelta(seconds=20))  # came back: too late
    assert not a.held(T0 + timedelta(seconds=20))
    doc = await collection.find_one({"_id": "dispatcher"})
    assert doc is not None
    assert doc["holder"] == "b"


async def test_a_database_error_means_not_holding(db_prefix: str) -> None:
    client = mongo_client(MONGO_URL)
    lease = Lease(client[f"{db_prefix}_lease"]["leases"], "dispatcher", holder="a", ttl=TTL)
    assert await lease.renew(T0)
    await client.close()  # the database is gone, as far as this process can tell
    assert not await lease.renew(T0 + timedelta(seconds=3))
    assert not lease.held(T0 + timedelta(seconds=3))
