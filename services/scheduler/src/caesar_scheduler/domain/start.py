"""What to do with a dispatched attempt that no runner has reported STARTED in time.

A ``RunJob`` can vanish between the scheduler and a runner: a runner that took it and
died before claiming it, a command dead-lettered, a queue purged by an operator. Nothing
else would ever notice, since the monitor only watches jobs a runner has claimed, so the
job would hold its slot in QUEUED forever. The scheduler therefore re-sends the *same*
command (same attempt) after ``timeout_s``: the runner's claim key ``<job_id>:<attempt>``
makes a copy that does arrive twice harmless. After ``max_resends`` copies the attempt is
declared never started, a retryable failure, and the retry policy takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

NEVER_STARTED = "never started"


@dataclass(frozen=True)
class Resend:
    """Send the attempt's ``RunJob`` again; this is copy number ``resends``."""

    resends: int


@dataclass(frozen=True)
class NeverStarted:
    """Give up on this attempt: fail it (retryable) with ``reason``."""

    reason: str


@dataclass(frozen=True)
class StartPolicy:
    """At most ``max_resends`` re-sends, each after ``timeout_s`` without a STARTED."""

    timeout_s: float = 120.0
    max_resends: int = 3

    def sent_before(self, now: datetime) -> datetime:
        """Attempts last sent at or before this instant are overdue."""
        return now - timedelta(seconds=self.timeout_s)

    def check_interval_s(self) -> float:
        """How often to look: a quarter of the timeout, so an overdue attempt waits at
        most 1.25 timeouts, without a setting of its own (and never a busy loop)."""
        return max(self.timeout_s / 4, 0.05)

    def decide(self, resends: int) -> Resend | NeverStarted:
        """After ``resends`` re-sends already made, the next step for an overdue attempt."""
        if resends < self.max_resends:
            return Resend(resends + 1)
        sent = resends + 1
        copies = "once" if sent == 1 else f"{sent} times"
        return NeverStarted(
            f"{NEVER_STARTED}: no runner reported STARTED within {self.timeout_s:g} s of the "
            f"command, sent {copies}"
        )
