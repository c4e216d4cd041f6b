"""The ``files`` collection: one document per upload, with its outbox.

Document: ``{_id: file_id, owner, filename_orig, ext, size_bytes, sha256, tag,
uploaded_at, fits, deleted, deleted_at}`` plus ``outbox``/``outbox_pending``. Every
query filters on the owner, so one user can never reach another's files; a deleted
file's record stays (marked) so the ``FileDeleted`` event and the history survive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_api.adapters.pagination import Page, after_filter
from caesar_api.domain.quota import Usage
from caesar_common.events import Envelope, FileDeleted, FileUploaded
from caesar_common.outbox import OutboxRelay, envelope_for, merge_updates, outbox_fields, outbox_update
from caesar_common.store import BY_ID, Document

FILES_INDEXES: list[IndexModel] = [
    # GET /fileids: the owner's live files, newest first, cursor on (uploaded_at, _id).
    IndexModel(
        [("owner", ASCENDING), ("deleted", ASCENDING), ("uploaded_at", DESCENDING), ("_id", DESCENDING)],
        name="owner_live_newest",
    ),
]


class FilesRepository:
    """Reads and writes of file records; events go out through the outbox."""

    def __init__(
        self, collection: AsyncCollection[Document], source: str = "api", relay: OutboxRelay | None = None
    ) -> None:
        self.collection = collection
        self._source = source
        self._relay = relay

    def _publish_soon(self, doc_id: str, envelope: Envelope) -> None:
        """Hand a record's fresh event to the relay (the periodic sweep is the fallback)."""
        if self._relay is not None:
            self._relay.kick(self.collection, doc_id, [envelope])

    async def add(self, record: Document, event: FileUploaded) -> None:
        """Insert a new file record together with its ``FileUploaded`` event."""
        envelope = envelope_for(event, self._source)
        await self.collection.insert_one({**record, **outbox_fields([envelope])})
        self._publish_soon(record["_id"], envelope)

    async def get(self, owner: str, file_id: str) -> Document | None:
        """The owner's live (not deleted) file, or ``None``."""
        # By _id alone, then the rest (see JobsRepository.get: no scan of the owner's files).
        doc = await self.collection.find_one({"_id": file_id})
        return doc if doc is not None and doc.get("owner") == owner and doc.get("deleted") is False else None

    async def get_any(self, file_id: str) -> Document | None:
        """A live file whoever owns it (admins only; callers check the role)."""
        doc = await self.collection.find_one({"_id": file_id})
        return doc if doc is not None and doc.get("deleted") is False else None

    async def get_cursor(self, owner: str, file_id: str) -> Document | None:
        """The owner's file named by a list cursor, deleted or not (pages go on past it)."""
        doc = await self.collection.find_one({"_id": file_id}, {"outbox": 0})
        return doc if doc is not None and doc.get("owner") == owner else None

    async def list(self, owner: str, limit: int, after: Document | None) -> Page:
        """One page of the owner's live files, newest first."""
        query: Document = {"owner": owner, "deleted": False}
        if after is not None:
            query.update(after_filter("uploaded_at", after))
        cursor = (
            self.collection.find(query, {"outbox": 0})
            .sort([("uploaded_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def stream_live(self, owner: str, batch_size: int) -> AsyncIterator[Document]:
        """Every live file of the owner, newest first, from one cursor read ``batch_size`` at a time."""
        cursor = (
            self.collection.find({"owner": owner, "deleted": False}, {"outbox": 0})
            .sort([("uploaded_at", DESCENDING), ("_id", DESCENDING)])
            .batch_size(batch_size)
        )
        try:
            async for doc in cursor:
                yield doc
        finally:
            await cursor.close()

    async def usage(self, owner: str) -> Usage:
        """Count and total size of the owner's live files, summed by the database.

        Read at each upload rather than kept as a counter: it cannot drift from the
        records (a crash between a write and a counter update), and the owner's index
        bounds it to that owner's files.
        """
        pipeline: list[Document] = [
            {"$match": {"owner": owner, "deleted": False}},
            {"$group": {"_id": None, "files": {"$sum": 1}, "bytes": {"$sum": "$size_bytes"}}},
        ]
        cursor = await self.collection.aggregate(pipeline)
        totals = [doc async for doc in cursor]
        if not totals:
            return Usage(files=0, bytes=0)
        return Usage(files=int(totals[0]["files"]), bytes=int(totals[0]["bytes"]))

    async def mark_deleted(self, record: Document) -> bool:
        """Mark a live file deleted and queue ``FileDeleted`` in one update.

        Returns ``False`` if it was deleted meanwhile (the guard on ``deleted`` makes a
        double delete emit one event only).
        """
        event = FileDeleted(file_id=record["_id"], owner=record["owner"], size_bytes=record["size_bytes"])
        envelope = envelope_for(event, self._source)
        update = merge_updates(
            {"$set": {"deleted": True, "deleted_at": datetime.now(UTC)}},
            outbox_update([envelope]),
        )
        result = await self.collection.update_one(
            {"_id": record["_id"], "owner": record["owner"], "deleted": False}, update, hint=BY_ID
        )
        if result.modified_count != 1:
            return False
        self._publish_soon(record["_id"], envelope)
        return True
