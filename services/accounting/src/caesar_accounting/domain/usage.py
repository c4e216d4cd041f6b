"""What accounting records about a job or a file, and when (pure).

Accounting must count, for every job, the outcome the api shows, so it follows a job's
position with the api's rule (:func:`moves_job`: retryable terminal states are never
applied, and :func:`caesar_common.jobstate.supersedes` decides the rest) over every
``job.state.*`` event, not only terminal ones: a late true outcome of attempt 1 is
ignored by a projection that has already seen attempt 2 start, and only the start
events tell accounting that it has. The outcome is recorded when that position becomes
final, and is then absorbing, like the api's.

Usage is kept per attempt, independently of the outcome: every attempt that ended used
CPU and time, whether it is the counted one or was lost (runner gone), superseded or
handed back. Each attempt's record is merged from its terminal events by the same rule
restricted to the attempt (:func:`merge_attempt`), so duplicates and reordering change
nothing but the one documented tie (two different measurements of one attempt: the
first kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes


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
            # A withdrawn retry's closing event counts the attempt that ran.
            attempt=message.result_attempt or message.attempt,
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


@dataclass(frozen=True)
class AttemptUsage:
    """What one attempt used, from its terminal event(s), and which of them it holds.

    ``state``/``retryable`` say whether the attempt was closed for good or only
    provisionally (runner lost), which decides whether a later event of the same attempt
    replaces the measurements or only fills in the ones missing.
    """

    attempt: int
    state: JobState
    retryable: bool
    cpu_s: float | None
    wall_s: float | None

    @property
    def position(self) -> JobPosition:
        return JobPosition(self.attempt, self.state, self.retryable)

    @classmethod
    def of(cls, message: JobStateChanged) -> AttemptUsage:
        return cls(message.attempt, message.state, message.retryable, message.cpu_s, message.elapsed_s)

    @classmethod
    def from_doc(cls, attempt: int, doc: Mapping[str, Any]) -> AttemptUsage:
        return cls(
            attempt=attempt,
            state=JobState(doc["state"]),
            retryable=bool(doc.get("retryable")),
            cpu_s=_float_or_none(doc.get("cpu_s")),
            wall_s=_float_or_none(doc.get("wall_s")),
        )

    def fields(self) -> dict[str, Any]:
        """The attempt's entry in the usage document's ``attempts`` map."""
        return {
            "state": self.state.value,
            "retryable": self.retryable,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def attempt_key(attempt: int) -> str:
    """Attempts are keys of a map in the document (MongoDB field names are strings)."""
    return str(attempt)


def recorded_position(doc: Mapping[str, Any] | None) -> JobPosition | None:
    """The outcome a usage document already holds, as a (final) job position."""
    if doc is None or doc.get("outcome") is None:
        return None
    return JobPosition(int(doc.get("attempt") or 1), JobState(doc["outcome"]))


def held_position(doc: Mapping[str, Any] | None) -> JobPosition | None:
    """Where the api's rule has the job, as far as this document has followed it.

    Documents written before accounting followed every state have no ``position``; their
    recorded outcome (final) is the position, which keeps them unchanged for ever.
    """
    if doc is None:
        return None
    position = doc.get("position")
    if position:
        return JobPosition(int(position["attempt"]), JobState(position["state"]))
    return recorded_position(doc)


def held_attempts(doc: Mapping[str, Any] | None) -> dict[int, AttemptUsage]:
    """The per-attempt usage a document holds (none for documents older than it)."""
    raw = (doc or {}).get("attempts") or {}
    return {int(key): AttemptUsage.from_doc(int(key), value) for key, value in raw.items()}


def moves_job(message: JobStateChanged, held: JobPosition | None) -> bool:
    """The api's projection rule: whether the job shown to clients moves to ``message``.

    Kept identical to ``caesar_api.service.projection.apply_job_state`` (a unit test runs
    both over shuffled histories): a retryable terminal state is provisional and never
    shown, everything else is decided by ``supersedes``.
    """
    if message.retryable and is_terminal(message.state):
        return False
    return supersedes(message.position, held)


def merge_attempt(held: AttemptUsage | None, message: JobStateChanged) -> AttemptUsage | None:
    """The attempt's usage after ``message``, or ``None`` when it changes nothing.

    Only terminal events carry an attempt's totals. The event that closes the attempt
    for good (it ``supersedes`` a provisional verdict of the same attempt) brings the
    true measurements; any other event of the attempt (a duplicate, a provisional
    verdict arriving after the true outcome, a second verdict) only fills in what is
    still missing. So the monitor's "runner lost" failure without figures never hides the
    runner's, and a provisional failure's CPU is still billed when the scheduler closes
    the attempt with an ABORTED that measured nothing.
    """
    if not is_terminal(message.state):
        return None
    new = AttemptUsage.of(message)
    if held is None:
        return new
    if supersedes(new.position, held.position):
        merged = replace(
            new,
            cpu_s=held.cpu_s if new.cpu_s is None else new.cpu_s,
            wall_s=held.wall_s if new.wall_s is None else new.wall_s,
        )
    else:
        merged = replace(
            held,
            cpu_s=new.cpu_s if held.cpu_s is None else held.cpu_s,
            wall_s=new.wall_s if held.wall_s is None else held.wall_s,
        )
    return None if merged == held else merged


@dataclass(frozen=True)
class UsageChange:
    """What one ``JobStateChanged`` changes in a job's usage document (any part may be unset)."""

    position: JobPosition | None = None
    attempt: AttemptUsage | None = None
    outcome: FinalOutcome | None = None
    attempts: Mapping[int, AttemptUsage] = field(default_factory=dict)
    """Every attempt's usage after the change (written whole when ``attempt`` is set)."""

    def fields(self) -> dict[str, Any]:
        """The ``$set`` fields of the change (owner, app and revision aside).

        The attempts map is written whole rather than by a dotted path: the write is a
        compare-and-set on the revision anyway, so nothing another writer added is lost,
        and it needs no path syntax from the database.
        """
        fields: dict[str, Any] = {}
        if self.position is not None:
            fields["position"] = {"attempt": self.position.attempt, "state": self.position.state.value}
        if self.attempt is not None:
            merged = {**self.attempts, self.attempt.attempt: self.attempt}
            fields["attempts"] = {attempt_key(n): usage.fields() for n, usage in sorted(merged.items())}
        if self.outcome is not None:
            fields.update(self.outcome.fields())
        return fields


