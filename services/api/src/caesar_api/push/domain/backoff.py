"""When a failed webhook delivery is tried again, and when it is given up (pure).

The n-th retry waits ``base * 2^(n-1)`` seconds, capped: a receiver that is down for a
while is not hammered, and one that comes back soon gets its events soon. After
``max_attempts`` attempts the delivery is marked failed and stays in the hook's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float

    def delay_s(self, attempts_made: int) -> float:
        """Seconds before the next attempt, after ``attempts_made`` (>= 1) failed ones."""
        exponent = max(attempts_made - 1, 0)
        if exponent > 60:  # 2**60 * base overflows any cap anyway
            return self.cap_s
        return float(min(self.base_s * 2**exponent, self.cap_s))

    def next_attempt_at(self, attempts_made: int, now: datetime) -> datetime | None:
        """When to try again, or ``None`` once every attempt is used up."""
        if attempts_made >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay_s(attempts_made))
