"""The ``JobStateChanged`` events the scheduler emits, built from its job document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from caesar_common.events import Envelope, JobStateChanged
from caesar_common.jobstate import JobState
from caesar_common.outbox import envelope_for

SOURCE = "scheduler"


def state_event(
    doc: dict[str, Any],
    state: JobState,
    attempt: int,
    reason: str = "",
    *,
    retryable: bool = False,
    **fields: Any,
) -> Envelope:
    """An envelope carrying the current trace context, ready for the document's outbox."""
    return envelope_for(
        JobStateChanged(
            job_id=doc["_id"],
            owner=doc["owner"],
            app=doc["app"],
            attempt=attempt,
            state=state,
            reason=reason,
            retryable=retryable,
            changed_at=datetime.now(UTC),
            pool=doc.get("pool", ""),
            **fields,
        ),
        SOURCE,
    )
