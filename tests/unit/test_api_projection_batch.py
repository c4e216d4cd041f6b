"""The api's projection taken in batches writes exactly what it writes one event at a time."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caesar_api.service.projection import apply_job_state, apply_job_states_together
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobState
from tests.unit.fakes_api import FakeJobs
from tests.unit.test_accounting_usage import change, job_histories


def api_record(job_id: str) -> dict[str, Any]:
    return {"_id": job_id, "owner": "alice", "app": "caesar", "state": "PENDING", "attempt": 0}


@settings(max_examples=150, deadline=None)
@given(history=job_histories(), data=st.data())
def test_a_batch_projects_what_one_by_one_projects(
    history: list[JobStateChanged], data: st.DataObject
) -> None:
    extra = data.draw(st.lists(st.sampled_from(history), max_size=len(history)), label="duplicates")
    delivered = data.draw(st.permutations(history + extra), label="delivered")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(delivered) - 1))), label="cuts"))

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        alone, together = FakeJobs(), FakeJobs()
        alone.records["j1"], together.records["j1"] = api_record("j1"), api_record("j1")
        for message in delivered:
            await apply_job_state(alone, message)
        bounds = [0, *cuts, len(delivered)]
        for start, end in itertools.pairwise(bounds):
            await apply_job_states_together(together, delivered[start:end])
        return alone.records["j1"], together.records["j1"]

    alone, together = asyncio.run(run())
    assert together == alone


async def test_a_batch_whose_job_moved_meanwhile_is_applied_one_by_one() -> None:
    """Another replica wrote between the batch's read and its write: nothing is lost."""
    jobs = FakeJobs()
    jobs.records["j1"] = api_record("j1")
    real_positions = jobs.positions

    async def racing_positions(job_ids: Any) -> dict[str, Any]:
        read = await real_positions(job_ids)
        await apply_job_state(jobs, change(JobState.QUEUED))  # lands after the read
        return read

    jobs.positions = racing_positions  # type: ignore[method-assign]
    applied = await apply_job_states_together(jobs, [change(JobState.QUEUED), change(JobState.RUNNING)])
    assert applied == 1  # the QUEUED was already there; the RUNNING applied on its own
    assert (jobs.records["j1"]["state"], jobs.records["j1"]["attempt"]) == ("RUNNING", 1)


async def test_unknown_jobs_and_foreign_owners_change_nothing() -> None:
    jobs = FakeJobs()
    jobs.records["j1"] = {**api_record("j1"), "owner": "bob"}
    assert (
        await apply_job_states_together(jobs, [change(JobState.QUEUED), change(JobState.QUEUED, job_id="j2")])
        == 0
    )
    assert jobs.records["j1"]["state"] == "PENDING"
