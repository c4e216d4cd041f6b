"""The v2 job list's filters and the queue position's count, as database queries (pure).

A client names states as the API shows them (``TIMED-OUT``, also spelt ``TIMED_OUT``,
and the api-only ``DELETED``); the stored record keeps the state the events brought and
marks a deleted job with ``deleted_at``, so a filter on ``SUCCESS`` must leave deleted
jobs out and one on ``DELETED`` must look at ``deleted_at`` alone. Everything here
builds plain dictionaries: the repository runs them, the tests read them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from caesar_api.domain.errors import ApiError, shown
from caesar_common.jobstate import JobState
from caesar_common.store import Document

DELETED: Final = "DELETED"
"""The api's own presentation of a job whose outputs were removed (never an event state)."""
WAITING_STATES: Final = (JobState.PENDING.value, JobState.QUEUED.value)
STATE_NAMES: Final = (*(s.value for s in JobState), DELETED)
"""Every state a v2 job shows, as the API spells it."""
_ALIASES: Final = {name.replace("-", "_"): name for name in STATE_NAMES}


def parse_states(values: Iterable[str]) -> frozenset[str] | None:
    """The states of ``?state=`` (repeated or comma separated); ``None`` when none is given.

    Case-insensitive; ``TIMED_OUT`` is taken for ``TIMED-OUT``. An unknown name is a 400
    listing the known ones, not an empty list that looks like "no such jobs".
    """
    names: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().upper()
            if not name:
                continue
            known = _ALIASES.get(name.replace("-", "_"))
            if known is None:
                raise ApiError(
                    400, f"Unknown state {shown(part.strip())}; use one of {', '.join(STATE_NAMES)}"
                )
            names.add(known)
    return frozenset(names) or None


def parse_since(raw: str | None) -> datetime | None:
    """``?since=``: an ISO 8601 time; one without an offset is taken as UTC."""
    if raw is None:
        return None
    try:
        # Upper case: RFC 3339 allows "t" and "z", which fromisoformat does not take.
        value = datetime.fromisoformat(raw.strip().upper())
    except ValueError:
        raise ApiError(
            400, f"Invalid since {shown(raw)}: expected an ISO 8601 time such as 2026-11-30T17:04:05+00:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class JobFilter:
    """What a v2 job list keeps: any of ``states``, of one ``app``, submitted at or after ``since``."""

    states: frozenset[str] | None = None
    app: str | None = None
    since: datetime | None = None


def job_filter(states: Collection[str] | None, app: str | None, since: datetime | None) -> JobFilter:
    """A :class:`JobFilter` from already split values (the states checked as by :func:`parse_states`)."""
    return JobFilter(parse_states(states) if states else None, app or None, since)


def _state_clause(states: frozenset[str]) -> Document:
    shown_states = sorted(states - {DELETED})
    live: Document = {"state": {"$in": shown_states}, "deleted_at": None}
    if DELETED not in states:
        return live
    deleted: Document = {"deleted_at": {"$ne": None}}
    if not shown_states:
        return deleted
    return {"$or": [live, deleted]}


def jobs_query(owner: str, wanted: JobFilter) -> Document:
    """The database filter of the owner's jobs that ``wanted`` keeps."""
    query: Document = {"owner": owner}
    if wanted.app is not None:
        query["app"] = wanted.app
    if wanted.since is not None:
        query["submitted_at"] = {"$gte": wanted.since}
    if wanted.states is not None:
        query.update(_state_clause(wanted.states))
    return query


def is_waiting(job: Mapping[str, Any]) -> bool:
    """Whether the job waits for a runner (it has a queue position)."""
    return job.get("state") in WAITING_STATES and job.get("deleted_at") is None


def waiting_ahead_query(job: Mapping[str, Any]) -> Document | None:
    """The jobs of every owner waiting in ``job``'s pool that were submitted before it.

    ``None`` when ``job`` itself does not wait. A PENDING job has no pool yet (``""``),
    so it is counted among the other PENDING jobs that have none either. The count is an
    approximation of the order the scheduler will follow: fair share, priorities and
    jobs submitted at the same millisecond may reorder it.
    """
    if not is_waiting(job):
        return None
    return {
        "state": {"$in": list(WAITING_STATES)},
        "pool": job.get("pool") or "",
        "submitted_at": {"$lt": job["submitted_at"]},
    }
