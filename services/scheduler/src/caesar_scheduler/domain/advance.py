"""Runner reports folded per job, so a batch of them costs one read and one write (pure).

A runner-reported state moves the scheduler's record of the attempt forward (same
attempt only: the scheduler opened it) and a terminal one finishes the job and frees its
slot. Taken one by one that is one guarded write per report; a batch is planned here on
the records read once, each report judged on the position the previous ones left, and
written as one update per job guarded by the position read. Reports that may need more
than a move (a retryable failure goes through the retry policy; a final report of an
earlier attempt may withdraw a retry) send their whole job down the one-by-one path, so
a batch always ends where the same reports taken one by one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import HeldBefore, JobPosition, JobState, is_terminal
from caesar_scheduler.domain.admission import reported_by_runner
from caesar_scheduler.domain.phases import DISPATCHED, FINISHED, WAITING

ADVANCING_PHASES = (WAITING, DISPATCHED, FINISHED)


def advance_changes(msg: JobStateChanged, now: datetime) -> dict[str, Any]:
    """What a runner's report sets on the job when it moves it."""
    changes: dict[str, Any] = {"state": msg.state.value, "retryable": msg.retryable, "updated_at": now}
    if is_terminal(msg.state):
        changes["phase"] = FINISHED
        changes["reason"] = msg.reason
    return changes


def position_of(doc: Mapping[str, Any]) -> JobPosition:
    return JobPosition(int(doc["attempt"]), JobState(doc["state"]), bool(doc.get("retryable")))


@dataclass
class PlannedAdvance:
    """One job's reports folded into one write, guarded by the record as it was read."""

    job_id: str
    guard: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)
    frees_slot: bool = False


@dataclass
class AdvancePlan:
    moves: list[PlannedAdvance]
    one_by_one: list[JobStateChanged]
    """Reports of jobs that need the full path, in delivery order."""


def needs_full_path(msg: JobStateChanged) -> bool:
    return is_terminal(msg.state) and msg.retryable


def plan_advances(
    docs: Mapping[str, Mapping[str, Any]], messages: Sequence[JobStateChanged], now: datetime
) -> AdvancePlan:
    reports = [m for m in messages if reported_by_runner(m.state)]
    slow = {m.job_id for m in reports if needs_full_path(m)}
    positions: dict[str, JobPosition] = {}
    moves: dict[str, PlannedAdvance] = {}
    for msg in reports:
        doc = docs.get(msg.job_id)
        if msg.job_id in slow or doc is None or doc.get("phase") not in ADVANCING_PHASES:
            continue
        held = positions.get(msg.job_id) or position_of(doc)
        if not HeldBefore(msg.position, same_attempt=True).matches(held):
            if is_terminal(msg.state):
                slow.add(msg.job_id)  # a final report of an earlier attempt may withdraw a retry
            continue
        move = moves.get(msg.job_id)
        if move is None:
            guard = {
                "attempt": doc["attempt"],
                "state": doc["state"],
                "phase": doc["phase"],
                "retryable": doc.get("retryable", {"$exists": False}),
            }
            move = moves[msg.job_id] = PlannedAdvance(msg.job_id, guard)
        move.changes.update(advance_changes(msg, now))
        move.frees_slot = move.frees_slot or is_terminal(msg.state)
        positions[msg.job_id] = msg.position
    return AdvancePlan(
        moves=[m for job_id, m in moves.items() if job_id not in slow],
        one_by_one=[m for m in reports if m.job_id in slow],
    )
