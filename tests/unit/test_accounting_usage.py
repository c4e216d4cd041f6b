"""What accounting records (pure): the api's outcome, once; each attempt's usage, once; UTC days."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caesar_accounting.domain.reports import summarise
from caesar_accounting.domain.usage import (
    AttemptUsage,
    FinalOutcome,
    day_of,
    held_attempts,
    held_position,
    merge_attempt,
    moves_job,
    plan_change,
    recorded_position,
)
from caesar_common.events import JobStateChanged, OutputFile
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes
from caesar_common.store import Document
from tests.unit.fakes.accounting import with_change

T0 = datetime(2026, 5, 4, 23, 30, tzinfo=UTC)
S = JobState
FINAL_STATES = [S.SUCCESS, S.FAILURE, S.TIMED_OUT, S.CANCELED, S.ABORTED]


def change(
    state: JobState,
    attempt: int = 1,
    *,
    retryable: bool = False,
    job_id: str = "j1",
    cpu: float | None = 2.0,
    wall: float | None = 10.0,
) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id,
        owner="alice",
        app="caesar",
        attempt=attempt,
        state=state,
        retryable=retryable,
        changed_at=T0,
        elapsed_s=wall,
        cpu_s=cpu,
        peak_rss_bytes=1000,
        outputs=[OutputFile(name="cat.json", size_bytes=300), OutputFile(name="p.png", size_bytes=200)],
    )


def account(
    messages: Iterable[JobStateChanged], docs: dict[str, Document] | None = None
) -> dict[str, Document]:
    """The use case's logic on an in-memory store: decide from the document, then write."""
    docs = {} if docs is None else docs
    for message in messages:
        doc = docs.get(message.job_id)
        planned = plan_change(doc, message)
        if planned is not None:
            docs[message.job_id] = with_change(doc, planned, message.job_id)
    return docs


def api_shows(messages: Iterable[JobStateChanged]) -> JobPosition:
    """The api's projection, written out from ``caesar_common.jobstate`` (record: PENDING, 0)."""
    held = JobPosition(0, S.PENDING)
    for message in messages:
        if message.retryable and is_terminal(message.state):
            continue
        if supersedes(message.position, held):
            held = message.position
    return held


# -- the outcome: the api's rule ------------------------------------------------------


@pytest.mark.parametrize("state", FINAL_STATES)
def test_a_final_state_is_the_outcome_when_nothing_is_held(state: JobState) -> None:
    planned = plan_change(None, change(state))
    assert planned is not None
    assert planned.outcome is not None
    assert planned.outcome.position == JobPosition(1, state)


def test_a_retryable_failure_is_usage_but_not_an_outcome() -> None:
    planned = plan_change(None, change(S.FAILURE, retryable=True, cpu=5.0))
    assert planned is not None
    assert planned.outcome is None
    assert planned.position is None
    assert planned.attempt == AttemptUsage(1, S.FAILURE, True, 5.0, 10.0)


@pytest.mark.parametrize("state", [S.QUEUED, S.STARTED, S.RUNNING])
def test_non_terminal_states_move_the_position_only(state: JobState) -> None:
    planned = plan_change(None, change(state))
    assert planned is not None
    assert (planned.position, planned.attempt, planned.outcome) == (JobPosition(1, state), None, None)


def test_moves_job_is_the_api_rule() -> None:
    assert not moves_job(change(S.FAILURE, retryable=True), JobPosition(1, S.RUNNING))
    assert moves_job(change(S.SUCCESS), JobPosition(1, S.RUNNING))
    assert not moves_job(change(S.RUNNING), JobPosition(1, S.SUCCESS))  # final is absorbing
    assert not moves_job(change(S.SUCCESS, attempt=1), JobPosition(2, S.QUEUED))  # late


def test_a_late_success_of_attempt_1_is_not_counted_over_attempt_2s_failure() -> None:
    """The bug of issue 10: the api shows attempt 2's FAILURE; so must accounting."""
    events = [
        change(S.RUNNING, 1),
        change(S.FAILURE, 1, retryable=True, cpu=5.0),
        change(S.QUEUED, 2),
        change(S.SUCCESS, 1, cpu=4.0),  # the lost runner's true outcome, too late
        change(S.RUNNING, 2),
        change(S.FAILURE, 2, cpu=3.0),
    ]
    doc = account(events)["j1"]
    assert (doc["outcome"], doc["attempt"], doc["cpu_s"]) == ("FAILURE", 2, 3.0)
    assert api_shows(events) == JobPosition(2, S.FAILURE)
    assert held_attempts(doc) == {
        1: AttemptUsage(1, S.SUCCESS, False, 4.0, 10.0),
        2: AttemptUsage(2, S.FAILURE, False, 3.0, 10.0),
    }


