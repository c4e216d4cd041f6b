"""What a runner decides about an attempt, before and after running it (pure).

A ``RunJob`` is claimed before it is acked: the claim document is the runner's promise to
report the attempt's outcome. Whether the attempt starts, or is closed at once (canceled
before it began, or impossible to run here), depends only on facts the runner has looked
up; this module turns those facts into the claim's first state and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from caesar_common.apps.base import App, ParameterError
from caesar_common.events import RunJob
from caesar_common.jobstate import JobState
from caesar_runner.executors.base import ExecutionResult

HANDED_BACK = "the runner stopped before the job finished; handed back for retry"
SELF_FENCED = "the runner was cut off from the broker or the database; stopped for retry elsewhere"
CANCELED_BY_USER = "canceled by the user"


def attempt_key(job_id: str, attempt: int) -> str:
    """``<job_id>:<attempt>``: the claim's ``_id``, and the key of a running attempt.

    Keyed by attempt, not job: two attempts of one job (one wrongly presumed lost) are
    two entries, each cancellable and each holding its own slot.
    """
    return f"{job_id}:{attempt}"


@dataclass(frozen=True)
class ClaimFacts:
    """What the runner looked up about a ``RunJob`` before deciding."""

    app: App | None
    executor_kind: str
    input_exists: bool
    canceled: bool


@dataclass(frozen=True)
class ClaimDecision:
    """The claim's first state: STARTED (run it), CANCELED or ABORTED (report and stop)."""

    state: JobState
    reason: str = ""

    @property
    def runs(self) -> bool:
        return self.state is JobState.STARTED


def refusal(msg: RunJob, facts: ClaimFacts) -> str:
    """Why this runner cannot run the attempt at all, or ``""`` if it can.

    These are not retryable: another attempt would meet the same unknown app, the same
    missing input or the same invalid parameters.
    """
    if facts.app is None:
        return f"unknown app {msg.app}"
    if facts.executor_kind not in facts.app.executors:
        return f"app {msg.app} cannot run on the {facts.executor_kind} executor"
    if not facts.input_exists:
        return f"input file {msg.input.file_id} is missing"
    try:
        facts.app.validate(msg.params)
    except ParameterError as exc:
        return f"invalid parameters: {exc}"
    return ""


def decide_claim(msg: RunJob, facts: ClaimFacts) -> ClaimDecision:
    """A cancel that arrived first wins; then a refusal; otherwise the attempt starts."""
    if facts.canceled:
        return ClaimDecision(JobState.CANCELED, CANCELED_BY_USER)
    reason = refusal(msg, facts)
    if reason:
        return ClaimDecision(JobState.ABORTED, reason)
    return ClaimDecision(JobState.STARTED)


def claim_document(
    msg: RunJob, decision: ClaimDecision, *, runner_id: str, pool: str, now: datetime
) -> dict[str, Any]:
    """The claim as stored: the attempt, who holds it, and the command to resume it from."""
    return {
        "_id": attempt_key(msg.job_id, msg.attempt),
        "job_id": msg.job_id,
        "attempt": msg.attempt,
        "owner": msg.owner,
        "app": msg.app,
        "runner_id": runner_id,
        "pool": pool,
        "claimed_at": now,
        "state": decision.state.value,
        "reason": decision.reason,
        # What a restarted runner needs to resume tracking the attempt (executors that
        # reattach, such as Slurm).
        "command": msg.model_dump(mode="json"),
    }


@dataclass(frozen=True)
class AttemptFate:
    """What happened to an attempt besides its executor's outcome (set while it ran)."""

    superseded_by: int | None = None
    """A later attempt of the job started: this one was fenced off."""
    unrecorded: str = ""
    """Why RUNNING could not be recorded (the processes were killed for it)."""
    handed_back: str = ""
    """Why the runner stopped it at shutdown (a job that finished anyway keeps its outcome)."""
    abandoned: str = ""
    """Why the runner gave the attempt up (self-fencing): whatever the processes did, the
    attempt may already be presumed lost and retried elsewhere, so it is never a success."""


@dataclass(frozen=True)
class Fence:
    """The runners' shared record of which attempt holds a job (one document per job).

    Two writes decide everything, each atomic on this one document: a retry (attempt
    ``n > 1``) takes the fence before it starts, unless an earlier attempt closed it; an
    attempt whose outcome is final closes it, unless a later attempt took it. So of a
    slow attempt presumed lost and its retry, exactly one wins: either the retry starts
    and the slow attempt's outcome is withdrawn, or the slow attempt's true outcome
    closes the job and the retry never starts.
    """

    holder: int
    """The highest attempt that took the fence (or closed it)."""
    closed: bool = False
    """The holder's outcome is final: no later attempt may start."""


class Admission(Enum):
    """What the fence says about an attempt about to be claimed."""

    ADMITTED = "admitted"
    SUPERSEDED = "superseded"
    """A later attempt holds the job: this (redelivered, stale) command is dropped."""
    WITHDRAWN = "withdrawn"
    """An earlier attempt's true outcome closed the job: the retry is not needed."""


def admission(fence: Fence, attempt: int) -> Admission:
    """Read the fence after this attempt tried to take it."""
    if fence.holder > attempt:
        return Admission.SUPERSEDED
    if fence.holder < attempt and fence.closed:
        return Admission.WITHDRAWN
    return Admission.ADMITTED


def closes_job(result: ExecutionResult) -> bool:
    """Whether this outcome is final, so it must close the fence before it is reported.

    Retryable outcomes leave the job open for the next attempt.
    """
    return not result.retryable


def superseded(result: ExecutionResult, by: int) -> ExecutionResult:
    """The report of an attempt that lost the fence: its outputs are never published.

    Retryable, because it is not the attempt's true outcome and must not close anything:
    the scheduler has moved on (every projection ranks the later attempt higher), and a
    scheduler still holding the later attempt as queued must not take it for one.
    """
    reason = f"superseded by attempt {by}; outputs withdrawn"
    return replace(result, state=JobState.FAILURE, reason=reason, retryable=True)


def reported_result(result: ExecutionResult, fate: AttemptFate) -> ExecutionResult:
    """The outcome to report for an attempt, given what happened to it.

    - Superseded: a later attempt owns the job now; this one's outcome is withdrawn
      (see :func:`superseded`).
    - RUNNING not recorded: we killed the processes rather than run unobserved; our
      failure, so retryable.
    - Abandoned (self-fencing): cut off long enough to be presumed lost; a retryable
      failure whatever the processes did, so a retry elsewhere never meets a success.
    - Handed back (shutdown): the executor saw a cancel the user did not ask for; a
      retryable failure, so the scheduler starts a new attempt elsewhere.
    """
    if fate.superseded_by is not None:
        return superseded(result, fate.superseded_by)
    if fate.unrecorded:
        return replace(result, state=JobState.FAILURE, reason=fate.unrecorded, retryable=True)
    if fate.abandoned:
        return replace(result, state=JobState.FAILURE, reason=fate.abandoned, retryable=True)
    if fate.handed_back and result.state is JobState.CANCELED:
        return replace(result, state=JobState.FAILURE, reason=fate.handed_back, retryable=True)
    return result


def runner_error(exc: BaseException) -> ExecutionResult:
    """Our failure, not the app's: retryable, so the scheduler tries another attempt."""
    return ExecutionResult(JobState.FAILURE, None, 0.0, 0.0, 0, f"runner error: {exc}", retryable=True)
