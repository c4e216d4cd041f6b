"""The ``job_usage`` collection: one document per job, written at most twice.

Document: ``{_id: job_id, owner, app, day, submitted_at, outcome, attempt, wall_s,
cpu_s, peak_rss_bytes, output_bytes, finished_at}``. The submission and the final
outcome are each written once, by a write guarded on their field being unset, so the
order in which the two events arrive does not matter.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_accounting.domain.usage import FinalOutcome, day_of
from caesar_common.events import JobSubmitted
from caesar_common.store import Document, guarded_upsert

JOB_USAGE = "job_usage"
# ``owner`` serves the per-user report.
JOB_USAGE_INDEXES = [IndexModel([("owner", ASCENDING)], name="owner")]

_REPORT_FIELDS = {
    "owner": 1,
    "app": 1,
    "day": 1,
    "outcome": 1,
    "attempt": 1,
    "wall_s": 1,
    "cpu_s": 1,
    "peak_rss_bytes": 1,
    "output_bytes": 1,
    "finished_at": 1,
}


class JobUsageRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def record_submission(self, message: JobSubmitted) -> bool:
        """Record who submitted what, when; ``False`` if it was already recorded."""
        return await guarded_upsert(
            self.collection,
            {"_id": message.job_id, "submitted_at": None},
            {
                "$set": {
                    "owner": message.owner,
                    "app": message.app,
                    "day": day_of(message.submitted_at),
                    "submitted_at": message.submitted_at,
                },
                "$setOnInsert": {"outcome": None},
            },
        )

    async def record_outcome(self, outcome: FinalOutcome) -> bool:
        """Record the final outcome unless one is recorded; ``True`` if this call did it."""
        return await guarded_upsert(
            self.collection,
            {"_id": outcome.job_id, "outcome": None},
            {"$set": {"owner": outcome.owner, "app": outcome.app, **outcome.fields()}},
        )

    async def of_owner(self, owner: str) -> list[Document]:
        return [d async for d in self.collection.find({"owner": owner}, _REPORT_FIELDS)]

    async def everyone(self) -> list[Document]:
        """Every job (the admin-wide report reads them all, with a narrow projection)."""
        return [d async for d in self.collection.find({}, _REPORT_FIELDS)]
