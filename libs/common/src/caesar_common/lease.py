"""A named lease in MongoDB: one holder among a service's replicas, for work only one may do.

Most work in a replica set is safe to do twice (every write is guarded), but some is not
worth doing twice or must not be: the scheduler's dispatch rounds, two of which would each
fill the same free slots. The holder renews the lease well within its time to live; if it
dies, another replica takes over once the lease has expired. Expiry is compared on each
replica's own clock, so replicas must run on hosts whose clocks agree to well within the
time to live (NTP), as they do on one host or in one cluster.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.logging import get_logger
from caesar_common.store import Document, guarded_upsert

log = get_logger(__name__)

LEASES = "leases"
LEASE_INDEXES = [IndexModel([("expires_at", ASCENDING)], name="expires_at")]


def holder_id() -> str:
    """Who this process is, for the lease document and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The lease ``name``; :meth:`renew` takes it when free and keeps it while held."""

    def __init__(
        self, collection: AsyncCollection[Document], name: str, *, holder: str, ttl: timedelta
    ) -> None:
        self._collection = collection
        self._name = name
        self.holder = holder
        self._ttl = ttl
        self._held_until: datetime | None = None

    async def renew(self, now: datetime) -> bool:
        """Take or extend the lease; returns whether this process holds it now.

        A database error counts as not holding it: a holder that cannot renew must stop
        acting before its lease runs out and another replica takes over.
        """
        query: Document = {"_id": self._name, "$or": [{"holder": self.holder}, {"expires_at": {"$lt": now}}]}
        update = {"$set": {"holder": self.holder, "expires_at": now + self._ttl, "renewed_at": now}}
        was_held = self._held_until is not None
        try:
            held = await guarded_upsert(self._collection, query, update)
        except Exception as exc:  # noqa: BLE001 - not renewed is the safe reading
            log.warning("lease not renewed", lease=self._name, error=repr(exc))
            held = False
        # Acting stops at 2/3 of the time to live after the last renewal, so a holder cut
        # off from the database stops before anyone else can take over.
        self._held_until = now + self._ttl * 2 / 3 if held else None
        if held != was_held:
            log.info("lease taken" if held else "lease lost", lease=self._name, holder=self.holder)
        return held

    def held(self, now: datetime) -> bool:
        """Whether this process may act now (renewed recently enough)."""
        return self._held_until is not None and now < self._held_until
