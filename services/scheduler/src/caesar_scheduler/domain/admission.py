"""The scheduler's record of an admitted job, and which runner reports it follows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from caesar_common.events import JobSubmitted
from caesar_common.jobstate import JobState, is_terminal


def job_document(msg: JobSubmitted, now: datetime, trace: Mapping[str, str]) -> dict[str, Any]:
    """The fields every admitted job starts with (phase, state and pool come from routing).

    ``trace`` is the submission's trace context, kept so that the later dispatch, in
    another process turn, continues the same trace.
    """
    return {
        "_id": msg.job_id,
        "owner": msg.owner,
        "app": msg.app,
        "params": msg.params,
        "input": msg.input.model_dump(),
        "wall_time_s": msg.wall_time_s,
        "cores": msg.cores,
        "memory_mb": msg.memory_mb,
        "submitted_at": msg.submitted_at,
        "queued_at": now,
        "updated_at": now,
        "attempt": 1,
        "trace": dict(trace),
    }


def reported_by_runner(state: JobState) -> bool:
    """States runners (or the monitor on their behalf) report; the rest are our own echoes."""
    return state in (JobState.STARTED, JobState.RUNNING) or is_terminal(state)
