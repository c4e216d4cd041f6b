"""What accounting records about a job or a file, and when.

A job is accounted once, when its outcome is *final*: a terminal state that will not be
retried. A retryable FAILURE (runner lost) is not an outcome, the next attempt's is.
The decision uses the same ordering rule as every projection
(:func:`caesar_common.jobstate.supersedes`), with the recorded outcome as the held
position, which is final and therefore never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState, supersedes


def day_of(moment: datetime) -> str:
    """The UTC calendar day a usage belongs to (``YYYY-MM-DD``); naive times are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class FinalOutcome:
    """The accounted result of a job: its final state and the resources it used."""

    job_id: str
    owner: str
    app: str
    attempt: int
    outcome: JobState
    finished_at: datetime
    wall_s: float | None
    cpu_s: float | None
    peak_rss_bytes: int | None
    output_bytes: int

    @property
    def position(self) -> JobPosition:
        return JobPosition(self.attempt, self.outcome)

    @classmethod
    def of(cls, message: JobStateChanged) -> FinalOutcome:
        return cls(
            job_id=message.job_id,
            owner=message.owner,
            app=message.app,
            attempt=message.attempt,
            outcome=message.state,
            finished_at=message.changed_at,
            wall_s=message.elapsed_s,
            cpu_s=message.cpu_s,
            peak_rss_bytes=message.peak_rss_bytes,
            output_bytes=sum(o.size_bytes for o in message.outputs),
        )

    def fields(self) -> dict[str, Any]:
        """What the job's usage document records (owner and app aside)."""
        return {
            "outcome": self.outcome.value,
            "attempt": self.attempt,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "output_bytes": self.output_bytes,
        }


def recorded_position(doc: Mapping[str, Any] | None) -> JobPosition | None:
    """The outcome a usage document already holds, as a (final) job position."""
    if doc is None or doc.get("outcome") is None:
        return None
    return JobPosition(int(doc.get("attempt") or 1), JobState(doc["outcome"]))


def should_record(message: JobStateChanged, held: JobPosition | None) -> bool:
    """Whether ``message`` is a final outcome not yet accounted for this job."""
    return message.position.is_final and supersedes(message.position, held)
