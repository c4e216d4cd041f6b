"""The ``file_usage`` collection: one document per uploaded file.

Document: ``{_id: file_id, owner, day, size_bytes, uploaded_at, deleted_at}``. Upload and
deletion are each written once (guarded on their timestamp being unset); a deletion that
overtakes its upload creates the document, and the upload then only adds its facts.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_accounting.domain.usage import day_of
from caesar_common.events import FileDeleted, FileUploaded
from caesar_common.store import Document, guarded_upsert

FILE_USAGE = "file_usage"
# ``owner`` serves the per-user report, ``deleted_at`` the bytes-stored total.
FILE_USAGE_INDEXES = [
    IndexModel([("owner", ASCENDING)], name="owner"),
    IndexModel([("deleted_at", ASCENDING)], name="deleted_at"),
]

_REPORT_FIELDS = {"owner": 1, "day": 1, "size_bytes": 1, "deleted_at": 1}


class FileUsageRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def record_upload(self, message: FileUploaded) -> bool:
        return await guarded_upsert(
            self.collection,
            {"_id": message.file_id, "uploaded_at": None},
            {
                "$set": {
                    "owner": message.owner,
                    "day": day_of(message.uploaded_at),
                    "size_bytes": message.size_bytes,
                    "uploaded_at": message.uploaded_at,
                },
                "$setOnInsert": {"deleted_at": None},
            },
        )

    async def record_deletion(self, message: FileDeleted, deleted_at: datetime) -> bool:
        return await guarded_upsert(
            self.collection,
            {"_id": message.file_id, "deleted_at": None},
            {
                "$set": {"deleted_at": deleted_at},
                "$setOnInsert": {"owner": message.owner, "size_bytes": message.size_bytes},
            },
        )

    async def of_owner(self, owner: str) -> list[Document]:
        return [d async for d in self.collection.find({"owner": owner}, _REPORT_FIELDS)]

    async def everyone(self) -> list[Document]:
        return [d async for d in self.collection.find({}, _REPORT_FIELDS)]

    async def bytes_stored(self) -> int:
        """Bytes of the files not deleted, summed by the database."""
        cursor = await self.collection.aggregate(
            [
                {"$match": {"deleted_at": None}},
                {"$group": {"_id": None, "total": {"$sum": "$size_bytes"}}},
            ]
        )
        rows = await cursor.to_list()
        return int(rows[0]["total"]) if rows else 0
