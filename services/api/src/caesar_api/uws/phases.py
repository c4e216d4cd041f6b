"""UWS execution phases from our job states, and the PHASE filter of the job list (pure).

A UWS job is either a *draft* (created without ``PHASE=RUN``: UWS PENDING; the scheduler
has never heard of it) or one of our jobs, whose state maps as follows:

=================  =============================================
UWS phase          our state
=================  =============================================
PENDING            (a draft, not submitted)
QUEUED             PENDING, QUEUED (submitted, waiting to run)
HELD               HELD (its owner is over quota)
EXECUTING          STARTED, RUNNING
COMPLETED          SUCCESS
ERROR              FAILURE, TIMED-OUT, ABORTED (by the system)
ABORTED            CANCELED (by the user)
ARCHIVED           any state, once deleted (outputs removed, record kept)
=================  =============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from vo_models.uws.types import ExecutionPhase

from caesar_api.domain.errors import ApiError, shown
from caesar_common.jobstate import JobState

DELETED: Final = "DELETED"
"""The v2 API's name of a deleted job (``deleted_at`` set; the stored state is kept)."""

PHASE_OF_STATE: Final[Mapping[JobState, ExecutionPhase]] = {
    JobState.PENDING: ExecutionPhase.QUEUED,
    JobState.QUEUED: ExecutionPhase.QUEUED,
    JobState.HELD: ExecutionPhase.HELD,
    JobState.STARTED: ExecutionPhase.EXECUTING,
    JobState.RUNNING: ExecutionPhase.EXECUTING,
    JobState.SUCCESS: ExecutionPhase.COMPLETED,
    JobState.FAILURE: ExecutionPhase.ERROR,
    JobState.TIMED_OUT: ExecutionPhase.ERROR,
    JobState.ABORTED: ExecutionPhase.ERROR,
    JobState.CANCELED: ExecutionPhase.ABORTED,
}

ACTIVE_PHASES: Final = frozenset({ExecutionPhase.PENDING, ExecutionPhase.QUEUED, ExecutionPhase.EXECUTING})
"""The phases in which a ``WAIT`` may block (UWS 1.1 section 2.2.1.2)."""
FINAL_PHASES: Final = frozenset(
    {ExecutionPhase.COMPLETED, ExecutionPhase.ERROR, ExecutionPhase.ABORTED, ExecutionPhase.ARCHIVED}
)


def phase_of_job(job: Mapping[str, Any]) -> ExecutionPhase:
    """The UWS phase of a submitted job's record (a deleted one is ARCHIVED)."""
    if job.get("deleted_at") is not None:
        return ExecutionPhase.ARCHIVED
    return PHASE_OF_STATE[JobState(job["state"])]


@dataclass(frozen=True)
class PhaseFilter:
    """What ``?PHASE=`` keeps: the UWS phases, and the job states (v2 names) they cover.

    Drafts are PENDING or ABORTED; ``states`` empty means no submitted job is listed.
    """

    phases: frozenset[ExecutionPhase]
    states: frozenset[str]


def states_of(phase: ExecutionPhase) -> frozenset[str]:
    """The v2 state names a phase covers (none for PENDING, UNKNOWN, SUSPENDED)."""
    if phase is ExecutionPhase.ARCHIVED:
        return frozenset({DELETED})
    return frozenset(state.value for state, shown_phase in PHASE_OF_STATE.items() if shown_phase is phase)


LISTED_BY_DEFAULT: Final = frozenset(ExecutionPhase) - {ExecutionPhase.ARCHIVED}
"""No ``PHASE``: every job but the ARCHIVED ones (UWS 1.1 section 2.2.2.1)."""


def phase_filter(values: Iterable[str]) -> PhaseFilter:
    """The union of the repeated ``PHASE`` values; none given: all but ARCHIVED.

    Phase names are matched case-insensitively; an unknown one is a 400 naming the known
    ones (an empty list would look like "no such jobs").
    """
    phases: set[ExecutionPhase] = set()
    for value in values:
        name = value.strip().upper()
        try:
            phases.add(ExecutionPhase(name))
        except ValueError:
            known = ", ".join(p.value for p in ExecutionPhase)
            raise ApiError(400, f"Unknown PHASE {shown(value)}; use one of {known}") from None
    chosen = frozenset(phases) or LISTED_BY_DEFAULT
    states: frozenset[str] = frozenset().union(*(states_of(p) for p in chosen))
    return PhaseFilter(phases=chosen, states=states)
