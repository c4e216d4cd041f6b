"""How a ``JobStateChanged`` event changes the api's job record (pure).

Which events apply is decided by :func:`caesar_common.jobstate.supersedes`; this module
only says *what* an applied event writes. Measurements (pid, exit code, times, memory,
outputs) arrive on the events that know them: a later event of the same attempt that
does not repeat a value must not erase it, while a new attempt starts from a clean
slate so a retried job never shows the previous attempt's exit code.

Timings are written the same way, without reading the record: ``started_at`` is the
time of the attempt's STARTED, ``running_at`` of its RUNNING (a STARTED that arrives
after RUNNING is never applied, so a reader takes ``started_at`` and falls back on
``running_at``: :func:`attempt_started_at`), and ``ended_at`` the time of the final
state. A new attempt clears the previous attempt's timings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes

MEASURED_FIELDS = ("pid", "exit_code", "elapsed_s", "cpu_s", "peak_rss_bytes")
TIMING_FIELDS: dict[JobState, str] = {JobState.STARTED: "started_at", JobState.RUNNING: "running_at"}
"""The field that keeps when the attempt reached each of these states."""


def position_of(job: Mapping[str, Any]) -> JobPosition:
    """What the read model holds about a job, for ordering incoming events."""
    return JobPosition(int(job["attempt"]), JobState(job["state"]), bool(job.get("retryable")))


def attempt_started_at(job: Mapping[str, Any]) -> datetime | None:
    """When the shown attempt started: its STARTED, or its RUNNING when STARTED was not seen."""
    started = job.get("started_at") or job.get("running_at")
    return started if isinstance(started, datetime) else None


def _timing_fields(event: JobStateChanged, *, new_attempt: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for state, name in TIMING_FIELDS.items():
        if event.state is state:
            fields[name] = event.changed_at
        elif new_attempt:
            fields[name] = None
    # Only final states end a job (a provisional failure is never projected).
    fields["ended_at"] = event.changed_at if event.position.is_final else None
    return fields


def transition_fields(event: JobStateChanged, *, new_attempt: bool) -> dict[str, Any]:
    """The fields (``$set``) that bring a record to the event's position.

    ``new_attempt``: the record holds an earlier attempt than the event's.
    """
    fields: dict[str, Any] = {
        "state": event.state.value,
        "attempt": event.attempt,
        "retryable": event.retryable,
        "reason": event.reason,
        "updated_at": event.changed_at,
    }
    for name in MEASURED_FIELDS:
        value = getattr(event, name)
        if value is not None:
            fields[name] = value
        elif new_attempt:
            fields[name] = None
    for name in ("pool", "runner_id"):
        value = getattr(event, name)
        if value:
            fields[name] = value
        elif new_attempt:
            fields[name] = ""
    # Whose outputs the shown outcome has: set only when a withdrawn retry closed the
    # job with an earlier attempt's outcome (every later event resets it).
    fields["result_attempt"] = event.result_attempt
    if event.outputs:
        fields["outputs"] = [o.model_dump(mode="json") for o in event.outputs]
    elif new_attempt:
        fields["outputs"] = []
    fields.update(_timing_fields(event, new_attempt=new_attempt))
    return fields


HISTORY_MAX = 200
"""History entries kept per job (a job reaches a handful of states per attempt)."""


def history_entry(state: str, attempt: int, changed_at: datetime) -> dict[str, Any]:
    """One applied state in the job's ``history`` (what SSE replays and webhooks check).

    The repository adds ``applied_at``, the api's time of the write, when it writes it.
    """
    return {"state": state, "attempt": attempt, "changed_at": changed_at}


@dataclass
class ProjectedMove:
    """Several events of one job folded into one write, guarded by the position they were planned on.

    ``fields`` is the ``$set`` of every applied event in delivery order (a later event's
    value wins, as sequential writes would leave it); ``held`` is the position read, so
    the write applies only if nobody moved the job meanwhile (another replica).
    """

    job_id: str
    owner: str
    held: JobPosition
    held_retryable_stored: bool
    fields: dict[str, Any] = field(default_factory=dict)
    applied: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """One :func:`history_entry` per applied event, in order (``$push``-ed with the ``$set``)."""


def plan_moves(
    records: Mapping[str, Mapping[str, Any]], events: Sequence[JobStateChanged]
) -> list[ProjectedMove]:
    """The writes a batch of events makes, one per job, planned on ``records`` (pure).

    Each event is judged as the one-by-one projection would judge it, on the position
    the previous events of the batch left: provisional failures are never shown, an
    unknown job or a foreign owner changes nothing, ``supersedes`` decides the rest.
    """
    moves: dict[str, ProjectedMove] = {}
    positions: dict[str, JobPosition] = {}
    for event in events:
        if event.retryable and is_terminal(event.state):
            continue
        record = records.get(event.job_id)
        if record is None or record.get("owner") != event.owner:
            continue
        held = positions.get(event.job_id) or position_of(record)
        if not supersedes(event.position, held):
            continue
        move = moves.get(event.job_id)
        if move is None:
            move = ProjectedMove(event.job_id, event.owner, held, "retryable" in record)
            moves[event.job_id] = move
        move.fields.update(transition_fields(event, new_attempt=event.attempt != held.attempt))
        move.history.append(history_entry(event.state.value, event.attempt, event.changed_at))
        move.applied += 1
        positions[event.job_id] = event.position
    return list(moves.values())
