"""The job timeline: entries of what happened, and the job's current position.

Events reach the monitor duplicated and out of order, yet the timeline document must
end up the same whatever the arrival order:

* an entry is keyed by its event id and kept in one total order (time, attempt, rank,
  event id), so a duplicate is a no-op and the stored list does not depend on arrival;
* the current position (attempt, state) moves only forward
  (:func:`caesar_common.jobstate.supersedes`);
* everything else about the current attempt (queued/started time, runner, pool) is a
  function of the entries of that attempt (:func:`attempt_facts`), recomputed when a
  late entry arrives, so an overtaken STARTED still sets ``started_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caesar_common.events import JobCancelRequested, JobStateChanged, JobSubmitted
from caesar_common.jobstate import JobPosition, JobState, is_terminal, rank, supersedes

Entry = dict[str, Any]

# Mongo ``$push`` ``$sort`` spec and the Python key below must agree: both give the
# stored order. ``None`` (attempt/rank of a cancel request) sorts first in both.
ENTRY_ORDER: dict[str, int] = {"time": 1, "attempt": 1, "rank": 1, "event_id": 1}

_EXECUTING = frozenset({JobState.STARTED, JobState.RUNNING})
_EXECUTING_VALUES = frozenset(s.value for s in _EXECUTING)
PUBLIC_FIELDS = ("event_id", "type", "state", "attempt", "time", "reason", "runner_id", "exit_code")
FACT_FIELDS = ("queued_at", "started_at", "runner_id", "pool")


def _entry(
    event_id: str,
    kind: str,
    time: datetime,
    *,
    state: JobState | None = None,
    attempt: int | None = None,
    reason: str = "",
    runner_id: str = "",
    pool: str = "",
    exit_code: int | None = None,
) -> Entry:
    return {
        "event_id": event_id,
        "type": kind,
        "state": state.value if state is not None else None,
        "attempt": attempt,
        "rank": rank(state) if state is not None else None,
        "time": time,
        "reason": reason,
        "runner_id": runner_id,
        "pool": pool,
        "exit_code": exit_code,
    }


def submitted_entry(event_id: str, message: JobSubmitted) -> Entry:
    """Submission is the PENDING state of the job's first attempt."""
    return _entry(event_id, message.type_name, message.submitted_at, state=JobState.PENDING, attempt=1)


def state_entry(event_id: str, message: JobStateChanged) -> Entry:
    return _entry(
        event_id,
        message.type_name,
        message.changed_at,
        state=message.state,
        attempt=message.attempt,
        reason=message.reason,
        runner_id=message.runner_id,
        pool=message.pool,
        exit_code=message.exit_code,
    )


def cancel_entry(event_id: str, message: JobCancelRequested) -> Entry:
    """A cancel request is a fact on the timeline, not a state (the scheduler decides)."""
    return _entry(event_id, message.type_name, message.requested_at)


def entry_sort_key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    attempt = entry.get("attempt")
    entry_rank = entry.get("rank")
    return (
        entry["time"],
        -1 if attempt is None else attempt,
        -1 if entry_rank is None else entry_rank,
        entry["event_id"],
    )


def ordered(entries: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """Entries in timeline order, with only the fields clients see."""
    return [
        {name: entry.get(name) for name in PUBLIC_FIELDS} for entry in sorted(entries, key=entry_sort_key)
    ]


def attempt_facts(entries: Iterable[Mapping[str, Any]], attempt: int) -> dict[str, Any]:
    """Queued/started time, runner and pool of one attempt, from its entries alone."""
    mine = sorted((e for e in entries if e.get("attempt") == attempt), key=entry_sort_key)
    queued = [e["time"] for e in mine if e.get("state") == JobState.QUEUED.value]
    started = [e["time"] for e in mine if e.get("state") in _EXECUTING_VALUES]
    return {
        "queued_at": queued[0] if queued else None,
        "started_at": started[0] if started else None,
        "runner_id": next((e["runner_id"] for e in mine if e.get("runner_id")), ""),
        "pool": next((e["pool"] for e in mine if e.get("pool")), ""),
    }


@dataclass(frozen=True)
class Step:
    """A state move carried by an event (or decided by the watchdog)."""

    attempt: int
    state: JobState
    time: datetime
    retryable: bool = False
    elapsed_s: float | None = None

    @property
    def position(self) -> JobPosition:
        return JobPosition(self.attempt, self.state, self.retryable)

    @classmethod
    def of(cls, message: JobStateChanged) -> Step:
        return cls(
            attempt=message.attempt,
            state=message.state,
            time=message.changed_at,
            retryable=message.retryable,
            elapsed_s=message.elapsed_s,
        )

    @classmethod
    def submission(cls, message: JobSubmitted) -> Step:
        return cls(attempt=1, state=JobState.PENDING, time=message.submitted_at)


@dataclass(frozen=True)
class Progress:
    """What a timeline document holds: the position and the facts of its attempt."""

    position: JobPosition | None
    facts: Mapping[str, Any]

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> Progress:
        if doc is None or doc.get("state") is None:
            return cls(None, {})
        position = JobPosition(int(doc["attempt"]), JobState(doc["state"]), bool(doc.get("retryable")))
        return cls(position, {name: doc.get(name) for name in FACT_FIELDS})


@dataclass(frozen=True)
class Advance:
    """Fields to write and the durations the write completes (observed once, by it)."""

    fields: dict[str, Any]
    queue_wait_s: float | None = None
    run_s: float | None = None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def advance(held: Progress, step: Step, entries: Iterable[Mapping[str, Any]]) -> Advance | None:
    """The transition ``step`` makes from ``held``, or ``None`` if it does not move the job.

    ``entries`` include the entry of ``step`` itself. The queue wait is completed by the
    first STARTED/RUNNING applied in an attempt; the run time by its terminal state
    (measured from the attempt's start, else the runner's own elapsed time).
    """
    if not supersedes(step.position, held.position):
        return None
    facts = attempt_facts(entries, step.attempt)
    fields: dict[str, Any] = {
        "state": step.state.value,
        "attempt": step.attempt,
        "retryable": step.retryable,
        "last_change": step.time,
        **facts,
    }
    was_executing = (
        held.position is not None
        and held.position.attempt == step.attempt
        and rank(held.position.state) >= rank(JobState.STARTED)
    )
    queue_wait_s = run_s = None
    if step.state in _EXECUTING and not was_executing:
        queue_wait_s = _seconds(facts["queued_at"], facts["started_at"])
    elif is_terminal(step.state):
        run_s = _seconds(facts["started_at"], step.time)
        if run_s is None:
            run_s = step.elapsed_s
    return Advance(fields, queue_wait_s=queue_wait_s, run_s=run_s)


def refresh(held: Progress, entries: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Facts of the held attempt changed by a late entry, or ``None`` if none did."""
    if held.position is None:
        return None
    facts = attempt_facts(entries, held.position.attempt)
    if all(facts[name] == held.facts.get(name) for name in FACT_FIELDS):
        return None
    return facts
