"""The ``job_usage`` collection: one document per job.

Document: ``{_id: job_id, owner, app, day, submitted_at, outcome, attempt, wall_s,
cpu_s, peak_rss_bytes, output_bytes, finished_at, position: {attempt, state},
attempts: {"<n>": {state, retryable, cpu_s, wall_s}}, rev}``. The submission is written
once, guarded on ``submitted_at`` being unset. State events are written by a
compare-and-set on ``rev`` (the revision the decision was made from), so the outcome,
set when ``position`` becomes final, is written once, and two writers never lose an
attempt. The two kinds of write touch different fields, so their order does not matter.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from caesar_accounting.domain.usage import BatchedWrite, UsageChange, day_of
from caesar_common.events import JobSubmitted
from caesar_common.store import BY_ID, Document, guarded_bulk_upserts, guarded_upsert

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
    "attempts": 1,
    "position": 1,  # an active job's: pending or running
}


def _submission_write(message: JobSubmitted) -> tuple[Document, Document]:
    """Filter and update recording a submission once (guarded on ``submitted_at`` unset)."""
    return (
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


class JobUsageRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def get_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        return {d["_id"]: d async for d in self.collection.find({"_id": {"$in": sorted(job_ids)}})}

    async def record_submissions(self, messages: Sequence[JobSubmitted]) -> int:
        """Each guarded like :meth:`record_submission`; a duplicate is a failed upsert, ignored."""
        if not messages:
            return 0
        operations = [UpdateOne(*_submission_write(m), upsert=True, hint=BY_ID) for m in messages]
        return len(messages) - len(await guarded_bulk_upserts(self.collection, operations))

    async def apply_many(self, writes: Sequence[BatchedWrite]) -> set[str]:
        """One unordered bulk of upserts guarded on the revision read.

        A guard that no longer holds makes its upsert collide on ``_id``: the bulk's
        write errors name exactly the jobs that lost, with no read afterwards.
        """
        operations = [
            UpdateOne(
                {"_id": w.job_id, "rev": w.revision if w.revision else None},
                {"$set": {"owner": w.owner, "app": w.app, **w.fields, "rev": w.revision + w.steps}},
                upsert=True,
                hint=BY_ID,
            )
            for w in writes
        ]
        return {writes[i].job_id for i in await guarded_bulk_upserts(self.collection, operations)}

    async def record_submission(self, message: JobSubmitted) -> bool:
        """Record who submitted what, when; ``False`` if it was already recorded."""
        return await guarded_upsert(self.collection, *_submission_write(message))

    async def apply(self, job_id: str, owner: str, app: str, revision: int, change: UsageChange) -> bool:
        """Write ``change`` if the document is still at ``revision``; ``True`` if this call did.

        ``rev`` is ``$set`` rather than ``$inc``ed: an upsert copies the guard's
        ``rev: None`` into the new document, and ``$inc`` refuses a null.
        """
        guard = revision if revision else None
        return await guarded_upsert(
            self.collection,
            {"_id": job_id, "rev": guard},
            {"$set": {"owner": owner, "app": app, **change.fields(), "rev": revision + 1}},
        )

    async def of_owner(self, owner: str) -> list[Document]:
        return [d async for d in self.collection.find({"owner": owner}, _REPORT_FIELDS)]

    async def everyone(self) -> list[Document]:
        """Every job (the admin-wide report reads them all, with a narrow projection)."""
        return [d async for d in self.collection.find({}, _REPORT_FIELDS)]
