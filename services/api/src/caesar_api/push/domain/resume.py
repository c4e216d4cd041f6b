"""What a stream sends, and in which order, whether replayed or live (pure).

Live events come from the broker duplicated, late or out of order, and a stream that
resumes replays the stored history while live events keep arriving. One rule settles
all of it: a stream sends a state of a job only when it supersedes the last state it
sent of that job (:func:`caesar_common.jobstate.supersedes`), so a duplicate, a late
event or a live event the replay already covered is dropped, and nothing goes
backwards on one stream. Provisional failures (terminal and retryable) are never shown,
exactly as the projection hides them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from caesar_api.push.domain.sse import event_frame, job_event_id, user_event_id
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes


@dataclass(frozen=True)
class StateEvent:
    """A job reached a state: what a stream sends.

    ``stamp`` orders the per-user stream: when the api applied the state (replayed
    from the history) or when this process received it (live).
    """

    job_id: str
    owner: str
    attempt: int
    state: JobState
    changed_at: datetime
    stamp: datetime

    @property
    def position(self) -> JobPosition:
        return JobPosition(self.attempt, self.state)

    @property
    def is_final(self) -> bool:
        return self.position.is_final


def is_shown(event: JobStateChanged) -> bool:
    """Whether clients may see the event (a provisional failure may still be undone)."""
    return not (event.retryable and is_terminal(event.state))


def live_event(event: JobStateChanged, received_at: datetime) -> StateEvent:
    return StateEvent(event.job_id, event.owner, event.attempt, event.state, event.changed_at, received_at)


def current_event(job: Mapping[str, Any]) -> StateEvent:
    """The state a job record holds now (the per-job stream's first event)."""
    changed = job.get("updated_at") or job["submitted_at"]
    return StateEvent(
        str(job["_id"]),
        str(job["owner"]),
        int(job["attempt"]),
        JobState(job["state"]),
        changed,
        job.get("applied_at") or changed,
    )


def history_events(job: Mapping[str, Any]) -> list[StateEvent]:
    """The states the projection applied to a job, in the order it applied them."""
    events = []
    for entry in job.get("history") or ():
        events.append(
            StateEvent(
                str(job["_id"]),
                str(job["owner"]),
                int(entry["attempt"]),
                JobState(entry["state"]),
                entry["changed_at"],
                entry["applied_at"],
            )
        )
    return events


class Sequencer:
    """The last state one stream sent of each job: admits only states that supersede it.

    Remembers at most ``max_jobs`` jobs (the least recently sent are forgotten, and a
    late duplicate of one of those could be sent again: twice, never lost).
    """

    def __init__(self, max_jobs: int = 10_000) -> None:
        self._sent: OrderedDict[str, JobPosition] = OrderedDict()
        self._max_jobs = max_jobs

    def seed(self, job_id: str, position: JobPosition) -> None:
        """The client already has ``position`` (from ``Last-Event-ID``)."""
        self._remember(job_id, position)

    def admit(self, event: StateEvent) -> bool:
        """Whether to send ``event``; if so, it becomes the job's last sent state."""
        if not supersedes(event.position, self._sent.get(event.job_id)):
            return False
        self._remember(event.job_id, event.position)
        return True

    def _remember(self, job_id: str, position: JobPosition) -> None:
        self._sent[job_id] = position
        self._sent.move_to_end(job_id)
        while len(self._sent) > self._max_jobs:
            self._sent.popitem(last=False)


def job_replay(job: Mapping[str, Any], after: JobPosition | None) -> list[StateEvent]:
    """What a per-job stream sends before live events.

    Without ``after``: the current state. With it: every state of the history after
    ``after``, then the current state if the history ends before it (a record written
    before the history was kept). Callers pass the result through a :class:`Sequencer`
    seeded with ``after``, which drops what does not move forward.
    """
    current = current_event(job)
    if after is None:
        return [current]
    sent = after
    replay: list[StateEvent] = []
    for event in history_events(job):
        if supersedes(event.position, sent):
            replay.append(event)
            sent = event.position
    if supersedes(current.position, sent):
        replay.append(current)
    return replay


def user_replay_since(since: datetime, margin: timedelta) -> datetime:
    """From when a resumed per-user stream replays: the client's last id less the margin."""
    return since - margin


def user_replay(jobs: Iterable[Mapping[str, Any]], cutoff: datetime) -> Iterator[StateEvent]:
    """The states of ``jobs`` (sorted by ``applied_at``) applied at or after ``cutoff``.

    Each replayed state carries its job's ``applied_at`` as stamp, the key the jobs are
    sorted on: the ids sent during a replay never go backwards, so a client cut off in
    the middle of one resumes from where it stopped (and gets the rest again).
    """
    for job in jobs:
        stamp = job.get("applied_at")
        if stamp is None:
            continue
        for event in history_events(job):
            if event.stamp >= cutoff:
                yield StateEvent(
                    event.job_id, event.owner, event.attempt, event.state, event.changed_at, stamp
                )


def _aware(at: datetime) -> datetime:
    """Times are UTC; a naive one (an older record) is read as UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def job_frame(event: StateEvent) -> bytes:
    """The per-job stream's frame: the position as id, the state name as data."""
    return event_frame(job_event_id(event.position), event.state.value)


def user_frame(event: StateEvent) -> bytes:
    """The per-user stream's frame: a time as id, the job, state, attempt and time as data."""
    data = {
        "job_id": event.job_id,
        "state": event.state.value,
        "attempt": event.attempt,
        "at": _aware(event.changed_at).isoformat(timespec="milliseconds"),
    }
    return event_frame(user_event_id(event.stamp), json.dumps(data, separators=(",", ":")))
