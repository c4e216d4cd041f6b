"""The timeline projection: entries, forward-only position, per-attempt facts, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caesar_common.events import InputFile, JobCancelRequested, JobStateChanged, JobSubmitted
from caesar_common.jobstate import JobState
from caesar_monitor.domain.timeline import (
    PUBLIC_FIELDS,
    Entry,
    Progress,
    Step,
    advance,
    cancel_entry,
    entry_sort_key,
    ordered,
    refresh,
    state_entry,
    submitted_entry,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
JOB = "2f1b4c1e-8a3d-4f6e-9b1a-0c2d3e4f5a6b"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def change(
    state: JobState,
    t: float,
    attempt: int = 1,
    *,
    runner: str = "",
    retryable: bool = False,
    elapsed_s: float | None = None,
) -> JobStateChanged:
    return JobStateChanged(
        job_id=JOB,
        owner="alice",
        app="caesar",
        attempt=attempt,
        state=state,
        changed_at=at(t),
        runner_id=runner,
        pool="local" if runner else "",
        retryable=retryable,
        elapsed_s=elapsed_s,
    )


def submitted(t: float = 0) -> JobSubmitted:
    return JobSubmitted(
        job_id=JOB,
        owner="alice",
        app="caesar",
        params={},
        input=InputFile(file_id="a" * 32, ext="fits"),
        wall_time_s=600,
        submitted_at=at(t),
    )


Event = tuple[str, Entry, Step | None]


def history() -> list[Event]:
    """A job whose runner was lost on attempt 1 and that succeeded on attempt 2."""
    steps = [
        change(JobState.QUEUED, 1),
        change(JobState.STARTED, 3, runner="r1"),
        change(JobState.RUNNING, 4, runner="r1"),
        change(JobState.FAILURE, 40, runner="r1", retryable=True),
        change(JobState.QUEUED, 45, attempt=2),
        change(JobState.STARTED, 50, attempt=2, runner="r2"),
        change(JobState.RUNNING, 51, attempt=2, runner="r2"),
        change(JobState.SUCCESS, 80, attempt=2, runner="r2", elapsed_s=29),
    ]
    events: list[Event] = [("e0", submitted_entry("e0", submitted()), Step.submission(submitted()))]
    events += [(f"e{i + 1}", state_entry(f"e{i + 1}", m), Step.of(m)) for i, m in enumerate(steps)]
    cancel = JobCancelRequested(job_id=JOB, owner="alice", requested_at=at(60))
    events.append(("c1", cancel_entry("c1", cancel), None))
    return events


def project(events: list[Event]) -> dict[str, Any]:
    """What the handlers do to one timeline document, without the database."""
    doc: dict[str, Any] = {"events": []}
    for event_id, entry, step in events:
        if all(e["event_id"] != event_id for e in doc["events"]):
            doc["events"] = sorted([*doc["events"], entry], key=entry_sort_key)
        if step is None:
            continue
        held = Progress.of(doc)
        moved = advance(held, step, doc["events"])
        if moved is not None:
            doc.update(moved.fields)
        else:
            doc.update(refresh(held, doc["events"]) or {})
    return doc


def test_in_order_history_ends_in_the_last_attempt() -> None:
    doc = project(history())
    assert (doc["state"], doc["attempt"], doc["retryable"]) == ("SUCCESS", 2, False)
    assert doc["queued_at"] == at(45)
    assert doc["started_at"] == at(50)
    assert (doc["runner_id"], doc["pool"]) == ("r2", "local")
    assert doc["last_change"] == at(80)
    assert [e["event_id"] for e in doc["events"]] == [f"e{i}" for i in range(8)] + ["c1", "e8"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_order_with_duplicates_gives_the_in_order_timeline(data: st.DataObject) -> None:
    events = history()
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=6))
    shuffled = data.draw(st.permutations(events + dupes))
    assert project(list(shuffled)) == project(events)


def test_duplicate_step_does_not_move() -> None:
    m = change(JobState.QUEUED, 1)
    entries = [state_entry("e1", m)]
    first = advance(Progress(None, {}), Step.of(m), entries)
    assert first is not None
    held = Progress.of(first.fields)
    assert advance(held, Step.of(m), entries) is None


def test_queue_wait_completed_by_first_start_only() -> None:
    queued, started, running = (
        change(JobState.QUEUED, 1),
        change(JobState.STARTED, 4, runner="r1"),
        change(JobState.RUNNING, 6, runner="r1"),
    )
    entries = [state_entry("q", queued), state_entry("s", started)]
    held = Progress.of({"state": "QUEUED", "attempt": 1, "queued_at": at(1)})
    to_started = advance(held, Step.of(started), entries)
    assert to_started is not None
    assert to_started.queue_wait_s == 3.0
    assert to_started.fields["started_at"] == at(4)
    entries.append(state_entry("r", running))
    to_running = advance(Progress.of(to_started.fields), Step.of(running), entries)
    assert to_running is not None
    assert to_running.queue_wait_s is None
    assert to_running.fields["started_at"] == at(4)


def test_running_without_started_completes_the_queue_wait() -> None:
    queued, running = change(JobState.QUEUED, 1), change(JobState.RUNNING, 5, runner="r1")
    entries = [state_entry("q", queued), state_entry("r", running)]
    held = Progress.of({"state": "QUEUED", "attempt": 1})
    moved = advance(held, Step.of(running), entries)
    assert moved is not None
    assert moved.queue_wait_s == 4.0
    assert moved.fields["started_at"] == at(5)


def test_run_time_from_start_of_the_attempt() -> None:
    started, done = change(JobState.STARTED, 10, runner="r1"), change(JobState.SUCCESS, 25)
    entries = [state_entry("s", started), state_entry("d", done)]
    held = Progress.of({"state": "STARTED", "attempt": 1, "started_at": at(10)})
    moved = advance(held, Step.of(done), entries)
    assert moved is not None
    assert (moved.run_s, moved.queue_wait_s) == (15.0, None)
    assert moved.fields["runner_id"] == "r1"


def test_run_time_falls_back_to_runner_elapsed_when_start_unseen() -> None:
    done = change(JobState.FAILURE, 25, elapsed_s=7.5)
    moved = advance(Progress(None, {}), Step.of(done), [state_entry("d", done)])
    assert moved is not None
    assert moved.run_s == 7.5


def test_cancel_before_start_has_no_durations() -> None:
    queued, canceled = change(JobState.QUEUED, 1), change(JobState.CANCELED, 2)
    entries = [state_entry("q", queued), state_entry("c", canceled)]
    moved = advance(Progress.of({"state": "QUEUED", "attempt": 1}), Step.of(canceled), entries)
    assert moved is not None
    assert (moved.run_s, moved.queue_wait_s) == (None, None)


def test_late_start_after_terminal_fills_in_the_facts_without_moving() -> None:
    done, started = change(JobState.SUCCESS, 20), change(JobState.STARTED, 5, runner="r1")
    first = advance(Progress(None, {}), Step.of(done), [state_entry("d", done)])
    assert first is not None
    assert first.fields["started_at"] is None
    held = Progress.of(first.fields)
    entries = [state_entry("d", done), state_entry("s", started)]
    assert advance(held, Step.of(started), entries) is None
    facts = refresh(held, entries)
    assert facts is not None
    assert (facts["started_at"], facts["runner_id"]) == (at(5), "r1")
    assert refresh(Progress.of({**first.fields, **facts}), entries) is None


def test_new_attempt_forgets_the_previous_runner() -> None:
    lost = change(JobState.FAILURE, 30, runner="r1", retryable=True)
    requeued = change(JobState.QUEUED, 35, attempt=2)
    entries = [state_entry("s", change(JobState.STARTED, 3, runner="r1")), state_entry("f", lost)]
    held = Progress.of(
        {"state": "FAILURE", "attempt": 1, "retryable": True, "runner_id": "r1", "started_at": at(3)}
    )
    moved = advance(held, Step.of(requeued), [*entries, state_entry("q", requeued)])
    assert moved is not None
    assert moved.fields["attempt"] == 2
    assert (moved.fields["runner_id"], moved.fields["started_at"]) == ("", None)
    assert moved.fields["queued_at"] == at(35)


def test_final_state_is_absorbing() -> None:
    held = Progress.of({"state": "SUCCESS", "attempt": 1})
    for late in (change(JobState.RUNNING, 99, attempt=2), change(JobState.FAILURE, 99, retryable=True)):
        assert advance(held, Step.of(late), [state_entry("x", late)]) is None


def test_a_withdrawn_retrys_closing_event_moves_a_final_timeline() -> None:
    """Attempt 1's true outcome came first; the scheduler's closing of attempt 2 follows."""
    held = Progress.of({"state": "SUCCESS", "attempt": 1})
    closing = change(JobState.SUCCESS, 99, attempt=2)
    moved = advance(held, Step.of(closing), [state_entry("x", closing)])
    assert moved is not None
    assert (moved.fields["attempt"], moved.fields["state"]) == (2, "SUCCESS")


def test_ordered_entries_show_public_fields_only() -> None:
    a = state_entry("b", change(JobState.RUNNING, 2, runner="r1"))
    b = state_entry("a", change(JobState.STARTED, 2, runner="r1"))
    c = submitted_entry("z", submitted(0))
    out = ordered([a, b, c])
    assert [e["event_id"] for e in out] == ["z", "a", "b"]  # same time: by rank
    assert all(tuple(e) == PUBLIC_FIELDS for e in out)
