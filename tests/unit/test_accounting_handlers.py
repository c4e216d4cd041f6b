"""Accounting's handlers and use cases against in-memory fakes (no broker, no database)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from caesar_accounting.handlers import HANDLERS, AccountingDeps
from caesar_common.events import (
    Envelope,
    FileDeleted,
    FileUploaded,
    InputFile,
    JobStateChanged,
    JobSubmitted,
    Message,
)
from caesar_common.ids import new_file_id, new_job_id
from caesar_common.jobstate import JobState
from caesar_common.message_router import route_by_type
from tests.unit.fakes.accounting import FakeFileUsageStore, FakeJobUsageStore

DAY1 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


class Accounting:
    def __init__(self) -> None:
        self.jobs = FakeJobUsageStore()
        self.files = FakeFileUsageStore()
        self._route = route_by_type(HANDLERS, AccountingDeps(jobs=self.jobs, files=self.files))

    async def send(self, envelope: Envelope) -> None:
        await self._route(envelope)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ended(
    job_id: str, app: str, state: JobState, attempt: int = 1, *, retryable: bool = False
) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id,
        owner="alice",
        app=app,
        attempt=attempt,
        state=state,
        retryable=retryable,
        changed_at=datetime.now(UTC),
        elapsed_s=10.0,
        cpu_s=4.0 * attempt,
    )


async def test_a_final_outcome_is_accounted_once_whatever_the_deliveries() -> None:
    a = Accounting()
    app = f"fake-{new_job_id()[:8]}"
    job = new_job_id()
    messages: list[Message] = [
        JobSubmitted(
            job_id=job,
            owner="alice",
            app=app,
            params={},
            input=InputFile(file_id="a" * 32, ext="fits"),
            wall_time_s=60,
            submitted_at=DAY1,
        ),
        ended(job, app, JobState.FAILURE, retryable=True),  # a lost attempt: not final
        ended(job, app, JobState.SUCCESS, attempt=2),
    ]
    storm = [Envelope.wrap(m, "test") for m in messages] * 3
    random.Random(3).shuffle(storm)
    for envelope in storm:
        await a.send(envelope)
    doc = a.jobs.docs[job]
    assert (doc["outcome"], doc["attempt"], doc["cpu_s"], doc["day"]) == ("SUCCESS", 2, 8.0, "2026-05-04")
    assert sample("caesar_accounting_jobs_total", app=app, outcome="success") == 1
    assert sample("caesar_accounting_jobs_total", app=app, outcome="failure") == 0
    assert sample("caesar_accounting_cpu_seconds_total", app=app) == 8.0


async def test_bytes_stored_follows_uploads_and_deletions_in_any_order() -> None:
    a = Accounting()
    kept, removed = new_file_id(), new_file_id()

    def upload(file_id: str, size: int) -> FileUploaded:
        return FileUploaded(
            file_id=file_id,
            owner="alice",
            filename="x.fits",
            ext="fits",
            size_bytes=size,
            sha256="0" * 64,
            uploaded_at=DAY1,
        )

    await a.send(Envelope.wrap(FileDeleted(file_id=removed, owner="alice", size_bytes=500), "test"))
    await a.send(Envelope.wrap(upload(kept, 1000), "test"))
    await a.send(Envelope.wrap(upload(removed, 500), "test"))
    assert sample("caesar_accounting_bytes_stored") == 1000
    assert a.files.docs[removed]["deleted_at"] is not None
    assert a.files.docs[removed]["uploaded_at"] == DAY1
