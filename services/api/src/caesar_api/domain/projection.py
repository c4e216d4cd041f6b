"""How a ``JobStateChanged`` event changes the api's job record (pure).

Which events apply is decided by :func:`caesar_common.jobstate.supersedes`; this module
only says *what* an applied event writes. Measurements (pid, exit code, times, memory,
outputs) arrive on the events that know them: a later event of the same attempt that
does not repeat a value must not erase it, while a new attempt starts from a clean
slate so a retried job never shows the previous attempt's exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState

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