def withdrawn(state: S = S.SUCCESS) -> JobStateChanged:
    """The scheduler closing attempt 2 (never started) with attempt 1's late true outcome."""
    closing = change(state, 2, cpu=None, wall=None)
    return closing.model_copy(update={"result_attempt": 1})


@pytest.mark.parametrize("true_outcome_first", [True, False])
def test_a_withdrawn_retry_counts_the_attempt_that_ran_once(true_outcome_first: bool) -> None:
    """Whichever order the true outcome and the retry's queuing arrive in, attempt 1 is
    the counted one, with its own figures, and attempt 2 (which never ran) bills nothing."""
    lost, true_outcome, retry = (
        change(S.FAILURE, 1, retryable=True),
        change(S.SUCCESS, 1, cpu=4.0),
        change(S.QUEUED, 2, cpu=None, wall=None),
    )
    order = [lost, true_outcome, retry] if true_outcome_first else [lost, retry, true_outcome]
    events = [*order, withdrawn()]
    doc = account(events)["j1"]
    assert (doc["outcome"], doc["attempt"], doc["position"]["attempt"]) == ("SUCCESS", 1, 2)
    assert sorted(doc["attempts"]) == ["1"]
    assert api_shows(events) == JobPosition(2, S.SUCCESS)
    report = summarise([doc])
    assert (report.njobs_completed, report.cpu_s, report.lost_attempts) == (1, 4.0, 0)


def test_a_recorded_outcome_is_never_replaced() -> None:
    docs = account([change(S.SUCCESS)])
    for late in [change(S.SUCCESS), change(S.ABORTED, cpu=None), change(S.RUNNING, 2)]:
        planned = plan_change(docs["j1"], late)
        assert planned is None or (planned.outcome is None and planned.position is None)
    # A withdrawn retry's closing event moves the position, but counts nothing again.
    planned = plan_change(docs["j1"], withdrawn())
    assert planned is not None
    assert planned.outcome is None
    assert planned.position == JobPosition(2, S.SUCCESS)


def test_documents_from_before_attempts_were_kept() -> None:
    legacy = {"_id": "j1", "owner": "alice", "outcome": "SUCCESS", "attempt": 2, "cpu_s": 3.0}
    assert held_position(legacy) == recorded_position(legacy) == JobPosition(2, S.SUCCESS)
    assert held_attempts(legacy) == {}
    assert held_position({"_id": "j1", "owner": "alice", "day": "2026-05-04"}) is None
    planned = plan_change(legacy, change(S.FAILURE, 1, retryable=True, cpu=5.0))
    assert planned is not None
    assert planned.outcome is None
    assert planned.position is None


# -- usage per attempt ----------------------------------------------------------------


def test_the_attempts_true_outcome_replaces_a_provisional_verdict_in_either_order() -> None:
    lost = change(S.FAILURE, retryable=True, cpu=5.0, wall=None)
    true = change(S.SUCCESS, cpu=4.0, wall=8.0)
    forward = merge_attempt(merge_attempt(None, lost), true)
    backward = merge_attempt(None, true)
    assert merge_attempt(backward, lost) is None
    assert forward == backward == AttemptUsage(1, S.SUCCESS, False, 4.0, 8.0)


def test_a_closing_abort_that_measured_nothing_keeps_the_provisional_figures() -> None:
    lost = change(S.FAILURE, retryable=True, cpu=5.0, wall=9.0)
    closed = change(S.ABORTED, cpu=None, wall=None)
    expected = AttemptUsage(1, S.ABORTED, False, 5.0, 9.0)
    assert merge_attempt(merge_attempt(None, lost), closed) == expected
    assert merge_attempt(merge_attempt(None, closed), lost) == expected


def test_duplicates_and_non_terminal_events_change_no_attempt() -> None:
    held = merge_attempt(None, change(S.SUCCESS))
    assert merge_attempt(held, change(S.SUCCESS)) is None
    assert merge_attempt(held, change(S.RUNNING)) is None


def test_final_outcome_fields() -> None:
    outcome = FinalOutcome.of(change(S.SUCCESS, attempt=3))
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


def test_retried_and_duplicated_events_count_each_job_once() -> None:
    lost = change(S.FAILURE, 1, retryable=True, cpu=50.0)
    success = change(S.SUCCESS, 2, cpu=3.0)
    other = change(S.FAILURE, 1, job_id="j2", cpu=1.0)
    docs = account([success, lost, success, other, lost, other, success])
    summary = summarise(docs.values())
    assert (summary.njobs, summary.njobs_completed, summary.njobs_failed) == (2, 1, 1)
    assert summary.cpu_s == 4.0
    assert (summary.attempts, summary.lost_attempts, summary.cpu_s_lost_attempts) == (3, 1, 50.0)
    assert docs["j1"]["attempt"] == 2


