"""Fakes of accounting's job and file usage stores."""

from __future__ import annotations

from datetime import datetime

from caesar_accounting.domain.usage import FinalOutcome, day_of
from caesar_common.events import FileDeleted, FileUploaded, JobSubmitted
from caesar_common.store import Document


class FakeJobUsageStore:
    """Submission and outcome each written once, in whichever order they arrive."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    async def get(self, job_id: str) -> Document | None:
        doc = self.docs.get(job_id)
        return dict(doc) if doc is not None else None

    async def record_submission(self, message: JobSubmitted) -> bool:
        doc = self.docs.setdefault(message.job_id, {"_id": message.job_id, "outcome": None})
        if doc.get("submitted_at") is not None:
            return False
        doc.update(
            owner=message.owner,
            app=message.app,
            day=day_of(message.submitted_at),
            submitted_at=message.submitted_at,
        )
        return True

    async def record_outcome(self, outcome: FinalOutcome) -> bool:
        doc = self.docs.setdefault(outcome.job_id, {"_id": outcome.job_id, "outcome": None})
        if doc.get("outcome") is not None:
            return False
        doc.update(owner=outcome.owner, app=outcome.app, **outcome.fields())
        return True

    async def of_owner(self, owner: str) -> list[Document]:
        return [dict(d) for d in self.docs.values() if d.get("owner") == owner]

    async def everyone(self) -> list[Document]:
        return [dict(d) for d in self.docs.values()]


class FakeFileUsageStore:
    """Upload and deletion each written once; a deletion may come first."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    async def record_upload(self, message: FileUploaded) -> bool:
        doc = self.docs.setdefault(message.file_id, {"_id": message.file_id, "deleted_at": None})
        if doc.get("uploaded_at") is not None:
            return False
        doc.update(
            owner=message.owner,
            day=day_of(message.uploaded_at),
            size_bytes=message.size_bytes,
            uploaded_at=message.uploaded_at,
        )
        return True

    async def record_deletion(self, message: FileDeleted, deleted_at: datetime) -> bool:
        doc = self.docs.get(message.file_id)
        if doc is None:
            doc = self.docs[message.file_id] = {
                "_id": message.file_id,
                "owner": message.owner,
                "size_bytes": message.size_bytes,
                "uploaded_at": None,
                "deleted_at": None,
            }
        if doc.get("deleted_at") is not None:
            return False
        doc["deleted_at"] = deleted_at
        return True

    async def of_owner(self, owner: str) -> list[Document]:
        return [dict(d) for d in self.docs.values() if d.get("owner") == owner]

    async def everyone(self) -> list[Document]:
        return [dict(d) for d in self.docs.values()]

    async def bytes_stored(self) -> int:
        return sum(int(d.get("size_bytes") or 0) for d in self.docs.values() if d.get("deleted_at") is None)
