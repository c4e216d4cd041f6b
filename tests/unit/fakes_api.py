"""In-memory fakes of the api's ports (:mod:`caesar_api.service.ports`).

Each repository keeps records in a dict and the events a write would put in the
record's outbox in ``published``, in write order, so a test checks what the service
would announce without a broker. Guarded writes behave as the MongoDB ones do: they
miss when the record moved since it was read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from caesar_api.adapters.jobs_repo import position_guard
from caesar_api.adapters.pagination import Page
from caesar_api.domain.projection import ProjectedMove, position_of
from caesar_api.domain.quota import Usage
from caesar_common.events import FileDeleted, FileUploaded, JobCancelRequested, JobSubmitted, Message
from caesar_common.jobstate import HeldBefore
from caesar_common.store import Document

POSITION_FIELDS = ("_id", "owner", "attempt", "state", "retryable")


def _newest_first(docs: list[Document], time_field: str) -> list[Document]:
    return sorted(docs, key=lambda d: (d[time_field], d["_id"]), reverse=True)


def _page(docs: list[Document], time_field: str, limit: int, after: Document | None) -> Page:
    ordered = _newest_first(docs, time_field)
    if after is not None:
        key = (after[time_field], after["_id"])
        ordered = [d for d in ordered if (d[time_field], d["_id"]) < key]
    return Page([copy.deepcopy(d) for d in ordered[:limit]], more=len(ordered) > limit)


class FakeJobs:
    """The jobs read model in memory."""

    def __init__(self) -> None:
        self.records: dict[str, Document] = {}
        self.published: list[Message] = []
        self.before_write: Callable[[Document], None] | None = None
        """Called with the stored record before a guarded write (to simulate a racing writer)."""

    async def add(self, record: Document, event: JobSubmitted) -> None:
        if record["_id"] in self.records:
            raise KeyError(f"duplicate job {record['_id']}")
        self.records[record["_id"]] = {**copy.deepcopy(record), "announcement": event}
        self.published.append(event)

    async def reannounce_pending(self, announced_before: datetime, now: datetime, *, limit: int = 500) -> int:
        done = 0
        for job in list(self.records.values())[:limit]:
            last = job.get("reannounced_at") or job["submitted_at"]
            if job["state"] == "PENDING" and last <= announced_before:
                job["reannounced_at"] = now
                self.published.append(job["announcement"])
                done += 1
        return done

    async def get(self, owner: str, job_id: str) -> Document | None:
        job = self.records.get(job_id)
        return copy.deepcopy(job) if job is not None and job["owner"] == owner else None

    async def get_any(self, job_id: str) -> Document | None:
        job = self.records.get(job_id)
        return copy.deepcopy(job) if job is not None else None

    async def list(self, owner: str, limit: int, after: Document | None) -> Page:
        mine = [j for j in self.records.values() if j["owner"] == owner]
        return _page(mine, "submitted_at", limit, after)

    def _still_at(self, job: Document) -> Document | None:
        stored = self.records.get(job["_id"])
        if stored is not None and self.before_write is not None:
            self.before_write(stored)
        if stored is None or position_guard(stored) != position_guard(job):
            return None
        return stored

    async def request_cancel(self, job: Document, requested_at: datetime) -> bool:
        stored = self._still_at(job)
        if stored is None:
            return False
        stored.update(cancel_requested_at=requested_at, updated_at=requested_at)
        self.published.append(
            JobCancelRequested(job_id=job["_id"], owner=job["owner"], requested_at=requested_at)
        )
        return True

    async def move_from(self, job_id: str, owner: str, held: HeldBefore, fields: dict[str, Any]) -> bool:
        stored = self.records.get(job_id)
        if stored is None or stored["owner"] != owner or not held.matches(position_of(stored)):
            return False
        stored.update(copy.deepcopy(fields))
        return True

    async def positions(self, job_ids: Iterable[str]) -> dict[str, Document]:
        return {
            job_id: {k: v for k, v in self.records[job_id].items() if k in POSITION_FIELDS}
            for job_id in set(job_ids)
            if job_id in self.records
        }

    async def move_many(self, moves: Sequence[ProjectedMove]) -> bool:
        """As the repository: each move applies only where its guard still holds."""
        matched = 0
        for move in moves:
            stored = self.records.get(move.job_id)
            if (
                stored is not None
                and stored["owner"] == move.owner
                and position_of(stored) == move.held
                and ("retryable" in stored) == move.held_retryable_stored
            ):
                stored.update(copy.deepcopy(move.fields))
                matched += 1
        return matched == len(moves)


class FakeFiles:
    """The files collection in memory."""

    def __init__(self) -> None:
        self.records: dict[str, Document] = {}
        self.published: list[Message] = []
        self.fail_next_add: BaseException | None = None

    async def add(self, record: Document, event: FileUploaded) -> None:
        if self.fail_next_add is not None:
            exc, self.fail_next_add = self.fail_next_add, None
            raise exc
        self.records[record["_id"]] = copy.deepcopy(record)
        self.published.append(event)

    async def get(self, owner: str, file_id: str) -> Document | None:
        record = self.records.get(file_id)
        if record is None or record["owner"] != owner or record["deleted"]:
            return None
        return copy.deepcopy(record)

    async def get_any(self, file_id: str) -> Document | None:
        record = self.records.get(file_id)
        return copy.deepcopy(record) if record is not None and not record["deleted"] else None

    async def get_cursor(self, owner: str, file_id: str) -> Document | None:
        record = self.records.get(file_id)
        return copy.deepcopy(record) if record is not None and record["owner"] == owner else None

    async def list(self, owner: str, limit: int, after: Document | None) -> Page:
        live = [f for f in self.records.values() if f["owner"] == owner and not f["deleted"]]
        return _page(live, "uploaded_at", limit, after)

    async def usage(self, owner: str) -> Usage:
        live = [f for f in self.records.values() if f["owner"] == owner and not f["deleted"]]
        return Usage(files=len(live), bytes=sum(int(f["size_bytes"]) for f in live))

    async def mark_deleted(self, record: Document) -> bool:
        stored = self.records.get(record["_id"])
        if stored is None or stored["deleted"] or stored["owner"] != record["owner"]:
            return False
        stored["deleted"] = True
        self.published.append(
            FileDeleted(file_id=record["_id"], owner=record["owner"], size_bytes=record["size_bytes"])
        )
        return True


class FakeSpace:
    """Stored files as a set of paths under a root that is never touched."""

    def __init__(self, root: Path = Path("/nonexistent/caesar-fake")) -> None:
        self.root = root
        self.stored: set[Path] = set()

    def path_of(self, owner: str, file_id: str, ext: str) -> Path:
        return self.root / owner / f"{file_id}.{ext}"

    async def remove(self, owner: str, file_id: str, ext: str) -> None:
        self.stored.discard(self.path_of(owner, file_id, ext))


class FakePendingUpload:
    """An upload's temporary file, committed into a :class:`FakeSpace` or discarded."""

    def __init__(self, space: FakeSpace, size: int, *, commit_error: OSError | None = None) -> None:
        self.temp = space.root / "upload.part"
        self.size = size
        self.space = space
        self.commit_error = commit_error
        self.committed: Path | None = None
        self.discarded = False

    async def commit(self, final: Path) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.committed = final
        self.space.stored.add(final)

    async def discard(self) -> None:
        self.discarded = True