# -- the property: any order, any duplicates ------------------------------------------

_CPU = st.one_of(st.none(), st.integers(1, 50).map(float))


@st.composite
def job_histories(draw: st.DrawFn) -> list[JobStateChanged]:
    """One job's events, as the producers emit them.

    Attempts before the last were lost with their runner: the monitor's provisional
    failure, and sometimes the runner's own report of the attempt superseded by its retry
    (also provisional, with the attempt's figures). The last attempt ends final, is
    closed after a provisional failure, is still provisional, or (from the second on) is
    a retry withdrawn before it started: the previous attempt's true outcome turned up
    and the scheduler closed the retry's attempt with it. Every attempt has at most one
    final verdict.
    """
    attempts = draw(st.integers(1, 3))
    events: list[JobStateChanged] = []
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        endings = ["final", "closed", "provisional", *(["withdrawn"] if attempt > 1 else [])]
        ending = draw(st.sampled_from(endings if last else ["lost", "lost+superseded"]))
        if ending == "withdrawn":
            outcome = draw(st.sampled_from(FINAL_STATES))
            events.append(change(S.QUEUED, attempt, cpu=None, wall=None))
            events.append(change(outcome, attempt - 1, cpu=draw(_CPU), wall=draw(_CPU)))
            closing = change(outcome, attempt, cpu=None, wall=None)
            events.append(closing.model_copy(update={"result_attempt": attempt - 1}))
            break
        progress = [S.QUEUED, S.STARTED, S.RUNNING][: draw(st.integers(0, 3))]
        events += [change(state, attempt, cpu=None, wall=None) for state in progress]
        if ending == "lost+superseded":
            events.append(change(S.FAILURE, attempt, retryable=True, cpu=None, wall=None))
            events.append(change(S.FAILURE, attempt, retryable=True, cpu=draw(_CPU), wall=draw(_CPU)))
            continue
        if ending != "final":
            events.append(change(S.FAILURE, attempt, retryable=True, cpu=draw(_CPU), wall=draw(_CPU)))
        if ending == "final":
            events.append(
                change(draw(st.sampled_from(FINAL_STATES)), attempt, cpu=draw(_CPU), wall=draw(_CPU))
            )
        elif ending == "closed":
            events.append(change(S.ABORTED, attempt, cpu=None, wall=None))
    return events


def expected_attempts(events: list[JobStateChanged]) -> dict[int, tuple[float | None, float | None]]:
    """Per attempt: the final verdict's figures, each falling back to the provisional one's."""
    figures: dict[int, tuple[float | None, float | None]] = {}
    for rank_final in (False, True):  # provisional first, the final verdict overrides
        for e in events:
            if e.result_attempt is not None:  # a withdrawn retry never ran: it bills nothing
                continue
            if is_terminal(e.state) and e.retryable != rank_final:
                old_cpu, old_wall = figures.get(e.attempt, (None, None))
                figures[e.attempt] = (
                    e.cpu_s if e.cpu_s is not None else old_cpu,
                    e.elapsed_s if e.elapsed_s is not None else old_wall,
                )
    return figures


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_order_with_duplicates_records_the_api_outcome_and_each_attempt_once(data: st.DataObject) -> None:
    history = data.draw(job_histories(), label="history")
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)), label="duplicates")
    delivered = data.draw(st.permutations(history + extra), label="delivered")

    docs = account(delivered)
    doc: dict[str, Any] = docs.get("j1") or {}
    shown = api_shows(delivered)
    if shown.is_final:
        outcome_event = next(e for e in delivered if e.position == shown)
        counted = outcome_event.result_attempt or shown.attempt
        assert (doc["outcome"], doc["attempt"]) == (shown.state.value, counted)
        if outcome_event.result_attempt is None:  # else the first to arrive of the two finals
            assert doc["cpu_s"] == outcome_event.cpu_s
    else:
        assert doc.get("outcome") is None

    figures = {n: (a.cpu_s, a.wall_s) for n, a in held_attempts(doc).items()}
    assert figures == expected_attempts(history)

    again = account(delivered, docs)  # everything redelivered once more: nothing changes
    assert again["j1"] == doc

    summary = summarise([doc])
    total_cpu = sum(cpu or 0.0 for cpu, _ in figures.values())
    assert summary.cpu_s + summary.cpu_s_lost_attempts == pytest.approx(total_cpu)
    assert summary.attempts == len(figures)
    assert summary.lost_attempts == len(figures) - (1 if shown.is_final else 0)