def plan_change(doc: Mapping[str, Any] | None, message: JobStateChanged) -> UsageChange | None:
    """How ``message`` changes the job's usage document ``doc``; ``None`` if it does not.

    The outcome is recorded exactly when the api's position becomes final, which happens
    once, so it is the api's outcome (same events, same rule) and written once.
    """
    held = held_position(doc)
    position = message.position if moves_job(message, held) else None
    outcome = FinalOutcome.of(message) if position is not None and position.is_final else None
    if outcome is not None and held is not None and held.is_final:
        # Only a withdrawn retry's closing event moves a final position (see
        # ``supersedes``): it names the attempt already counted, so the job is not
        # counted again; only the position moves.
        outcome = None
    attempts = held_attempts(doc)
    # A withdrawn retry never ran: its closing event bills nothing to its attempt.
    ran = message.result_attempt is None
    attempt = merge_attempt(attempts.get(message.attempt), message) if ran else None
    if position is None and attempt is None:
        return None
    if attempt is not None:
        attempts[attempt.attempt] = attempt
    return UsageChange(position=position, attempt=attempt, outcome=outcome, attempts=attempts)


@dataclass
class BatchedWrite:
    """Several changes of one job planned on one read, written as one compare-and-set.

    ``revision`` is the revision read; the write sets ``revision + steps``. ``doc`` is the
    document as it will be after the write, so the next event of the job in the same
    batch is planned on it, exactly as if each had been written and read back.
    """

    job_id: str
    owner: str
    app: str
    revision: int
    doc: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    outcomes: list[FinalOutcome] = field(default_factory=list)
    messages: list[JobStateChanged] = field(default_factory=list)

    def add(self, message: JobStateChanged, change: UsageChange) -> None:
        changed = change.fields()
        self.fields.update(changed)
        self.doc.update(changed)
        self.owner, self.app = message.owner, message.app
        self.steps += 1
        if change.outcome is not None:
            self.outcomes.append(change.outcome)


def plan_batch(
    docs: Mapping[str, Mapping[str, Any]], messages: list[JobStateChanged]
) -> tuple[list[BatchedWrite], list[JobStateChanged]]:
    """The writes a batch of state events makes, one per job, planned on ``docs``.

    Returns the writes (jobs some event changes) and every message, by job, that those
    writes carry (to be handled one by one if a write loses its compare-and-set).
    """
    writes: dict[str, BatchedWrite] = {}
    for message in messages:
        write = writes.get(message.job_id)
        if write is None:
            read = docs.get(message.job_id)
            write = BatchedWrite(
                job_id=message.job_id,
                owner=message.owner,
                app=message.app,
                revision=int((read or {}).get("rev") or 0),
                doc=dict(read or {}),
            )
        write.messages.append(message)
        change = plan_change(write.doc or None, message)
        if change is not None:
            write.add(message, change)
        writes[message.job_id] = write
    changed = [w for w in writes.values() if w.steps]
    return changed, [m for w in changed for m in w.messages]
