"""Fakes of accounting's job and file usage stores."""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from datetime import datetime

from caesar_accounting.domain.usage import BatchedWrite, UsageChange, day_of
from caesar_common.events import FileDeleted, FileUploaded, JobSubmitted
from caesar_common.store import Document


def with_change(doc: Document | None, change: UsageChange, job_id: str) -> Document:
    """``doc`` after MongoDB's ``$set`` of ``change.fields()``."""
    new: Document = copy.deepcopy(doc) if doc is not None else {"_id": job_id}
    new.update(copy.deepcopy(change.fields()))
    return new


class FakeJobUsageStore:
    """Submission written once; state changes compare-and-set on ``rev``, as in MongoDB."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    async def get(self, job_id: str) -> Document | None:
        doc = self.docs.get(job_id)
        return copy.deepcopy(doc) if doc is not None else None

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

    async def get_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        return {j: copy.deepcopy(self.docs[j]) for j in job_ids if j in self.docs}

    async def record_submissions(self, messages: Sequence[JobSubmitted]) -> int:
        return sum([await self.record_submission(m) for m in messages])

    async def apply_many(self, writes: Sequence[BatchedWrite]) -> set[str]:
        lost = set()
        for w in writes:
            doc = self.docs.get(w.job_id)
            if int((doc or {}).get("rev") or 0) != w.revision:
                lost.add(w.job_id)
                continue
            new = copy.deepcopy(doc) if doc is not None else {"_id": w.job_id}
            new.update(copy.deepcopy(w.fields))
            self.docs[w.job_id] = {**new, "owner": w.owner, "app": w.app, "rev": w.revision + w.steps}
        return lost

    async def apply(self, job_id: str, owner: str, app: str, revision: int, change: UsageChange) -> bool:
        doc = self.docs.get(job_id)
        if int((doc or {}).get("rev") or 0) != revision:
            return False
        self.docs[job_id] = {
            **with_change(doc, change, job_id),
            "owner": owner,
            "app": app,
            "rev": revision + 1,
        }
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
