"""The scheduler's retry policy (pure): attempt limit and doubling backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caesar_scheduler.domain.retry import GiveUp, Retry, RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_doubles_per_failed_attempt() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=5.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (5, 10, 20)]


def test_a_failed_attempt_below_the_limit_opens_the_next_one_after_the_backoff() -> None:
    decision = RetryPolicy(max_attempts=3, backoff_s=2.0).decide(2, "runner lost", NOW)
    assert decision == Retry(
        attempt=3, not_before=NOW + timedelta(seconds=4), reason="attempt 2 failed (runner lost); retrying"
    )


@pytest.mark.parametrize("failed", [3, 4])
def test_at_the_limit_the_job_is_given_up(failed: int) -> None:
    decision = RetryPolicy(max_attempts=3).decide(failed, "runner lost", NOW)
    assert decision == GiveUp(f"gave up after {failed} attempts: runner lost")


def test_one_attempt_only_never_retries() -> None:
    assert isinstance(RetryPolicy(max_attempts=1).decide(1, "node failure", NOW), GiveUp)
