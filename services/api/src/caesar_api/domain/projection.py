"""How a ``JobStateChanged`` event changes the api's job record (pure).

Which events apply is decided by :func:`caesar_common.jobstate.supersedes`; this module
only says *what* an applied event writes. Measurements (pid, exit code, times, memory,
outputs) arrive on the events that know them: a later event of the same attempt that
does not repeat a value must not erase it, while a new attempt starts from a clean
slate so a retried job never shows the previous attempt's exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes

MEASURED_FIELDS = ("pid", "exit_code", "elapsed_s", "cpu_s", "peak_rss_bytes")


def position_of(job: Mapping[str, Any]) -> JobPosition:
    """What the read model holds about a job, for ordering incoming events."""
    return JobPosition(int(job["attempt"]), JobState(job["state"]), bool(job.get("retryable")))


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
    return fields


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
        move.applied += 1
        positions[event.job_id] = event.position
    return list(moves.values())
