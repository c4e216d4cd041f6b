"""UWS drafts: jobs created without ``PHASE=RUN``, kept by the api alone until they run.

A draft is not a job: no event announces it, so the scheduler never sees it, and a
``PHASE=RUN`` submits it through :func:`caesar_api.service.jobs.submit` like any job.
The draft then stays as the link from the UWS id the client holds to the job id the
submission made (``job_id``). Its only concurrent step, the submission, is claimed with
a guarded write (``starting_at``), so two ``PHASE=RUN`` never submit twice; a claim left
by a crashed process goes stale and may be taken again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, Protocol

from pymongo import DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.store import Document

COLLECTION: Final = "uws_drafts"
DRAFT_INDEXES: Final = [
    IndexModel([("owner", 1), ("app", 1), ("job_id", 1), ("created_at", DESCENDING)], name="by_owner_app"),
    IndexModel([("owner", 1), ("job_id", 1)], name="by_job"),
]


class DraftStore(Protocol):
    """Where drafts live (MongoDB here, a dictionary in unit tests)."""

    async def add(self, draft: Document) -> None: ...

    async def get(self, owner: str, app: str, draft_id: str) -> Document | None: ...

    async def aliases(self, owner: str, job_ids: Iterable[str]) -> dict[str, Document]:
        """The drafts that became the given jobs, keyed by job id."""
        ...

    async def unsubmitted(
        self, owner: str, app: str, *, after: datetime | None, aborted: bool | None, limit: int
    ) -> list[Document]:
        """Drafts not submitted, newest first; ``aborted`` None: either kind."""
        ...

    async def update_open(self, owner: str, draft_id: str, fields: dict[str, Any]) -> bool:
        """Set ``fields`` on a draft neither submitted, being submitted nor aborted."""
        ...

    async def claim(
        self, owner: str, draft_id: str, now: datetime, stale_before: datetime
    ) -> Document | None:
        """Mark an open draft as being submitted (or retake a stale claim); the draft, or None."""
        ...

    async def release(self, draft_id: str) -> None:
        """Drop a claim whose submission was refused: the draft is open again."""
        ...

    async def attach(self, draft_id: str, job_id: str) -> None:
        """Record the job the submission made (the claim ends)."""
        ...

    async def remove_open(self, owner: str, draft_id: str) -> bool:
        """Remove a draft not submitted nor being submitted."""
        ...


def _open(owner: str, draft_id: str) -> Document:
    return {"_id": draft_id, "owner": owner, "job_id": None, "starting_at": None}


class DraftsRepository:
    """:class:`DraftStore` on the api database's ``uws_drafts`` collection."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self._indexed = False

    async def _indexes(self) -> None:
        """Create the indexes on first use (the api's bootstrap does not know this collection)."""
        if not self._indexed:
            await self.collection.create_indexes(DRAFT_INDEXES)
            self._indexed = True

    async def add(self, draft: Document) -> None:
        await self._indexes()
        await self.collection.insert_one(draft)

    async def get(self, owner: str, app: str, draft_id: str) -> Document | None:
        await self._indexes()
        return await self.collection.find_one({"_id": draft_id, "owner": owner, "app": app})

    async def aliases(self, owner: str, job_ids: Iterable[str]) -> dict[str, Document]:
        ids = list(job_ids)
        await self._indexes()
        if not ids:
            return {}
        cursor = self.collection.find({"owner": owner, "job_id": {"$in": ids}})
        return {str(doc["job_id"]): doc async for doc in cursor}

    async def unsubmitted(
        self, owner: str, app: str, *, after: datetime | None, aborted: bool | None, limit: int
    ) -> list[Document]:
        await self._indexes()
        query: Document = {"owner": owner, "app": app, "job_id": None}
        if after is not None:
            query["created_at"] = {"$gt": after}
        if aborted is True:
            query["aborted_at"] = {"$ne": None}
        elif aborted is False:
            query["aborted_at"] = None
        cursor = (
            self.collection.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        )
        return [doc async for doc in cursor]

    async def update_open(self, owner: str, draft_id: str, fields: dict[str, Any]) -> bool:
        result = await self.collection.update_one(
            {**_open(owner, draft_id), "aborted_at": None}, {"$set": fields}
        )
        return bool(result.matched_count == 1)

    async def claim(
        self, owner: str, draft_id: str, now: datetime, stale_before: datetime
    ) -> Document | None:
        query: Document = {
            "_id": draft_id,
            "owner": owner,
            "job_id": None,
            "aborted_at": None,
            "$or": [{"starting_at": None}, {"starting_at": {"$lt": stale_before}}],
        }
        return await self.collection.find_one_and_update(
            query, {"$set": {"starting_at": now}}, return_document=ReturnDocument.AFTER
        )

    async def release(self, draft_id: str) -> None:
        await self.collection.update_one({"_id": draft_id, "job_id": None}, {"$set": {"starting_at": None}})

    async def attach(self, draft_id: str, job_id: str) -> None:
        await self.collection.update_one({"_id": draft_id}, {"$set": {"job_id": job_id, "starting_at": None}})

    async def remove_open(self, owner: str, draft_id: str) -> bool:
        result = await self.collection.delete_one(_open(owner, draft_id))
        return bool(result.deleted_count == 1)
