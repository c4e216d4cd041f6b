"""The job state machine (pure; no I/O).

Events arrive duplicated and out of order, so every projection of a job's state keeps
``(attempt, rank(state))`` and accepts an event only when it moves that key forward.
Terminal states are absorbing, except a failure flagged *retryable* (the runner was
lost): the scheduler may follow it with a new attempt, which outranks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobState(StrEnum):
    """Job states; the names (and the hyphen in TIMED-OUT) are the v1.0 API's."""

    PENDING = "PENDING"
    HELD = "HELD"
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMED_OUT = "TIMED-OUT"
    CANCELED = "CANCELED"
    ABORTED = "ABORTED"

    @property
    def routing_suffix(self) -> str:
        """Lower-case name used in the ``job.state.<state>`` routing key."""
        return self.value.lower()


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCESS, JobState.FAILURE, JobState.TIMED_OUT, JobState.CANCELED, JobState.ABORTED}
)
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.STARTED, JobState.RUNNING})

_RANK: dict[JobState, int] = {
    JobState.PENDING: 0,
    JobState.HELD: 1,
    JobState.QUEUED: 2,
    JobState.STARTED: 3,
    JobState.RUNNING: 4,
}
TERMINAL_RANK = 5


def rank(state: JobState) -> int:
    """Position of a state in the lifecycle; all terminal states share the last rank."""
    return TERMINAL_RANK if state in TERMINAL_STATES else _RANK[state]


def is_terminal(state: JobState) -> bool:
    return state in TERMINAL_STATES


@dataclass(frozen=True)
class JobPosition:
    """What a projection holds about a job: enough to order any later event."""

    attempt: int
    state: JobState
    retryable: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.attempt, rank(self.state))

    @property
    def is_final(self) -> bool:
        """Terminal and not going to be retried: nothing may move the job any more."""
        return is_terminal(self.state) and not self.retryable


def supersedes(new: JobPosition, held: JobPosition | None) -> bool:
    """Whether a projection holding ``held`` must apply an event carrying ``new``.

    Duplicates (same key) and late events (smaller key) are ignored, which makes every
    projection converge to the same state whatever order events arrive in.
    """
    if held is None:
        return True
    if held.is_final:
        # Absorbing, but for a withdrawn retry: an attempt presumed lost finished after
        # all before its retry started, and the scheduler closed the retry's attempt with
        # that outcome. A projection that saw the outcome first must take the closing
        # event too, or it would end on a lower attempt than those that did not.
        return new.is_final and new.attempt > held.attempt
    if is_terminal(held.state) and new.attempt == held.attempt:
        # A retryable failure is provisional: the same attempt may only be closed for good
        # (the scheduler gives up, or a slow runner reports its true outcome after all).
        return is_terminal(new.state) and not new.retryable
    return new.key > held.key


_TERMINAL_VALUES = sorted(s.value for s in TERMINAL_STATES)
# "Not final" as two disjoint plain filters: held non-terminal, or terminal and retryable.
# Never one ``$or``/``$nor``: the development database then scans the collection.
_NOT_FINAL: tuple[dict[str, object], ...] = (
    {"state": {"$nin": _TERMINAL_VALUES}},
    {"state": {"$in": _TERMINAL_VALUES}, "retryable": True},
)


@dataclass(frozen=True)
class HeldBefore:
    """The held positions an event at ``new`` supersedes, on one side of its attempt.

    :func:`supersedes` as database filters, so a projection can apply an event with one
    guarded update instead of a read and a write: the database checks the rule
    atomically, and a duplicate or late event matches nothing. Split by attempt because
    what the event writes differs (a new attempt clears the previous one's measurements).
    ``matches`` is the same rule in Python, for in-memory stores and for proving the two
    agree.
    """

    new: JobPosition
    same_attempt: bool

    def matches(self, held: JobPosition) -> bool:
        if (held.attempt == self.new.attempt) != self.same_attempt:
            return False
        return supersedes(self.new, held)

    def as_filters(self) -> tuple[dict[str, object], ...]:
        """Disjoint filters on ``attempt``, ``state`` and ``retryable`` whose union is the rule.

        Plain conjunctions, the common case (a held position that is not terminal) first,
        so a projection usually needs one update; a guard with ``$or`` would make the
        development database scan the whole collection on every event.
        """
        attempt = self.new.attempt
        if not self.same_attempt:
            if self.new.is_final:  # closes whatever an earlier attempt holds (a withdrawn retry)
                return ({"attempt": {"$lt": attempt}},)
            return tuple({"attempt": {"$lt": attempt}, **held} for held in _NOT_FINAL)
        if is_terminal(self.new.state):
            if self.new.retryable:
                return ({"attempt": attempt, "state": {"$nin": _TERMINAL_VALUES}},)
            return tuple({"attempt": attempt, **held} for held in _NOT_FINAL)
        lower = [s.value for s in JobState if not is_terminal(s) and rank(s) < rank(self.new.state)]
        return ({"attempt": attempt, "state": {"$in": lower}},)
