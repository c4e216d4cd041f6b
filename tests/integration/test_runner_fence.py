"""The runners' fence against the real MongoDB-wire server.

Of a slow attempt presumed lost and its retry, exactly one wins, whatever the timing:
either the retry takes the fence and starts (the slow attempt's outcome is withdrawn),
or the slow attempt's final outcome closes the fence and the retry never starts. Both
writes are single-document conditional upserts; a conflict surfaces as a duplicate key.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from caesar_common.events import Envelope, JobStateChanged
from caesar_common.jobstate import JobState
from caesar_runner.adapters.claims import CANCELS, CLAIMS, FENCES, Claims
from caesar_runner.domain.claim import Admission, Fence, admission

pytestmark = pytest.mark.integration

Document = dict[str, Any]
JOB = "0123456789abcdef0123456789abcdef"
OUTCOME = Envelope.wrap(
    JobStateChanged(
        job_id=JOB,
        owner="alice",
        app="trivial",
        attempt=1,
        state=JobState.SUCCESS,
        changed_at=datetime.now(UTC),
    ),
    "runner",
)


@pytest.fixture
def claims(async_mongo: AsyncMongoClient[Document], db_prefix: str) -> Claims:
    db = async_mongo[f"{db_prefix}_runner"]
    return Claims(db[CLAIMS], db[CANCELS], db[FENCES])


async def test_a_first_attempt_writes_no_fence_and_its_final_outcome_closes_it(claims: Claims) -> None:
    assert await claims.take_fence(JOB, 1) == Fence(holder=1)
    assert await claims._read_fence(JOB, 1) == Fence(holder=1)  # nothing stored: read as free
    assert await claims.close_fence(JOB, 1, "r1", [OUTCOME]) == Fence(holder=1, closed=True)
    assert await claims.close_fence(JOB, 1, "r1", []) == Fence(holder=1, closed=True)  # a retried write
    stored = await claims._fences.find_one({"_id": JOB})
    assert stored is not None
    assert [e["id"] for e in stored["outbox"]] == [OUTCOME.id]  # the outcome travels with the fence
    assert await claims.unpublished("r1") == [(JOB, 1)]  # listed in heartbeats until published
    retry = await claims.take_fence(JOB, 2)
    assert retry == Fence(holder=1, closed=True)
    assert admission(retry, 2) is Admission.WITHDRAWN


async def test_a_retry_that_took_the_fence_withdraws_the_slow_outcome(claims: Claims) -> None:
    assert await claims.take_fence(JOB, 2) == Fence(holder=2)
    assert await claims.take_fence(JOB, 2) == Fence(holder=2)  # a redelivered command
    assert await claims.close_fence(JOB, 1, "r1", []) == Fence(holder=2)  # attempt 1 lost: superseded
    late = await claims.take_fence(JOB, 3)
    assert late == Fence(holder=3)
    assert admission(await claims.take_fence(JOB, 2), 2) is Admission.SUPERSEDED
    assert await claims.close_fence(JOB, 3, "r1", []) == Fence(holder=3, closed=True)


@pytest.mark.parametrize("round_", range(8))
async def test_a_slow_outcome_and_its_retry_racing_never_both_win(claims: Claims, round_: int) -> None:
    """Issued together, many times: one wins, and the loser learns it from the same write."""
    job = f"{JOB[:-2]}{round_:02d}"
    closed, taken = await asyncio.gather(claims.close_fence(job, 1, "r1", []), claims.take_fence(job, 2))
    slow_won = closed == Fence(holder=1, closed=True)
    retry_won = admission(taken, 2) is Admission.ADMITTED
    assert slow_won != retry_won, (closed, taken)
    stored = await claims._read_fence(job, 0)
    assert stored == (Fence(holder=1, closed=True) if slow_won else Fence(holder=2))
