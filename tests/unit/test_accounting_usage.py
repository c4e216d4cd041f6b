"""What accounting records: final outcomes only, once; UTC days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from caesar_accounting.domain.reports import summarise
from caesar_accounting.domain.usage import FinalOutcome, day_of, recorded_position, should_record
from caesar_common.events import JobStateChanged, OutputFile
from caesar_common.jobstate import JobPosition, JobState

T0 = datetime(2026, 5, 4, 23, 30, tzinfo=UTC)


def change(
    state: JobState, attempt: int = 1, *, retryable: bool = False, job_id: str = "j1", cpu: float = 2.0
) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id,
        owner="alice",
        app="caesar",
        attempt=attempt,
        state=state,
        retryable=retryable,
        changed_at=T0,
        elapsed_s=10.0,
        cpu_s=cpu,
        peak_rss_bytes=1000,
        outputs=[OutputFile(name="cat.json", size_bytes=300), OutputFile(name="p.png", size_bytes=200)],
    )


@pytest.mark.parametrize(
    "state", [JobState.SUCCESS, JobState.FAILURE, JobState.TIMED_OUT, JobState.CANCELED, JobState.ABORTED]
)
def test_final_outcome_is_recorded_when_nothing_is(state: JobState) -> None:
    assert should_record(change(state), None)


def test_retryable_failure_is_not_an_outcome() -> None:
    assert not should_record(change(JobState.FAILURE, retryable=True), None)


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.STARTED, JobState.RUNNING])
def test_non_terminal_states_are_not_outcomes(state: JobState) -> None:
    assert not should_record(change(state), None)


def test_recorded_outcome_is_never_replaced() -> None:
    held = recorded_position({"_id": "j1", "outcome": "SUCCESS", "attempt": 1})
    assert held == JobPosition(1, JobState.SUCCESS)
    assert not should_record(change(JobState.SUCCESS), held)  # duplicate
    assert not should_record(change(JobState.ABORTED), held)  # conflicting late event
    assert not should_record(change(JobState.SUCCESS, attempt=2), held)


def test_document_without_outcome_holds_nothing() -> None:
    assert recorded_position(None) is None
    assert recorded_position({"_id": "j1", "owner": "alice", "day": "2026-05-04"}) is None


def test_final_outcome_fields() -> None:
    outcome = FinalOutcome.of(change(JobState.SUCCESS, attempt=3))
    assert outcome.fields() == {
        "outcome": "SUCCESS",
        "attempt": 3,
        "finished_at": T0,
        "wall_s": 10.0,
        "cpu_s": 2.0,
        "peak_rss_bytes": 1000,
        "output_bytes": 500,
    }


def test_day_is_the_utc_calendar_day() -> None:
    assert day_of(T0) == "2026-05-04"
    plus_two = timezone(timedelta(hours=2))
    assert day_of(datetime(2026, 5, 5, 1, 0, tzinfo=plus_two)) == "2026-05-04"
    assert day_of(datetime(2026, 5, 5, 1, 0)) == "2026-05-05"  # naive: taken as UTC


def apply(store: dict[str, dict[str, Any]], message: JobStateChanged) -> None:
    """The handler's logic on an in-memory store: decide, then write guarded on 'unset'."""
    if not should_record(message, recorded_position(store.get(message.job_id))):
        return
    doc = store.setdefault(message.job_id, {"_id": message.job_id, "owner": "alice", "app": "caesar"})
    if doc.get("outcome") is None:
        doc.update(FinalOutcome.of(message).fields())


def test_retried_and_duplicated_events_count_each_job_once() -> None:
    store: dict[str, dict[str, Any]] = {}
    lost = change(JobState.FAILURE, 1, retryable=True, cpu=50.0)
    success = change(JobState.SUCCESS, 2, cpu=3.0)
    other = change(JobState.FAILURE, 1, job_id="j2", cpu=1.0)
    for message in [success, lost, success, other, lost, other, success]:
        apply(store, message)
    summary = summarise(store.values())
    assert (summary.njobs, summary.njobs_completed, summary.njobs_failed) == (2, 1, 1)
    assert summary.cpu_s == 4.0
    assert store["j1"]["attempt"] == 2
