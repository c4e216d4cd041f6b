"""A final state is pushed only once the read model shows it (or after a bounded wait)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from caesar_api.push.adapters.history import JobHistory
from caesar_api.push.domain.resume import StateEvent
from caesar_api.push.service.streams import read_model_settles
from caesar_common.jobstate import JobState

NOW = datetime(2026, 11, 30, tzinfo=UTC)


class ScriptedHistory:
    """Answers each read with the next record of a script (the last one repeats)."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)
        self.reads = 0

    async def job(self, job_id: str) -> dict[str, Any]:
        state = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        return {"_id": job_id, "attempt": 1, "state": state}


def final(state: JobState = JobState.SUCCESS) -> StateEvent:
    return StateEvent("j1", "alice", 1, state, NOW, NOW)


async def test_waits_until_the_read_model_shows_the_final_state() -> None:
    history = ScriptedHistory("RUNNING", "RUNNING", "SUCCESS")
    settle = read_model_settles(cast(JobHistory, history), wait_s=60, poll_s=0)
    await settle(final())
    assert history.reads == 3


async def test_returns_at_once_when_the_record_is_already_there() -> None:
    history = ScriptedHistory("SUCCESS")
    await read_model_settles(cast(JobHistory, history), wait_s=60, poll_s=0)(final())
    assert history.reads == 1


async def test_gives_up_after_the_bound_when_the_read_model_lags() -> None:
    ticks = iter(range(100))
    history = ScriptedHistory("RUNNING")
    settle = read_model_settles(
        cast(JobHistory, history), wait_s=5, poll_s=0, clock=lambda: float(next(ticks))
    )
    await settle(final(JobState.FAILURE))
    # Deadline 0 + 5: each read finds RUNNING; the check after the fifth (clock 5) gives up.
    assert history.reads == 5
