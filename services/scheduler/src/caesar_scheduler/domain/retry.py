"""What to do when an attempt failed for a reason that is not the app's: retry or give up.

Only infrastructure failures (a runner lost, a Slurm node failure) are flagged
``retryable``; an app's own non-zero exit never gets here. The policy is pure so its
arithmetic (attempt limit, exponential backoff) is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from caesar_common.jobstate import JobPosition, JobState, is_terminal
from caesar_scheduler.domain.phases import DISPATCHED, WAITING


@dataclass(frozen=True)
class Retry:
    """Open attempt ``attempt``, dispatchable from ``not_before`` (the backoff)."""

    attempt: int
    not_before: datetime
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """The job is ABORTED: it failed this many times already."""

    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` attempts in all; attempt n+1 waits ``backoff_s * 2^(n-1)``.

    The doubling spreads retries out when a whole pool is sick (a cluster outage), so a
    job does not burn its attempts in seconds.
    """

    max_attempts: int = 3
    backoff_s: float = 5.0

    def delay(self, failed_attempt: int) -> timedelta:
        """The wait before the attempt that follows ``failed_attempt``."""
        return timedelta(seconds=self.backoff_s * 2 ** (failed_attempt - 1))

    def decide(self, failed_attempt: int, failure: str, now: datetime) -> Retry | GiveUp:
        """The decision after ``failed_attempt`` failed with reason ``failure``."""
        if failed_attempt < self.max_attempts:
            return Retry(
                attempt=failed_attempt + 1,
                not_before=now + self.delay(failed_attempt),
                reason=f"attempt {failed_attempt} failed ({failure}); retrying",
            )
        return GiveUp(f"gave up after {failed_attempt} attempts: {failure}")


NOT_STARTED = (JobState.QUEUED, JobState.HELD)


def withdraws_retry(held: JobPosition, phase: str, outcome: JobPosition) -> bool:
    """Whether a runner's final outcome of an earlier attempt closes the job now.

    The attempt was presumed lost and retried, but it finished after all. The runners'
    fence guarantees that a runner reports a final outcome only if no later attempt of
    the job has started (and that none will start after it), so while the retry we hold
    has not been reported started, the earlier outcome is the job's true one and the
    retry is withdrawn.
    """
    return (
        is_terminal(outcome.state)
        and not outcome.retryable
        and outcome.attempt < held.attempt
        and held.state in NOT_STARTED
        and phase in (WAITING, DISPATCHED)
    )
