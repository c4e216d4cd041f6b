"""The ``webhooks`` and ``webhook_deliveries`` collections.

Deliveries are inserted with ids derived from (hook, job state), so inserting the same
one twice is a duplicate-key no-op. A delivery is sent only after a *claim*: a guarded
update that moves its ``next_at`` to the end of a lease, guarded on the ``next_at`` it
was read with. Of two replicas reading the same due delivery, one claim matches; the
other's guard misses and it moves on. If the claimant dies, the delivery is due again
when the lease ends (sent at least once, never by two replicas at once while the lease
holds). The attempt's outcome is written guarded on the claim's token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from caesar_api.adapters.pagination import Page, after_filter
from caesar_api.push.domain.hooks import CANCELED, DELIVERED, FAILED, PENDING
from caesar_common.store import BY_ID, DUPLICATE_KEY, Document

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"
WEBHOOK_INDEXES: list[IndexModel] = [
    IndexModel([("owner", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="owner_newest"),
]
DELIVERY_INDEXES: list[IndexModel] = [
    # The delivery loop: pending ones whose time has come, oldest first.
    IndexModel([("status", ASCENDING), ("next_at", ASCENDING)], name="due"),
    # A hook's delivery log, newest first.
    IndexModel([("hook_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="hook_newest"),
]


class HooksRepository:
    """Hooks by owner; another owner's hook is never returned."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def add(self, record: Document) -> None:
        await self.collection.insert_one(record)

    async def count(self, owner: str) -> int:
        return await self.collection.count_documents({"owner": owner})

    async def get(self, owner: str, hook_id: str) -> Document | None:
        # By _id, then the owner (a filter on owner would be planned through its index).
        hook = await self.collection.find_one({"_id": hook_id})
        return hook if hook is not None and hook.get("owner") == owner else None

    async def get_any(self, hook_id: str) -> Document | None:
        return await self.collection.find_one({"_id": hook_id})

    async def page(self, owner: str, limit: int, after: Document | None) -> Page:
        query: Document = {"owner": owner}
        if after is not None:
            query.update(after_filter("created_at", after))
        cursor = (
            self.collection.find(query, {"secret": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def of_owners(self, owners: Iterable[str]) -> list[Document]:
        """Every hook of these owners (one indexed read per batch of events)."""
        wanted = sorted(set(owners))
        if not wanted:
            return []
        return [doc async for doc in self.collection.find({"owner": {"$in": wanted}})]

    async def delete(self, hook: Document) -> bool:
        result = await self.collection.delete_one({"_id": hook["_id"], "owner": hook["owner"]}, hint=BY_ID)
        return bool(result.deleted_count == 1)


class DeliveriesRepository:
    """Delivery records: created once, claimed with a lease, their attempts logged."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def add_many(self, records: Sequence[Document]) -> int:
        """Insert the deliveries not there yet; how many were new."""
        if not records:
            return 0
        try:
            result = await self.collection.insert_many(list(records), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                raise
            return len(records) - len(errors)
        return len(result.inserted_ids)

    async def due(self, now: datetime, limit: int) -> list[Document]:
        cursor = (
            self.collection.find({"status": PENDING, "next_at": {"$lte": now}})
            .sort([("next_at", ASCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def claim(self, delivery: Document, token: str, lease_until: datetime) -> bool:
        """Take the delivery until ``lease_until`` if nobody did since it was read."""
        guard = {"_id": delivery["_id"], "status": PENDING, "next_at": delivery["next_at"]}
        result = await self.collection.update_one(
            guard, {"$set": {"next_at": lease_until, "claim": token}}, hint=BY_ID
        )
        return bool(result.matched_count == 1)

    async def finish_attempt(
        self,
        delivery_id: str,
        token: str,
        attempt: Document,
        *,
        status: str,
        next_at: datetime | None,
        delivered_at: datetime | None = None,
    ) -> bool:
        """Log the attempt and what follows (delivered, retry at ``next_at``, failed)."""
        fields: Document = {"status": status, "claim": None}
        if next_at is not None:
            fields["next_at"] = next_at
        if delivered_at is not None:
            fields["delivered_at"] = delivered_at
        result = await self.collection.update_one(
            {"_id": delivery_id, "status": PENDING, "claim": token},
            {"$set": fields, "$push": {"attempts": attempt}},
            hint=BY_ID,
        )
        return bool(result.matched_count == 1)

    async def cancel(self, delivery_id: str, token: str) -> None:
        """The hook is gone: the delivery will never be sent."""
        await self.collection.update_one(
            {"_id": delivery_id, "status": PENDING, "claim": token},
            {"$set": {"status": CANCELED, "claim": None}},
            hint=BY_ID,
        )

    async def page(self, hook_id: str, limit: int, after: Document | None) -> Page:
        query: Document = {"hook_id": hook_id}
        if after is not None:
            query.update(after_filter("created_at", after))
        cursor = (
            self.collection.find(query, {"body": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def get(self, hook_id: str, delivery_id: str) -> Document | None:
        delivery = await self.collection.find_one({"_id": delivery_id}, {"body": 0})
        return delivery if delivery is not None and delivery.get("hook_id") == hook_id else None

    async def remove_of_hook(self, hook_id: str) -> int:
        result = await self.collection.delete_many({"hook_id": hook_id})
        return int(result.deleted_count)


__all__ = [
    "CANCELED",
    "DELIVERED",
    "DELIVERIES",
    "DELIVERY_INDEXES",
    "FAILED",
    "PENDING",
    "WEBHOOKS",
    "WEBHOOK_INDEXES",
    "DeliveriesRepository",
    "HooksRepository",
]
