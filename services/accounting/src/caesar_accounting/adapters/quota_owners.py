"""The ``quota_owners`` collection: per user, their roles and the last quota verdict.

Document: ``{_id: owner, roles, over, exceeded, reason, revision, usage, limits,
judged_at}`` plus the outbox of the ``QuotaChanged`` events announcing each verdict. A
verdict is written by a compare-and-set on ``revision`` together with its event, so two
judges (replicas) never announce the same change twice, and the event is never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_accounting.domain.quotas import month_start_day, usage_of
from caesar_common.events import Envelope
from caesar_common.jobstate import JobState
from caesar_common.outbox import merge_updates, outbox_update
from caesar_common.quotas import Usage
from caesar_common.store import Document, guarded_upsert

QUOTA_OWNERS = "quota_owners"
QUOTA_OWNERS_INDEXES = [IndexModel([("over", ASCENDING)], name="over")]
_RUNNING = [JobState.STARTED.value, JobState.RUNNING.value]


class QuotaOwnerRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, owner: str) -> Document | None:
        return await self.collection.find_one({"_id": owner}, {"outbox": 0})

    async def remember_roles(self, owner: str, roles: Sequence[str]) -> None:
        await self.collection.update_one({"_id": owner}, {"$set": {"roles": sorted(roles)}}, upsert=True)

    async def record_verdict(
        self, owner: str, seen_revision: int, fields: dict[str, Any], event: Envelope
    ) -> bool:
        """Store the verdict and its event if nobody judged the owner since ``seen_revision``."""
        update = merge_updates({"$set": {**fields, "revision": seen_revision + 1}}, outbox_update([event]))
        guard = seen_revision if seen_revision else None
        return await guarded_upsert(self.collection, {"_id": owner, "revision": guard}, update)

    async def over_owners(self) -> list[str]:
        return [d["_id"] async for d in self.collection.find({"over": True}, {"_id": 1})]


class QuotaUsageReader:
    """A user's usage from the job and file usage collections (indexed by owner)."""

    def __init__(self, jobs: AsyncCollection[Document], files: AsyncCollection[Document]) -> None:
        self.jobs = jobs
        self.files = files

    async def usage(self, owner: str, now: datetime) -> Usage:
        running = await self.jobs.count_documents(
            {"owner": owner, "outcome": None, "position.state": {"$in": _RUNNING}}
        )
        month = self.jobs.find(
            {"owner": owner, "day": {"$gte": month_start_day(now)}}, {"cpu_s": 1, "attempts": 1}
        )
        files = self.files.find({"owner": owner, "deleted_at": None}, {"size_bytes": 1})
        return usage_of(running, [d async for d in month], [d async for d in files])
