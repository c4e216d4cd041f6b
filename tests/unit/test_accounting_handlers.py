"""Accounting's handlers and use cases against in-memory fakes (no broker, no database)."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from caesar_accounting.domain.reports import owner_report
from caesar_accounting.domain.usage import UsageChange
from caesar_accounting.handlers import HANDLERS, AccountingDeps
from caesar_accounting.service.usage import record_state, record_states_together
from caesar_api.service.projection import apply_job_state
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
from caesar_common.jobstate import TERMINAL_STATES, JobState
from caesar_common.message_router import route_by_type
from tests.unit.fakes.accounting import FakeFileUsageStore, FakeJobUsageStore
from tests.unit.fakes_api import FakeJobs
from tests.unit.test_accounting_usage import job_histories

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


async def test_a_late_true_outcome_of_a_lost_attempt_is_billed_beside_the_counted_one() -> None:
    """Issue 10's scenario: the outcome is attempt 2's; attempt 1's CPU is reported apart."""
    a = Accounting()
    app = f"fake-{new_job_id()[:8]}"
    job = new_job_id()

    def event(attempt: int, state: JobState, cpu: float, *, retryable: bool = False) -> Envelope:
        message = ended(job, app, state, attempt, retryable=retryable).model_copy(update={"cpu_s": cpu})
        return Envelope.wrap(message, "test")

    for envelope in [
        event(1, JobState.FAILURE, 5.0, retryable=True),
        event(2, JobState.SUCCESS, 3.0),
        event(1, JobState.SUCCESS, 4.0),  # the lost runner's true outcome, late
        event(2, JobState.SUCCESS, 3.0),  # and a redelivery
    ]:
        await a.send(envelope)
    doc = a.jobs.docs[job]
    assert (doc["outcome"], doc["attempt"], doc["cpu_s"]) == ("SUCCESS", 2, 3.0)
    totals = owner_report("alice", await a.jobs.of_owner("alice"), [])["totals"]
    assert (totals["cpu_s"], totals["cpu_s_lost_attempts"]) == (3.0, 4.0)
    assert (totals["attempts"], totals["lost_attempts"]) == (2, 1)
    assert sample("caesar_accounting_jobs_total", app=app, outcome="success") == 1
    assert sample("caesar_accounting_cpu_seconds_total", app=app) == 3.0


async def test_a_writer_that_loses_a_race_decides_again_on_a_fresh_read() -> None:
    jobs = FakeJobUsageStore()
    job = new_job_id()
    real_apply = jobs.apply
    raced = False

    async def racing_apply(job_id: str, owner: str, app: str, revision: int, change: UsageChange) -> bool:
        nonlocal raced
        if not raced:  # another replica writes attempt 1's provisional failure first
            raced = True
            await record_state(ended(job, "x", JobState.FAILURE, 1, retryable=True), jobs)
        return await real_apply(job_id, owner, app, revision, change)

    jobs.apply = racing_apply  # type: ignore[method-assign]
    written = await record_state(ended(job, "x", JobState.SUCCESS, 2), jobs)
    assert written is not None
    assert written.outcome is not None
    assert set(jobs.docs[job]["attempts"]) == {"1", "2"}
    assert jobs.docs[job]["rev"] == 2


def api_record(job_id: str) -> dict[str, Any]:
    """The api's read-model record of a new job, as far as its projection reads it."""
    return {"_id": job_id, "owner": "alice", "app": "x", "state": "PENDING", "attempt": 0, "retryable": False}


@settings(max_examples=150, deadline=None)
@given(history=job_histories(), data=st.data())
def test_accounting_counts_what_the_api_shows_whatever_the_delivery(
    history: list[JobStateChanged], data: st.DataObject
) -> None:
    """The api's own projection and accounting's handler, fed the same shuffled duplicates."""
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)), label="duplicates")
    delivered = data.draw(st.permutations(history + extra), label="delivered")

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        api = FakeJobs()
        api.records["j1"] = api_record("j1")
        accounting = FakeJobUsageStore()
        for message in delivered:
            await apply_job_state(api, message)
            await record_state(message, accounting)
        return api.records["j1"], accounting.docs.get("j1") or {}

    shown, counted = asyncio.run(run())
    if shown["state"] in {s.value for s in TERMINAL_STATES}:
        ran = shown.get("result_attempt") or shown["attempt"]  # a withdrawn retry: the attempt that ran
        assert (counted["outcome"], counted["attempt"]) == (shown["state"], ran)
        if shown.get("result_attempt") is None:
            assert counted["cpu_s"] == shown["cpu_s"]
    else:
        assert counted.get("outcome") is None


@settings(max_examples=100, deadline=None)
@given(history=job_histories(), data=st.data())
def test_a_batch_records_what_one_by_one_records(history: list[JobStateChanged], data: st.DataObject) -> None:
    """The same shuffled, duplicated deliveries, one by one or cut into batches: same document."""
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)), label="duplicates")
    delivered = data.draw(st.permutations(history + extra), label="delivered")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(delivered) - 1))), label="cuts"))

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        alone, together = FakeJobUsageStore(), FakeJobUsageStore()
        for message in delivered:
            await record_state(message, alone)
        bounds = [0, *cuts, len(delivered)]
        for start, end in itertools.pairwise(bounds):
            await record_states_together(delivered[start:end], together)
        return alone.docs.get("j1") or {}, together.docs.get("j1") or {}

    alone, together = asyncio.run(run())
    assert {k: v for k, v in together.items() if k != "rev"} == {k: v for k, v in alone.items() if k != "rev"}


async def test_a_batch_write_that_loses_its_race_is_recorded_one_by_one() -> None:
    jobs = FakeJobUsageStore()
    job = "j-race"
    real_apply_many = jobs.apply_many

    async def racing_apply_many(writes: Any) -> set[str]:
        # Another replica records attempt 1's provisional failure between read and write.
        await record_state(ended(job, "x", JobState.FAILURE, 1, retryable=True), jobs)
        return await real_apply_many(writes)

    jobs.apply_many = racing_apply_many  # type: ignore[method-assign]
    await record_states_together([ended(job, "x", JobState.SUCCESS, 2)], jobs)
    assert jobs.docs[job]["outcome"] == "SUCCESS"
    assert set(jobs.docs[job]["attempts"]) == {"1", "2"}
