"""What a stream sends, replayed or live: the plan of a resume, and one order per stream (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from caesar_api.domain.projection import plan_moves
from caesar_api.push.domain.resume import (
    Sequencer,
    StateEvent,
    history_events,
    is_shown,
    job_replay,
    user_frame,
    user_replay,
    user_replay_since,
)
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JOB = "0f0e0d0c-0b0a-4000-8000-000000000001"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entry(state: str, attempt: int, applied_s: float) -> dict[str, Any]:
    return {
        "state": state,
        "attempt": attempt,
        "changed_at": at(applied_s - 0.5),
        "applied_at": at(applied_s),
    }


def record(history: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    last = history[-1] if history else {"state": "PENDING", "attempt": 0, "applied_at": None}
    return {
        "_id": JOB,
        "owner": "alice",
        "state": last["state"],
        "attempt": last["attempt"],
        "submitted_at": T0,
        "updated_at": at(100),
        "applied_at": last["applied_at"],
        "history": history,
        **extra,
    }


def event(state: JobState, attempt: int = 1, *, job_id: str = JOB) -> StateEvent:
    return StateEvent(job_id, "alice", attempt, state, T0, T0)


HISTORY = [
    entry("QUEUED", 1, 1),
    entry("STARTED", 1, 2),
    entry("RUNNING", 1, 3),
    entry("SUCCESS", 1, 4),
]


def states(events: list[StateEvent]) -> list[str]:
    return [f"{e.attempt}.{e.state.value}" for e in events]


def test_a_fresh_per_job_stream_starts_with_the_current_state() -> None:
    assert states(job_replay(record(HISTORY[:2]), None)) == ["1.STARTED"]
    assert states(job_replay(record([]), None)) == ["0.PENDING"]


def test_a_resume_replays_exactly_the_history_after_the_given_position() -> None:
    replay = job_replay(record(HISTORY), JobPosition(1, JobState.STARTED))
    assert states(replay) == ["1.RUNNING", "1.SUCCESS"]
    assert job_replay(record(HISTORY), JobPosition(1, JobState.SUCCESS)) == []


def test_a_resume_across_attempts_replays_the_retry() -> None:
    history = [entry("QUEUED", 1, 1), entry("RUNNING", 1, 2), entry("QUEUED", 2, 3), entry("RUNNING", 2, 4)]
    assert states(job_replay(record(history), JobPosition(1, JobState.RUNNING))) == ["2.QUEUED", "2.RUNNING"]


def test_a_record_without_history_still_brings_the_client_to_the_current_state() -> None:
    legacy = {**record([]), "state": "RUNNING", "attempt": 1, "history": None}
    assert states(job_replay(legacy, JobPosition(1, JobState.QUEUED))) == ["1.RUNNING"]


def test_the_sequencer_drops_duplicates_late_events_and_what_the_client_has() -> None:
    sequencer = Sequencer()
    sequencer.seed(JOB, JobPosition(1, JobState.STARTED))
    sent = [
        e
        for e in [
            event(JobState.QUEUED),  # late
            event(JobState.STARTED),  # the client has it
            event(JobState.RUNNING),
            event(JobState.RUNNING),  # duplicate
            event(JobState.STARTED),  # late
            event(JobState.SUCCESS),
            event(JobState.RUNNING, attempt=2),  # after a final state: nothing moves
        ]
        if sequencer.admit(e)
    ]
    assert states(sent) == ["1.RUNNING", "1.SUCCESS"]


def test_the_sequencer_keeps_one_order_per_job() -> None:
    other = "0f0e0d0c-0b0a-4000-8000-000000000002"
    sequencer = Sequencer()
    assert sequencer.admit(event(JobState.RUNNING))
    assert sequencer.admit(event(JobState.QUEUED, job_id=other))
    assert not sequencer.admit(event(JobState.QUEUED))


def test_the_sequencer_forgets_the_oldest_jobs_beyond_its_bound() -> None:
    sequencer = Sequencer(max_jobs=2)
    ids = [f"0f0e0d0c-0b0a-4000-8000-00000000000{i}" for i in range(3)]
    for job_id in ids:
        assert sequencer.admit(event(JobState.RUNNING, job_id=job_id))
    # The first was forgotten: a duplicate of it is sent again (twice, never lost).
    assert sequencer.admit(event(JobState.RUNNING, job_id=ids[0]))
    assert not sequencer.admit(event(JobState.RUNNING, job_id=ids[2]))


def test_provisional_failures_are_never_shown() -> None:
    base: dict[str, Any] = {"job_id": JOB, "owner": "alice", "app": "trivial", "attempt": 1, "changed_at": T0}
    assert not is_shown(JobStateChanged(**base, state=JobState.FAILURE, retryable=True))
    assert is_shown(JobStateChanged(**base, state=JobState.FAILURE))
    assert is_shown(JobStateChanged(**base, state=JobState.RUNNING, retryable=True))


def test_the_per_user_replay_takes_what_was_applied_since_the_cutoff_with_non_decreasing_ids() -> None:
    second = "0f0e0d0c-0b0a-4000-8000-000000000002"
    jobs = [
        record(HISTORY),  # applied at 1..4
        {**record([entry("QUEUED", 1, 2.5), entry("RUNNING", 1, 5)]), "_id": second},
    ]
    replayed = list(user_replay(jobs, at(3)))
    assert [(e.job_id, e.state.value) for e in replayed] == [
        (JOB, "RUNNING"),
        (JOB, "SUCCESS"),
        (second, "RUNNING"),
    ]
    stamps = [e.stamp for e in replayed]
    assert stamps == sorted(stamps)
    # A client cut off after any of them resumes no later than each job's last change.
    assert stamps == [at(4), at(4), at(5)]


def test_the_cutoff_is_the_last_id_less_the_margin() -> None:
    assert user_replay_since(at(60), timedelta(seconds=30)) == at(30)


def test_the_per_user_frame_carries_the_job_state_attempt_and_time() -> None:
    frame = user_frame(StateEvent(JOB, "alice", 2, JobState.TIMED_OUT, at(1), at(2))).decode()
    lines = frame.splitlines()
    assert lines[0] == f"id: {(at(2) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)}"
    assert lines[1] == "event: state"
    data = json.loads(lines[2].removeprefix("data: "))
    assert data == {"job_id": JOB, "state": "TIMED-OUT", "attempt": 2, "at": "2026-11-30T12:00:01.000+00:00"}


def test_the_projection_plans_one_history_entry_per_applied_event() -> None:
    records = {JOB: {"_id": JOB, "owner": "alice", "attempt": 0, "state": "PENDING"}}
    base: dict[str, Any] = {"job_id": JOB, "owner": "alice", "app": "trivial", "attempt": 1}
    events = [
        JobStateChanged(**base, state=JobState.QUEUED, changed_at=at(1)),
        JobStateChanged(**base, state=JobState.QUEUED, changed_at=at(1)),  # duplicate: not applied
        JobStateChanged(**base, state=JobState.FAILURE, retryable=True, changed_at=at(2)),  # provisional
        JobStateChanged(**base, state=JobState.RUNNING, changed_at=at(3)),
    ]
    (move,) = plan_moves(records, events)
    assert move.history == [
        {"state": "QUEUED", "attempt": 1, "changed_at": at(1)},
        {"state": "RUNNING", "attempt": 1, "changed_at": at(3)},
    ]
    # What the repository then stores, stamped, replays as the same states.
    stored = record([{**e, "applied_at": at(4)} for e in move.history])
    assert states(history_events(stored)) == ["1.QUEUED", "1.RUNNING"]
